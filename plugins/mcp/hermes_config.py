"""Hermes with MCP: the ``mcp_servers`` section of an attempt's Hermes ``config.yaml``.

Hermes (``hermes-agent[mcp]``) starts each configured stdio server itself and offers its
tools as ``mcp__NAME__TOOL``. hbench writes the same server the ``builtin-mcp`` agent
uses, ``hbench mcp-serve --root SCRATCH`` (only the prompt's tools, and the suite's own
tools), and the suite's ``[mcp.servers.NAME]``. Each server's environment is the explicit
minimal one (:func:`hbench.plugins.mcp.launch.server_env`), plus ``HERMES_HOME`` as a
marker, so the driver's end-of-attempt sweep finds and stops any server Hermes left.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

from hbench.plugins.mcp.launch import expand, hbench_server_argv, server_env

HBENCH_SERVER = "hbench"
HERMES_HINT = "pip install 'hermes-agent[mcp]' into Hermes' venv"


@lru_cache(maxsize=16)
def _venv_has_mcp(bin_path: Path) -> bool:
    venv = bin_path.resolve().parent.parent
    for site in sorted(venv.glob("lib/python*/site-packages")) + [venv / "Lib" / "site-packages"]:
        if site.is_dir() and any(site.glob("mcp-*.dist-info")):
            return True
    return False


def mcp_ready(bin_path: Path | None) -> tuple[bool, str]:
    """Whether an attempt can give Hermes MCP: ``mcp`` in hbench's environment (for the
    server) and in Hermes' venv (for its client)."""
    if importlib.util.find_spec("mcp") is None:
        return False, "the 'mcp' package is not installed in hbench's environment; pip install 'hermes-bench[mcp]'"
    if bin_path is None or not _venv_has_mcp(Path(bin_path)):
        return False, f"Hermes' venv has no 'mcp' package; {HERMES_HINT}"
    return True, "ok"


def served_tools(ctx: Any) -> list[str]:
    """The prompt's tools Hermes reaches through ``hbench mcp-serve``: all of them for a
    prompt that asks for MCP (``conditional = "mcp"``); otherwise only the tools Hermes
    has no native equivalent of (suite tools and decoys: data tools); none when there
    are none, so a plain prompt costs Hermes no MCP server start."""
    if getattr(ctx.prompt, "conditional", None) == "mcp":
        return list(ctx.tools)
    return [n for n, t in ctx.tools.items() if getattr(t, "spec", None) is not None]


def mcp_servers(ctx: Any, scratch: Path, hermes_home: Path) -> dict[str, Any]:
    """The ``mcp_servers`` table for one attempt (server name -> Hermes server config);
    empty when the attempt needs none."""
    marker = {"HERMES_HOME": str(hermes_home)}
    suite = ctx.suite
    out: dict[str, Any] = {}
    tools = served_tools(ctx)
    if tools:
        suite_arg = str(suite.path) if getattr(suite, "tools", ()) else None
        argv = hbench_server_argv(scratch, suite=suite_arg, tools=tools)
        out[HBENCH_SERVER] = {"command": argv[0], "args": argv[1:], "env": server_env(marker, hbench=True),
                              "timeout": 120, "connect_timeout": 120}
    for name, spec in (getattr(suite, "mcp_servers", None) or {}).items():
        cmd = expand(list(spec.command) + list(spec.args or ()), suite_dir=suite.path)
        if os.sep not in cmd[0]:
            cmd[0] = shutil.which(cmd[0]) or cmd[0]
        entry: dict[str, Any] = {"command": cmd[0], "args": cmd[1:], "env": server_env({**spec.env, **marker}),
                                 "timeout": spec.call_timeout_s, "connect_timeout": spec.start_timeout_s}
        if spec.tools is not None:
            entry["tools"] = {"include": list(spec.tools)}
        out[name] = entry
    return out


def oneshot_argv(bin_path: Path, args: list[str]) -> list[str]:
    """``hermes ARGS`` through :mod:`hbench.plugins.mcp.hermes_oneshot`, run by the
    Python of Hermes' venv (the interpreter its ``hermes`` script names), so one-shot
    mode waits for MCP discovery. Falls back to ``hermes ARGS`` when that Python is
    not found."""
    python = None
    try:
        first = Path(bin_path).read_bytes()[:256].split(b"\n", 1)[0]
        if first.startswith(b"#!"):
            python = first[2:].decode("utf-8", errors="replace").strip().split()[0]
    except OSError:
        pass
    if not python or not os.access(python, os.X_OK):
        return [str(bin_path), *args]
    return [python, str(Path(__file__).with_name("hermes_oneshot.py")), *args]
