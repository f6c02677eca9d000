"""How an MCP server process is started: its command and its explicit environment.

A server never inherits hbench's environment (which may hold API keys): it gets
:func:`server_env`, a fixed minimal set, plus what its own configuration names (for a
suite's external server, values written in ``suite.toml``, never the caller's).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping, Sequence

#: the environment every MCP server starts with (nothing from hbench's environment)
BASE_ENV: dict[str, str] = {"PATH": os.defpath, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
#: hbench's own plugin selection, passed to the hbench server so it registers the same
#: tools as the run (names of plugins, never values that could be secret)
PLUGIN_ENV = ("HBENCH_LOAD_PLUGINS", "HBENCH_DISABLE_PLUGINS")


def server_env(extra: Mapping[str, str] | None = None, *, hbench: bool = False) -> dict[str, str]:
    """The explicit environment of an MCP server: :data:`BASE_ENV`, then ``extra``."""
    env = dict(BASE_ENV)
    if hbench:
        env.update({k: os.environ[k] for k in PLUGIN_ENV if k in os.environ})
    env.update({str(k): str(v) for k, v in (extra or {}).items()})
    return env


def hbench_server_argv(root: Path | str, *, suite: str | None = None, attempt_roots: bool = False,
                       tools: Sequence[str] | None = None) -> list[str]:
    """``python -m hbench mcp-serve --root ROOT [--suite S] [--attempt-roots]`` with this
    interpreter (so the server runs the same hbench, with the same plugins installed)."""
    argv = [sys.executable, "-m", "hbench", "mcp-serve", "--root", str(root)]
    if suite:
        argv += ["--suite", str(suite)]
    if tools is not None:
        argv += ["--tools", ",".join(tools)]
    if attempt_roots:
        argv.append("--attempt-roots")
    return argv


def expand(argv: Sequence[str], *, suite_dir: str | None) -> list[str]:
    """A suite server's command with ``{python}`` (this interpreter) and ``{suite}`` (the
    suite folder) expanded."""
    out = []
    for a in argv:
        a = a.replace("{python}", sys.executable)
        if suite_dir is not None:
            a = a.replace("{suite}", suite_dir)
        out.append(a)
    return out
