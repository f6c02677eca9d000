"""``hbench mcp-serve``: the sandboxed tools as a stdio MCP server.

Tools served: every registered tool (the five built-ins, and the decoy catalogue) and,
with ``--suite``, the suite's own tools (``tools.jsonl``; a suite tool wins a name clash,
as in-process). Every call runs the same :class:`hbench.tools.Tool` object as the
in-process agent, inside a :class:`hbench.sandbox.Sandbox`:

* ``--root DIR``: one sandbox on DIR for the server's life (what Hermes and people use);
* ``--root BASE --attempt-roots``: the warm-pool mode of the ``builtin-mcp`` agent. Each
  ``tools/call`` names its attempt's scratch copy in ``_meta`` (:data:`META_ROOT`,
  :data:`META_ATTEMPT`), which must be a directory strictly inside BASE; each attempt
  gets its own sandbox (and so its own suite-tool state), never another's. A call
  without them is refused.

A refusal (:class:`~hbench.tools.ToolError`) and a tool's own crash are ``isError``
results the model reads; nothing a caller sends stops the server.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

from hbench.sandbox import Sandbox
from hbench.tools import Tool, ToolError

META_ROOT = "dev.hbench/root"
META_ATTEMPT = "dev.hbench/attempt"
#: attempts whose sandboxes (and suite-tool state) a pooled server keeps
KEEP_ATTEMPTS = 64
SERVER_NAME = "hbench"


def build_tools(suite: str | None, *, names: list[str] | None = None, decoys: bool = False) -> dict[str, Tool]:
    """The tools the server offers: registered tools (the decoy catalogue only with
    ``decoys``), then the suite's own over them; only ``names`` when given (an unknown
    name is an error naming the known ones)."""
    from hbench.errors import BadInput
    from hbench.plugin_manager import get_registries

    reg = get_registries()
    every: dict[str, Tool] = {n: reg.tools.get(n) for n in reg.tools.names()}
    if suite:
        from hbench.suite import load_suite
        from hbench.suite_tools import build_suite_tools

        every.update(build_suite_tools(load_suite(suite)))
    if names is None:
        return {n: t for n, t in every.items() if decoys or not getattr(t, "decoy", False)}
    unknown = [n for n in names if n not in every]
    if unknown:
        raise BadInput(f"--tools: unknown tool {', '.join(map(repr, unknown))} (known: {', '.join(sorted(every))})")
    return {n: every[n] for n in names}


class Confinement:
    """Which sandbox a call runs in."""

    def __init__(self, root: Path, attempt_roots: bool):
        self.base = Sandbox(root)
        self.attempt_roots = attempt_roots
        self._boxes: OrderedDict[str, Sandbox] = OrderedDict()

    def sandbox(self, meta: Any) -> Sandbox:
        if not self.attempt_roots:
            return self.base
        meta = meta if isinstance(meta, dict) else {}
        root, token = meta.get(META_ROOT), meta.get(META_ATTEMPT)
        if not isinstance(root, str) or not isinstance(token, str) or not token:
            raise ToolError("this server serves attempts: the call must name its attempt's root in _meta; refused")
        key = f"{token}\0{root}"
        box = self._boxes.get(key)
        if box is None:
            real = os.path.realpath(root)
            base = str(self.base.root)
            if not real.startswith(base + os.sep) or not os.path.isdir(real):
                raise ToolError("the attempt root is not a folder inside the server's root; refused")
            box = self._boxes[key] = Sandbox(Path(real))
            while len(self._boxes) > KEEP_ATTEMPTS:
                self._boxes.popitem(last=False)
        self._boxes.move_to_end(key)
        return box


def make_server(tools: dict[str, Tool], confinement: Confinement) -> Any:
    import mcp.types as types
    from mcp.server.lowlevel import Server

    from hbench import __version__
    from hbench.logging import get_logger

    listing = [types.Tool(name=t.name, description=t.description, input_schema=dict(t.parameters))
               for t in tools.values()]

    def error(text: str) -> Any:
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)

    async def list_tools(_ctx: Any, _params: Any) -> Any:
        return types.ListToolsResult(tools=listing)

    def run(tool: Tool, args: dict[str, Any], box: Sandbox) -> tuple[bool, str]:
        try:
            return True, tool.call(args, box)
        except ToolError as exc:
            return False, str(exc)
        except Exception as exc:  # noqa: BLE001 - a tool bug is an error result, never a crash
            get_logger().warning("mcp.tool_crashed", tool=tool.name, error=f"{type(exc).__name__}: {exc}")
            return False, f"the tool failed internally ({type(exc).__name__})"

    async def call_tool(_ctx: Any, params: Any) -> Any:
        tool = tools.get(params.name)
        if tool is None:
            return error(f"unknown tool {params.name!r}; the tools are: {', '.join(sorted(tools))}")
        args = params.arguments if params.arguments is not None else {}
        if not isinstance(args, dict):
            return error(f"arguments must be a JSON object, got {type(args).__name__}")
        try:
            box = confinement.sandbox(params.meta)
        except ToolError as exc:
            return error(str(exc))
        ok, text = run(tool, args, box)  # in the loop: tools are bounded (BENCHMARKS.md, MCP: a thread hop per call cost more)
        if not ok:
            return error(text)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    return Server(SERVER_NAME, version=__version__, on_list_tools=list_tools, on_call_tool=call_tool)


def serve(root: Path, *, suite: str | None = None, attempt_roots: bool = False,
          tools: list[str] | None = None) -> None:
    """Serve over stdin/stdout until stdin closes. The pool mode (``attempt_roots``)
    serves the decoys too: the agent offers each prompt its own set."""
    import anyio
    from mcp.server.stdio import stdio_server

    confinement = Confinement(root, attempt_roots)
    server = make_server(build_tools(suite, names=tools, decoys=attempt_roots), confinement)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)
