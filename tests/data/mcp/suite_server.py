"""A suite's external MCP server for tests, with a fault chosen by its first argument:

ok       serves ``read_text{path}`` (reads a file in its working directory) and ``whoami``
crash    exits with status 3 before answering anything
silent   reads stdin and never answers (no answer to initialize)
garbage  prints lines that are not JSON-RPC on stdout, then serves normally
noise    prints only garbage, forever
hang     serves, but ``read_text`` never returns
die      serves, but ``read_text`` kills the server
child    serves, and starts a grandchild that sleeps (it must die with the group)
"""

import os
import subprocess
import sys
import time

mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
if mode == "crash":
    sys.stderr.write("fake server: crashing on purpose\n")
    sys.exit(3)
if mode == "silent":
    for _line in sys.stdin:
        pass
    sys.exit(0)
if mode == "noise":
    while True:
        print("this is not json-rpc", flush=True)
        time.sleep(0.05)
if mode == "garbage":
    print("hello from a chatty server", flush=True)
    print("{not json", flush=True)
if mode == "child":
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])

import anyio  # noqa: E402
import mcp.types as types  # noqa: E402
from mcp.server.lowlevel import Server  # noqa: E402
from mcp.server.stdio import stdio_server  # noqa: E402

TOOLS = [
    types.Tool(name="read_text", description="Read a text file of the workspace.",
               input_schema={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
    types.Tool(name="whoami", description="The server's environment and working directory.",
               input_schema={"type": "object", "properties": {}}),
]


async def list_tools(_ctx, _params):
    return types.ListToolsResult(tools=TOOLS)


def text(t: str, error: bool = False):
    return types.CallToolResult(content=[types.TextContent(type="text", text=t)], is_error=error)


async def call_tool(_ctx, params):
    args = params.arguments or {}
    if params.name == "whoami":
        return text(repr({"cwd": os.getcwd(), "env": dict(os.environ)}))
    if mode == "hang":
        await anyio.sleep(3600)
    if mode == "die":
        os._exit(9)
    path = str(args.get("path", ""))
    if path.startswith("/") or ".." in path:
        return text(f"refused: {path}", error=True)
    try:
        with open(path, encoding="utf-8") as f:
            return text(f.read())
    except OSError as exc:
        return text(f"cannot read {path}: {exc.strerror}", error=True)


server = Server("suite-fake", on_list_tools=list_tools, on_call_tool=call_tool)


async def main():
    async with stdio_server() as (r, w):
        await server.run(r, w, server.create_initialization_options())


anyio.run(main)
