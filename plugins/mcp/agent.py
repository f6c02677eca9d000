"""``builtin-mcp``: the built-in tool-calling loop, with every tool reached over MCP.

Per attempt:

* a warm ``hbench mcp-serve`` is leased from the pool (:mod:`.pool`) and re-rooted on
  this attempt's scratch copy (every call names the copy and a fresh attempt token in
  ``_meta``); the model is offered the prompt's tools **as ``list_tools`` describes
  them**, and each call goes through the MCP client; the result's content blocks become
  the tool message, an ``isError`` result a tool error the model reads;
* each ``[mcp.servers.NAME]`` of the suite (:mod:`.external`) is started with the
  scratch copy as its working directory; its tools are offered as ``mcp__NAME__TOOL``
  (Hermes' naming) and it is stopped, with its whole process group, when the attempt
  ends, whatever way it ends.

A server that does not come up makes the attempt **errored** with the reason (the
stack's fault, not the brain's; ``--resume`` runs it again). A server that fails
during the attempt (crash, hang past the call timeout, broken protocol) turns that call
into a tool error the model sees, and the attempt's ``warnings`` say what happened.

Capabilities: the built-in agent's, plus ``mcp``. Every call made through MCP satisfies
the tool token ``mcp`` (the bundled ``mcp-handshake-token`` prompt expects it).
"""

from __future__ import annotations

import importlib.util
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

import attrs

from hbench.agents import AttemptContext
from hbench.logging import get_logger, scrub
from hbench.models import Attempt, ToolCall
from hbench.plugins.agents.builtin import BuiltinAgent, _now
from hbench.tools import Tool, ToolError

INSTALL_HINT = "pip install 'hermes-bench[mcp]'"
#: a call still running at the attempt's deadline is cut this long after it
DEADLINE_GRACE_S = 0.25
#: the tool token every MCP call satisfies
MCP_TOKEN = "mcp"


class McpTool(Tool):
    """A tool offered to the model whose calls go to an MCP server."""

    def __init__(self, name: str, remote: Any, conn: Any, *, meta: dict[str, Any] | None, deadline: float,
                 notes: list[str]):
        self.name = name  # type: ignore[misc]
        self.remote_name = remote.name
        self.description = remote.description or ""  # type: ignore[misc]
        schema = remote.input_schema if isinstance(remote.input_schema, dict) else {}
        self.parameters = dict(schema) or {"type": "object", "properties": {}}  # type: ignore[misc]
        self.conn = conn
        self.meta = meta
        self.deadline = deadline
        self.notes = notes

    def call(self, args: dict[str, Any], sandbox: Any) -> str:
        from hbench.plugins.mcp.session import McpCallError

        left = self.deadline - time.monotonic()
        timeout = max(0.5, min(self.conn.call_timeout_s, left))
        try:
            ok, text = self.conn.call_tool(self.remote_name, args, meta=self.meta, timeout_s=timeout)
        except McpCallError as exc:
            why = str(exc)
            if why not in self.notes:
                self.notes.append(why)
            raise ToolError(why) from None
        if not ok:
            raise ToolError(text or "the tool reported an error")
        return text


class BuiltinMcpAgent(BuiltinAgent):
    name: ClassVar[str] = "builtin-mcp"
    capabilities: ClassVar[frozenset[str]] = BuiltinAgent.capabilities | {"mcp"}

    def usable(self) -> tuple[bool, str]:
        if importlib.util.find_spec("mcp") is None:
            return False, f"the 'mcp' package is not installed; {INSTALL_HINT}"
        return True, "ok"

    def describe(self) -> dict[str, Any]:
        from importlib import metadata

        try:
            v = metadata.version("mcp")
        except metadata.PackageNotFoundError:
            v = None
        return {**super().describe(), "mcp": v, "server": "hbench mcp-serve (warm pool, re-rooted per attempt)"}

    def aliases_for(self, call: ToolCall) -> tuple[str, ...]:
        if call.format_error or (call.error or "").startswith("unknown tool"):
            return ()  # never reached a server
        return (MCP_TOKEN,)

    def run_attempt(self, ctx: AttemptContext) -> Attempt:
        from hbench.plugins.mcp import external
        from hbench.plugins.mcp.pool import pool_for, scratch_base
        from hbench.plugins.mcp.server import META_ATTEMPT, META_ROOT
        from hbench.plugins.mcp.session import McpCallError, McpStartError

        log = get_logger()
        t0 = time.monotonic()
        started = _now()
        deadline = t0 + ctx.timeout_s
        notes: list[str] = []
        pool = conn = None
        others: list[Any] = []

        def errored(why: str) -> Attempt:
            log.warning("mcp.attempt_errored", lane=ctx.lane.name, prompt=ctx.prompt.id, n=ctx.n, error=why)
            return Attempt(lane=ctx.lane.name, prompt_id=ctx.prompt.id, n=ctx.n, agent=self.name, error=scrub(why),
                           wall_s=time.monotonic() - t0, started_at=started, finished_at=_now(),
                           warnings=list(notes))

        try:
            suite_arg = str(ctx.suite.path) if getattr(ctx.suite, "tools", ()) else None
            try:
                pool = pool_for(scratch_base(ctx.scratch), suite_arg)
                conn = pool.lease()
                listed = {t.name: t for t in conn.list_tools()}
            except (McpStartError, McpCallError) as exc:
                return errored(str(exc))
            meta = {META_ROOT: str(Path(ctx.scratch).absolute()), META_ATTEMPT: uuid.uuid4().hex}
            tools: dict[str, Tool] = {}
            for name in ctx.tools:
                remote = listed.get(name)
                if remote is None:
                    notes.append(f"tool {name!r} is not served by hbench mcp-serve; not offered")
                    continue
                tools[name] = McpTool(name, remote, conn, meta=meta, deadline=deadline, notes=notes)
            for sname, spec in (getattr(ctx.suite, "mcp_servers", None) or {}).items():
                try:
                    ext = external.start(sname, spec, scratch=Path(ctx.scratch), suite_dir=ctx.suite.path)
                    others.append(ext)
                    served = ext.list_tools()
                except (McpStartError, McpCallError) as exc:
                    return errored(str(exc))
                names = {t.name for t in served}
                for want in spec.tools or ():
                    if want not in names:
                        notes.append(f"mcp server {sname!r} does not serve tool {want!r} (suite.toml "
                                     f"mcp.servers.{sname}.tools); it serves: {', '.join(sorted(names)) or 'none'}")
                for remote in served:
                    if spec.tools is None or remote.name in spec.tools:
                        offered = external.offered_name(sname, remote.name)
                        tools[offered] = McpTool(offered, remote, ext, meta=None, deadline=deadline, notes=notes)
            # the loop's own deadline starts now, after the starts; a call is cut just past it,
            # so the loop sees the deadline passed (a timeout runaway), as in-process
            deadline = time.monotonic() + ctx.timeout_s + DEADLINE_GRACE_S
            for tool in tools.values():
                if isinstance(tool, McpTool):
                    tool.deadline = deadline
            attempt = super().run_attempt(attrs.evolve(ctx, tools=tools))
        finally:
            if conn is not None and pool is not None:
                pool.release(conn)
            for ext in others:
                ext.close()
        for ext in others:
            if ext.stats.garbage_lines:
                notes.append(scrub(f"mcp server {ext.name!r} printed {ext.stats.garbage_lines} line(s) that are not "
                                   f"JSON-RPC on stdout (first: {ext.stats.garbage_sample!r}); they were skipped"))
        for w in notes:
            if w not in attempt.warnings:
                attempt.warnings.append(w)
        return attempt
