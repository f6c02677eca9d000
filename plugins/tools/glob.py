"""``glob{pattern}``: workspace paths matching a shell pattern (``*``, ``?``, ``[..]``, ``**``).

Matching is done with RE2 on a translated pattern (linear time), over a walk bounded in
depth and entries, never following symlinks.
"""

from __future__ import annotations

import re
import stat
from typing import Any, ClassVar

import re2

from hbench.sandbox import Sandbox
from hbench.text import has_surrogate
from hbench.tools import Tool, ToolError

MAX_RESULTS = 200
MAX_DEPTH = 12
MAX_ENTRIES = 5000
MAX_PATTERN = 500


def translate(pattern: str) -> str:
    """A glob pattern as an anchored regex over ``/``-separated relative paths.

    ``*`` and ``?`` never cross ``/``; a ``**`` segment matches zero or more folders.
    """
    segs = [s for s in pattern.split("/") if s not in ("", ".")]
    out: list[str] = []
    for i, seg in enumerate(segs):
        last = i == len(segs) - 1
        if seg == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        rx = []
        j = 0
        while j < len(seg):
            c = seg[j]
            if c == "*":
                rx.append("[^/]*")
            elif c == "?":
                rx.append("[^/]")
            elif c == "[":
                # as fnmatch: after '[' (and a '!'/'^'), a ']' is a member of the set, not its end
                start = j + 1
                if start < len(seg) and seg[start] in "!^":
                    start += 1
                if start < len(seg) and seg[start] == "]":
                    start += 1
                k = seg.find("]", start)
                if k == -1:
                    rx.append(re.escape(c))
                else:
                    body = seg[j + 1 : k]
                    neg = body[:1] in ("!", "^")
                    if neg:
                        body = body[1:]
                    body = body.replace("\\", "\\\\").replace("/", "")
                    if body.startswith("]"):
                        body = "\\" + body  # a literal ']' first in the set
                    rx.append(f"[{'^' if neg else ''}{body}]")
                    j = k
            else:
                rx.append(re.escape(c))
            j += 1
        out.append("".join(rx) + ("" if last else "/"))
    return "".join(out)


class Glob(Tool):
    name: ClassVar[str] = "glob"
    description: ClassVar[str] = (
        "Find workspace files whose path matches a shell pattern: '*' and '?' match within "
        "one folder name, '**/' matches any number of folders (e.g. '**/*.md' finds every "
        "Markdown file). Paths are relative to the workspace root."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"pattern": {"type": "string", "description": "Shell pattern, e.g. '**/*.csv'."}},
        "required": ["pattern"],
    }

    def call(self, args: dict[str, Any], sandbox: Sandbox) -> str:
        pattern = args.get("pattern")
        if not isinstance(pattern, str) or not pattern.strip():
            raise ToolError("glob needs a 'pattern' string, e.g. {\"pattern\": \"**/*.md\"}")
        if len(pattern) > MAX_PATTERN:
            raise ToolError(f"pattern is longer than {MAX_PATTERN} characters; refused")
        pattern = pattern.strip().replace("\\", "/")
        # the same confinement rules as a path: no NUL, absolute, '~' or '..'
        if "\x00" in pattern:
            raise ToolError("pattern contains a NUL byte; refused")
        if has_surrogate(pattern):
            raise ToolError("pattern holds a lone surrogate (text that is not valid Unicode); refused")
        if pattern.startswith("/") or pattern.startswith("~") or re.match(r"^[A-Za-z]:", pattern):
            raise ToolError(f"pattern {pattern!r} is not relative to the workspace root; refused (try '**/*.md')")
        if ".." in pattern.split("/"):
            raise ToolError(f"pattern {pattern!r} contains '..'; refused. Stay inside the workspace")
        try:
            rx = re2.compile(translate(pattern))
        except re2.error as exc:
            raise ToolError(f"invalid pattern {pattern!r}: {exc}") from None
        hits: list[str] = []
        more = False
        for p, st in sandbox.walk(sandbox.root, max_depth=MAX_DEPTH, max_entries=MAX_ENTRIES):
            rel = sandbox.rel(p)
            if rx.fullmatch(rel):
                if len(hits) >= MAX_RESULTS:
                    more = True
                    break
                hits.append(rel + ("/" if stat.S_ISDIR(st.st_mode) else ""))
        if not hits:
            return f"no paths match {pattern!r}"
        return "\n".join(hits) + (f"\n... more than {MAX_RESULTS} matches; narrow the pattern" if more else "")
