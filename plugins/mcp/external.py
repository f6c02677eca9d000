"""A suite's own MCP servers (``suite.toml`` ``[mcp.servers.NAME]``), one set per attempt.

Each starts with the attempt's scratch copy as its working directory and an environment
of :data:`hbench.plugins.mcp.launch.BASE_ENV` plus the suite's ``env`` (values written in
the suite, never taken from hbench's environment). ``{python}`` in ``command``/``args``
is this interpreter and ``{suite}`` the suite folder. Its tools reach the model as
``mcp__NAME__TOOL`` (Hermes' naming, so both agents offer the same names).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from hbench.plugins.mcp.launch import expand, server_env
from hbench.plugins.mcp.session import McpConnection, McpStartError

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def offered_name(server: str, tool: str) -> str:
    """``mcp__<server>__<tool>`` (the OpenAI function-name alphabet, at most 64 characters)."""
    return f"mcp__{_UNSAFE.sub('_', server)}__{_UNSAFE.sub('_', tool)}"[:64]


def start(name: str, spec: Any, *, scratch: Path, suite_dir: str | None) -> McpConnection:
    """Start one suite server for one attempt; raise :class:`McpStartError` with the reason."""
    argv = expand(list(spec.command) + list(spec.args or ()), suite_dir=suite_dir)
    exe = argv[0]
    if os.sep not in exe:
        found = shutil.which(exe)  # looked up on hbench's PATH; the server's own env stays minimal
        if found is None:
            raise McpStartError(f"mcp server {name!r}: command {exe!r} not found on PATH "
                                f"(suite.toml mcp.servers.{name}.command)")
        argv[0] = found
    conn = McpConnection(name, argv, env=server_env(spec.env), cwd=str(scratch),
                         start_timeout_s=spec.start_timeout_s, call_timeout_s=spec.call_timeout_s)
    return conn.start()
