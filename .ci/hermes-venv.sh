#!/usr/bin/env bash
# Install the real Hermes agent (hermes-agent, pinned) in its own virtual environment,
# ./.hermes-venv, for the `hermes` agent driver's tests (tests/test_hermes.py finds it
# there, or through HBENCH_HERMES_BIN). Hermes pins exact versions of openai, pydantic,
# httpx, rich, ...: it must never share hbench's venv. Idempotent: a venv that already
# holds the pinned version is left as it is. About 230 MB, 61 packages.
set -euo pipefail
cd "$(dirname "$0")/.."
HERMES_VERSION="${HERMES_VERSION:-0.19.0}"
# Hermes' MCP client (its [mcp] extra pins mcp==1.26.0; the extra's starlette pin clashes
# with its own fastapi, so mcp is installed alone): hbench gives Hermes its MCP servers
HERMES_MCP_VERSION="${HERMES_MCP_VERSION:-1.26.0}"
VENV="${HERMES_VENV:-.hermes-venv}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

installed() {
    [ -x "$VENV/bin/hermes" ] && [ -x "$VENV/bin/python" ] &&
        "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('hermes-agent') != '$HERMES_VERSION' or m.version('mcp') != '$HERMES_MCP_VERSION')" 2>/dev/null
}

if installed; then
    echo "hermes-agent $HERMES_VERSION already in $VENV"
    exit 0
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q "hermes-agent==$HERMES_VERSION" "mcp==$HERMES_MCP_VERSION"
installed || { echo "hermes-agent $HERMES_VERSION did not install into $VENV" >&2; exit 1; }
echo "hermes-agent $HERMES_VERSION installed in $VENV ($VENV/bin/hermes)"
