"""``read_file{path}``: the text of one file inside the attempt's workspace (capped)."""

from __future__ import annotations

from typing import Any, ClassVar

from hbench.sandbox import Sandbox, decode_text, human_size
from hbench.tools import Tool, ToolError


class ReadFile(Tool):
    name: ClassVar[str] = "read_file"
    description: ClassVar[str] = (
        "Read a text file in the workspace. Paths are relative to the workspace root, "
        "e.g. 'notes/budget.md'. Large files are cut off after the first 32 KiB."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "File to read, relative to the workspace root."}},
        "required": ["path"],
    }

    def call(self, args: dict[str, Any], sandbox: Sandbox) -> str:
        if "path" not in args:
            raise ToolError("read_file needs a 'path' argument, e.g. {\"path\": \"notes.md\"}")
        data, size = sandbox.read_bytes(args["path"])
        text = decode_text(data)
        if text is None:
            raise ToolError(f"{args['path']!r} is a binary file ({human_size(size)}); read_file shows text only")
        if size > len(data):
            text += f"\n[truncated: showing the first {human_size(len(data))} of {human_size(size)}]"
        return text
