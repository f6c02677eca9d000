"""``list_dir{path}``: the entries of one folder inside the attempt's workspace."""

from __future__ import annotations

import os
import stat
from typing import Any, ClassVar

from hbench.sandbox import Sandbox, human_size
from hbench.tools import Tool, ToolError

MAX_ENTRIES = 500


class ListDir(Tool):
    name: ClassVar[str] = "list_dir"
    description: ClassVar[str] = (
        "List the files and folders in a folder of the workspace. Folders end with '/'. "
        "Paths are relative to the workspace root; '.' is the root."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "Folder to list, e.g. '.' or 'notes'."}},
        "required": [],
    }

    def call(self, args: dict[str, Any], sandbox: Sandbox) -> str:
        shown = args.get("path", ".")
        real = sandbox.resolve(shown)
        try:
            st = os.stat(real)
        except FileNotFoundError:
            raise ToolError(f"no such folder: {shown!r}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise ToolError(f"{shown!r} is a file, not a folder; use read_file")
        try:
            names = sorted(os.listdir(real))
        except OSError as exc:
            raise ToolError(f"cannot list {shown!r}: {exc.strerror or exc}") from None
        lines = []
        for name in names[:MAX_ENTRIES]:
            try:
                est = os.lstat(real / name)
            except OSError:
                continue
            if stat.S_ISDIR(est.st_mode):
                lines.append(f"{name}/")
            elif stat.S_ISLNK(est.st_mode):
                lines.append(f"{name}@ (symlink)")
            elif stat.S_ISREG(est.st_mode):
                lines.append(f"{name} ({human_size(est.st_size)})")
            else:
                lines.append(f"{name} (special file)")
        where = sandbox.rel(real)
        if not lines:
            return f"{where}: empty folder"
        more = f"\n... and {len(names) - MAX_ENTRIES} more entries" if len(names) > MAX_ENTRIES else ""
        return f"{where}:\n" + "\n".join(lines) + more
