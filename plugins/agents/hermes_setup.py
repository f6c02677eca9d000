"""The ``hermes`` agent's setup: finding Hermes, checking the lane's ``agent_options``, and
writing one attempt's private home, ``config.yaml``, environment and command line.

The attempt driver is :mod:`hbench.plugins.agents.hermes`; how an attempt's trace is read
back is :mod:`hbench.plugins.agents.hermes_sessions`. Facts this relies on
(hermes-agent 0.19.0) are in docs/HERMES.md.

Per attempt (memory and skills never carry over between lanes or attempts): a fresh
``HERMES_HOME`` and ``HOME`` under the attempt context's ``work_dir`` (outside the scratch
copy), with a generated ``config.yaml``: provider ``custom``, the lane's ``base_url`` and
model, ``context_length``, ``max_tokens``, environment probe off, lazy installs off. The
API key is never written to disk: the config says ``${HBENCH_HERMES_API_KEY}`` and the key
travels in that environment variable. The environment is allow-listed (the user's other
API keys never reach an agent whose ``terminal`` tool runs anything).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import attrs

from hbench.agents import AttemptContext
from hbench.logging import register_secret
from hbench.models import LaneSpec
from hbench.plugins.mcp.hermes_config import mcp_ready, mcp_servers, oneshot_argv
from hbench.sandbox import safe_component

#: the hermes-agent release this driver was written and tested against
PINNED_VERSION = "0.19.0"
INSTALL_HINT = (
    f"python -m venv ~/.hermes-venv && ~/.hermes-venv/bin/pip install hermes-agent=={PINNED_VERSION}"
)
DEFAULT_BIN = "~/.hermes-venv/bin/hermes"
BIN_ENV = "HBENCH_HERMES_BIN"
#: the environment variable the generated config reads the lane's API key from
KEY_ENV = "HBENCH_HERMES_API_KEY"
#: pinned toolsets: what Hermes offers otherwise depends on the machine
TOOLSETS = "file,terminal"
#: Hermes refuses a model whose context window is below this (MINIMUM_CONTEXT_LENGTH)
HERMES_MIN_CONTEXT = 64_000
#: how long Hermes may take to start its MCP servers (a cold Python + mcp import: seconds)
MCP_DISCOVERY_TIMEOUT_S = 120

#: environment variables passed through to Hermes (everything else is dropped)
ENV_ALLOW = ("PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "SSL_CERT_FILE", "SSL_CERT_DIR",
             "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")

_VERSION_DIR = re.compile(r"^hermes_agent-(?P<v>[^-]+)\.dist-info$")


# --------------------------------------------------------------------------- finding hermes


def find_hermes_bin(lane: LaneSpec | None = None) -> tuple[Path | None, str]:
    """``(path or None, where it came from)``: the lane's ``agent_options["hermes_bin"]``,
    then ``$HBENCH_HERMES_BIN``, then ``hermes`` on ``PATH`` (pipx, ``uv tool``), then
    ``~/.hermes-venv/bin/hermes``. The first one set wins; it must be an executable file."""
    if lane is not None and lane.agent_options.get("hermes_bin"):
        raw, source = str(lane.agent_options["hermes_bin"]), f"lane {lane.name!r} agent_options.hermes_bin"
    elif os.environ.get(BIN_ENV):
        raw, source = os.environ[BIN_ENV], f"${BIN_ENV}"
    elif shutil.which("hermes"):
        raw, source = str(shutil.which("hermes")), "PATH"
    else:
        raw, source = DEFAULT_BIN, "not on PATH; default"
    path = Path(os.path.expanduser(raw))
    if path.is_file() and os.access(path, os.X_OK):
        return path.absolute(), source
    return None, f"{source}: {path}"


@lru_cache(maxsize=16)
def hermes_version(bin_path: Path) -> str | None:
    """The hermes-agent version installed next to ``bin_path`` (read from its venv's
    ``*.dist-info``: ``hermes --version`` checks for updates over the network)."""
    venv = bin_path.resolve().parent.parent
    for site in sorted(venv.glob("lib/python*/site-packages")) + [venv / "Lib" / "site-packages"]:
        if not site.is_dir():
            continue
        for entry in site.iterdir():
            m = _VERSION_DIR.match(entry.name)
            if m:
                return m.group("v")
    return None


#: ``agent_options`` this driver reads, and the type each must have
OPTIONS: dict[str, tuple[type, ...]] = {
    "hermes_bin": (str,), "context_length": (int,), "max_tokens": (int,), "toolsets": (str,),
    "hermes_config": (dict,), "env": (dict,), "keep_home": (bool,),
}


def option_problems(lane: LaneSpec) -> list[str]:
    """What is wrong with ``lane.agent_options`` for this driver (empty when nothing)."""
    out = []
    for key, value in lane.agent_options.items():
        where = f"lane {lane.name!r} agent_options.{key}"
        if key not in OPTIONS:
            out.append(f"{where}: unknown option for the hermes agent (known: {', '.join(sorted(OPTIONS))})")
        elif isinstance(value, bool) and bool not in OPTIONS[key] or not isinstance(value, OPTIONS[key]):
            want = " or ".join("table" if t is dict else t.__name__ for t in OPTIONS[key])
            out.append(f"{where}: expected {want}, got {value!r}")
    return out


def not_found_message(where: str) -> str:
    return f"hermes: not found ({where}); install with {INSTALL_HINT}"



# --------------------------------------------------------------------------- config.yaml


def build_config(*, base_url: str, model: str, context_length: int, max_tokens: int,
                 max_turns: int, with_key: bool, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``config.yaml`` of one attempt, as a dict. ``extra`` (a lane's
    ``agent_options.hermes_config``) is merged in last, table by table."""
    cfg: dict[str, Any] = {
        "model": {"provider": "custom", "default": model, "base_url": base_url,
                  "context_length": context_length, "max_tokens": max_tokens},
        "auxiliary": {"compression": {"context_length": context_length}},
        "agent": {"max_turns": max_turns, "environment_probe": False},
        "security": {"allow_lazy_installs": False},
    }
    if with_key:  # expanded by Hermes from its environment: the key never touches disk
        cfg["model"]["api_key"] = "${" + KEY_ENV + "}"
    return _merge(cfg, extra or {})


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, Mapping) else v
    return out


