"""``suite.toml`` ``[mcp.servers.NAME]``: the suite's own MCP servers, validated.

::

    [mcp.servers.files]
    command = ["{python}", "{suite}/servers/files.py"]   # a list: no shell
    args = ["--verbose"]                                 # optional, appended to command
    env = {MODE = "strict"}                              # optional; values from the suite only
    tools = ["read_text"]                                # optional: the tools offered (default all)
    start_timeout_s = 15                                 # optional
    call_timeout_s = 30                                  # optional

Every problem names ``suite.toml``, the key path and the fix.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from hbench.models import McpServerSpec

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_KEYS = ("command", "args", "env", "tools", "start_timeout_s", "call_timeout_s")


def parse_mcp(raw: Any, problem: Callable[[str, str], None]) -> dict[str, McpServerSpec]:
    """The ``[mcp]`` table of suite.toml as server specs; each problem is reported as
    ``problem(key_path, message)`` and that server is left out."""
    out: dict[str, McpServerSpec] = {}
    if not isinstance(raw, dict):
        problem("mcp", "must be a table ([mcp.servers.NAME] tables)")
        return out
    for key in raw:
        if key != "servers":
            problem(f"mcp.{key}", "unknown key (the [mcp] table holds only servers: [mcp.servers.NAME])")
    servers = raw.get("servers", {})
    if not isinstance(servers, dict):
        problem("mcp.servers", "must be a table of servers ([mcp.servers.NAME])")
        return out
    for name, spec in servers.items():
        where = f"mcp.servers.{name}"
        if not _NAME.match(name):
            problem(where, "the server name must be 1-32 letters, digits, '_' or '-' (it becomes part of tool names)")
            continue
        if not isinstance(spec, dict):
            problem(where, "must be a table with at least command = [\"program\", ...]")
            continue
        ok = True
        for key in spec:
            if key not in _KEYS:
                problem(f"{where}.{key}", f"unknown key (known: {', '.join(_KEYS)})")
                ok = False

        def strings(key: str, *, required: bool = False) -> tuple[str, ...] | None:
            nonlocal ok
            v = spec.get(key)
            if v is None:
                if required:
                    problem(f"{where}.{key}", "missing: give the server's command as a list, e.g. [\"{python}\", \"server.py\"]")
                    ok = False
                return None
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v) or (required and not v):
                problem(f"{where}.{key}", f"must be a list of non-empty strings, got {v!r} (no shell: one list item per argument)")
                ok = False
                return None
            return tuple(v)

        command = strings("command", required=True)
        args = strings("args") or ()
        tools = strings("tools")
        env = spec.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            problem(f"{where}.env", "must be a table of string values, e.g. env = {MODE = \"strict\"} "
                    "(values are written in the suite; hbench's environment never reaches the server)")
            ok = False
            env = {}
        timeouts: dict[str, float] = {}
        for key, default in (("start_timeout_s", 15.0), ("call_timeout_s", 30.0)):
            v = spec.get(key, default)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0 or v > 3600:
                problem(f"{where}.{key}", f"must be a number of seconds above 0 and at most 3600, got {v!r}")
                ok = False
            else:
                timeouts[key] = float(v)
        if ok and command:
            out[name] = McpServerSpec(command=command, args=args, env=dict(env), tools=tools, **timeouts)
    return out
