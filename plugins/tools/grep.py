"""``grep{pattern, path?}``: lines matching a regex in workspace files.

Patterns run on RE2 (``google-re2``): linear time in the input, so a catastrophic pattern
such as ``(a+)+$`` cannot hang the attempt; backreferences and lookaround are refused by
RE2 itself. Smart case: case-insensitive unless the pattern holds an upper-case letter.
Bounded: per-file bytes, total bytes, matches, line length and walk size.
"""

from __future__ import annotations

import stat
from typing import Any, ClassVar

import re2

from hbench.sandbox import Sandbox, decode_text, human_size
from hbench.text import has_surrogate
from hbench.tools import Tool, ToolError

MAX_PATTERN = 1000
MAX_MATCHES = 200
MAX_LINE = 300
MAX_FILE_BYTES = 1 << 20
MAX_TOTAL_BYTES = 32 << 20
MAX_DEPTH = 12
MAX_ENTRIES = 5000
RE2_MAX_MEM = 8 << 20


def compile_pattern(pattern: str) -> Any:
    opts = re2.Options()
    opts.max_mem = RE2_MAX_MEM
    opts.case_sensitive = any(c.isupper() for c in pattern)
    opts.log_errors = False
    try:
        return re2.compile(pattern, opts)
    except re2.error as exc:
        raise ToolError(
            f"invalid pattern {pattern!r} ({exc}); grep uses RE2 syntax (no backreferences "
            f"or lookaround); a plain word works too"
        ) from None


class Grep(Tool):
    name: ClassVar[str] = "grep"
    description: ClassVar[str] = (
        "Search workspace files for lines matching a regular expression (RE2 syntax; "
        "case-insensitive unless the pattern has an upper-case letter). 'path' is a file or "
        "folder relative to the workspace root (default: the whole workspace). Prints "
        "'file:line: text' for each match."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "description": "Regular expression or plain word to find."},
            "path": {"type": "string", "description": "File or folder to search (default '.')."},
        },
        "required": ["pattern"],
    }

    def call(self, args: dict[str, Any], sandbox: Sandbox) -> str:
        pattern = args.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise ToolError("grep needs a 'pattern' string, e.g. {\"pattern\": \"budget\"}")
        if len(pattern) > MAX_PATTERN:
            raise ToolError(f"pattern is longer than {MAX_PATTERN} characters; refused")
        if "\x00" in pattern:
            raise ToolError("pattern contains a NUL byte; refused")
        if has_surrogate(pattern):
            raise ToolError("pattern holds a lone surrogate (text that is not valid Unicode); refused")
        rx = compile_pattern(pattern)
        shown = args.get("path") or "."
        start = sandbox.resolve(shown)
        try:
            st = start.lstat()
        except FileNotFoundError:
            raise ToolError(f"no such file or folder: {shown!r}") from None
        if stat.S_ISDIR(st.st_mode):
            files = [p for p, s in sandbox.walk(start, max_depth=MAX_DEPTH, max_entries=MAX_ENTRIES)
                     if not stat.S_ISDIR(s.st_mode)]
            single = False
        else:
            files = [start]
            single = True
        out: list[str] = []
        notes: list[str] = []
        total = 0
        full = False
        for f in files:
            rel = sandbox.rel(f)
            if total >= MAX_TOTAL_BYTES:
                notes.append(f"stopped after searching {human_size(total)}; narrow the path")
                break
            try:
                data, size = sandbox.read_bytes(rel, limit=min(MAX_FILE_BYTES, MAX_TOTAL_BYTES - total))
            except ToolError as exc:
                if single:
                    raise
                notes.append(f"skipped {rel}: {exc}")
                continue
            total += len(data)
            text = decode_text(data)
            if text is None:
                if single:
                    raise ToolError(f"{rel!r} is a binary file; grep searches text only")
                continue
            if size > len(data):
                notes.append(f"only the first {human_size(len(data))} of {rel} ({human_size(size)}) was searched")
            for no, line in enumerate(text.splitlines(), 1):
                if rx.search(line):
                    if len(out) >= MAX_MATCHES:
                        full = True
                        break
                    cut = line if len(line) <= MAX_LINE else line[:MAX_LINE] + "..."
                    out.append(f"{rel}:{no}: {cut}")
            if full:
                notes.append(f"more than {MAX_MATCHES} matches; narrow the pattern or path")
                break
        body = "\n".join(out) if out else f"no lines match {pattern!r}"
        if notes:
            body += "\n" + "\n".join(f"[{n}]" for n in notes[:20])
        return body