def render_config(cfg: Mapping[str, Any]) -> str:
    """YAML text for Hermes: JSON is YAML, and JSON quoting cannot go wrong."""
    return json.dumps(cfg, indent=2, sort_keys=True) + "\n"



# --------------------------------------------------------------------------- one attempt's home


@attrs.define
class AttemptSetup:
    """What :func:`prepare_attempt` made for one attempt: its folder ``dir`` (``home``,
    ``hermes_home`` with ``config.yaml``, ``tmp``), the scratch copy Hermes runs in, the
    allow-listed environment and the command line (writing its usage to ``usage_path``)."""

    dir: Path
    home: Path
    hermes_home: Path
    tmp: Path
    scratch: Path
    env: dict[str, str]
    cmd: list[str]
    usage_path: Path


def prepare_attempt(ctx: AttemptContext, bin_path: Path, context_length: int) -> AttemptSetup:
    """Write one attempt's private ``HOME``/``HERMES_HOME`` (with ``config.yaml``) and build
    its environment and ``hermes --oneshot`` command line (see the module docstring)."""
    opts = ctx.lane.agent_options
    base = Path(ctx.work_dir) if ctx.work_dir else Path(tempfile.gettempdir()) / "hbench-hermes" / safe_component(ctx.lane.name)
    # absolute: Hermes runs in the scratch dir, where a relative HERMES_HOME would miss
    adir = (base / "hermes" / safe_component(ctx.prompt.id) / str(ctx.n)).absolute()
    if adir.exists():
        shutil.rmtree(adir)
    home, hermes_home = adir / "home", adir / "hermes_home"
    home.mkdir(parents=True)
    hermes_home.mkdir()
    max_tokens = int(opts.get("max_tokens") or ctx.max_tokens)
    extra = opts.get("hermes_config") or {}
    scratch = Path(ctx.scratch).absolute()
    toolsets = str(opts.get("toolsets") or TOOLSETS)
    servers = mcp_servers(ctx, scratch, hermes_home) if mcp_ready(bin_path)[0] else {}
    if servers:  # the MCP servers builtin-mcp uses, started by Hermes itself
        # Hermes waits only mcp_discovery_timeout (1.5 s) for its servers before the first
        # model call; the join returns as soon as discovery is done
        extra = _merge({"mcp_servers": servers, "mcp_discovery_timeout": MCP_DISCOVERY_TIMEOUT_S}, extra)
        toolsets = ",".join([toolsets, *servers])
    (hermes_home / "config.yaml").write_text(render_config(build_config(
        base_url=ctx.lane.base_url, model=ctx.lane.model, context_length=context_length,
        max_tokens=max_tokens, max_turns=ctx.max_turns, with_key=bool(ctx.api_key), extra=extra)))
    env = {k: os.environ[k] for k in ENV_ALLOW if k in os.environ}
    env.update({k: v for k, v in os.environ.items() if k.startswith("LC_")})
    tmp = adir / "tmp"  # Hermes' terminal writes its env snapshots to TMPDIR
    tmp.mkdir()
    env.update({"HOME": str(home), "HERMES_HOME": str(hermes_home), "TERMINAL_CWD": str(scratch),
                "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"})
    env.setdefault("PATH", os.defpath)
    env.update({str(k): str(v) for k, v in (opts.get("env") or {}).items()})
    if ctx.api_key:
        register_secret(ctx.api_key)  # scrubbed from the transcript, tool output and logs
        env[KEY_ENV] = ctx.api_key
    usage_path = adir / "usage.json"
    # --oneshot=TEXT, not -z TEXT: a prompt starting with "-" must not parse as an option
    cmd = [str(bin_path), f"--oneshot={ctx.prompt.prompt}", "-t", toolsets, "--usage-file", str(usage_path)]
    if servers:  # -z must wait for the MCP servers (hbench.plugins.mcp.hermes_oneshot)
        cmd = oneshot_argv(bin_path, cmd[1:])
    return AttemptSetup(dir=adir, home=home, hermes_home=hermes_home, tmp=tmp, scratch=scratch, env=env, cmd=cmd,
                        usage_path=usage_path)
