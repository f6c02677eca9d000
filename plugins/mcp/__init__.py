"""MCP (DESIGN.md, "MCP"): the brain's tools over the Model Context Protocol.

* ``hbench mcp-serve --root DIR [--suite NAME|PATH]`` (:mod:`.server`): a stdio MCP server
  of the sandboxed built-in tools and the suite's own tools, confined to DIR by the same
  :class:`hbench.sandbox.Sandbox` as in-process, started with an explicit minimal
  environment (:func:`.launch.server_env`);
* the agent ``builtin-mcp`` (:mod:`.agent`): the built-in loop, whose tools come from
  ``list_tools`` of that server and whose calls go through the MCP client, plus the
  suite's own ``[mcp.servers.NAME]`` (:mod:`.external`), started per attempt.

Nothing here imports ``mcp`` (the optional extra ``[mcp]``) at import time: ``hbench
--help`` stays fast and hbench works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbench import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    import typer

    from hbench.hookspecs import RegisterAgent


@hookimpl
def hbench_register_agents(register: RegisterAgent) -> None:
    from hbench.plugins.mcp.agent import BuiltinMcpAgent

    register(BuiltinMcpAgent)


@hookimpl
def hbench_register_commands(app: typer.Typer) -> None:
    from hbench.plugins.mcp.command import register

    register(app)


@hookimpl
def hbench_run_finished() -> None:
    """Stop the warm server pool when a run ends (its servers hold no scratch copy)."""
    from hbench.plugins.mcp import pool

    pool.close_all()
