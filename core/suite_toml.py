"""Reading a suite's files with ``file:line: key: message (fix)`` problems: ``suite.toml``,
``ground_truth.json`` (flattened, nested placeholders resolved) and the rows of a JSONL
file (``prompts.jsonl``, v0.1 ``data/train.jsonl``, ``tools.jsonl``).

Every problem is collected in a :class:`Problems` list, not raised, so that validation
reports all of them at once (:func:`hbench.suite.load_suite`). Text files have CRLF
turned into LF (:func:`norm_bytes`) before they are hashed, parsed or rendered.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import attrs

from hbench.config import error_lines, make_converter
from hbench.limits import MAX_SUITE_FILE_BYTES, LimitError, loads_json, loads_toml, read_limited
from hbench.models import SuiteDefaults
from hbench.placeholders import PLACEHOLDER, substitute, unknown_msg
from hbench.suite_mcp import parse_mcp

LAYOUT_HBENCH = "hbench"
LAYOUT_V01 = "hermes-brain-bench-0.1"

DEFAULT_SYSTEM_PROMPT = (
    "You are an agent working in a folder of files (your working directory). Answer "
    "from the files, using your tools to list, search and read them, and to calculate. "
    "Do not guess: if the files do not hold the answer, say so plainly."
)

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


# --------------------------------------------------------------------------- file rows


@attrs.define
class SuiteFile:
    """``suite.toml``."""

    name: str
    version: str
    system_prompt: str = DEFAULT_SYSTEM_PROMPT  # optional (DESIGN.md): the v0.1 layout's default
    description: str = ""
    defaults: SuiteDefaults = attrs.field(factory=SuiteDefaults)
    #: ``[mcp.servers.NAME]``, validated apart (hbench.suite_mcp), not structured by cattrs
    mcp_servers: dict[str, Any] = attrs.field(factory=dict, init=False)


@attrs.define
class PromptRow:
    """One line of ``prompts.jsonl`` (or v0.1 ``data/train.jsonl``) before checks resolve."""

    id: str
    prompt: str
    check: dict[str, Any]
    category: str = ""
    core: bool = True
    conditional: str | None = None
    expect_tool_any: list[str] = attrs.field(factory=list)
    vibe: bool = False
    note: str = ""
    # suite format 2 (DESIGN.md, "Scenario fields"); checked by hbench.suite_checks
    tools: list[str] | None = None
    decoys: int = 0
    forbid_tools: list[str] = attrs.field(factory=list)
    expect_args: list[Any] = attrs.field(factory=list)
    turns: list[Any] = attrs.field(factory=list)
    difficulty: int | None = None
    tags: list[str] = attrs.field(factory=list)


class Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, key: str | None, message: str) -> None:
        self.lines.append(f"{where}: {key}: {message}" if key else f"{where}: {message}")


# --------------------------------------------------------------------------- text


def norm_bytes(data: bytes) -> bytes:
    """Text files (UTF-8) get CRLF -> LF, so a Windows checkout hashes the same."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    return data.replace(b"\r\n", b"\n")


# --------------------------------------------------------------------------- suite.toml


def with_hint(line: str) -> str:
    """Add "did you mean" to an ``unknown key 'x' (allowed: a, b)`` line."""
    m = re.search(r"unknown key '([^']+)' \(allowed: ([^)]*)\)$", line)
    if not m:
        return line
    close = difflib.get_close_matches(m.group(1), [a.strip() for a in m.group(2).split(",")], n=1, cutoff=0.6)
    return f"{line}; did you mean {close[0]!r}?" if close else line


def _line_of_key(text: str, dotted: str) -> int | None:
    """Best-effort line number of a TOML key (``defaults.runs``) for messages."""
    parts = dotted.split(".")
    leaf = parts[-1]
    table = ".".join(parts[:-1])
    current = ""
    for i, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        m = re.match(r"^\[\s*([^\]]+?)\s*\]", s)
        if m:
            current = m.group(1)
            continue
        if re.match(rf"^[\"']?{re.escape(leaf)}[\"']?\s*=", s) and current == table:
            return i
        if table and current == "" and re.match(rf"^{re.escape(dotted)}\s*=", s):
            return i
    return None


def _toml_where(fname: str, text: str, line: str) -> str:
    """Prefix a ``fname: key: msg`` line from error_lines with the key's line number."""
    line = with_hint(line)
    m = re.match(rf"^{re.escape(fname)}: ([^:]+): (.*)$", line, re.DOTALL)
    if not m:
        return line
    key, msg = m.group(1), m.group(2)
    if key == "(top level)":
        key = ""
    extra = re.match(r"unknown key '([^']+)'", msg)
    n = _line_of_key(text, f"{key}.{extra.group(1)}" if key else extra.group(1)) if extra else _line_of_key(text, key)
    if not key:
        return f"{fname}:{n}: {msg}" if n else f"{fname}: {msg}"
    return f"{fname}:{n}: {key}: {msg}" if n else line


def load_suite_toml(path: Path, problems: Problems) -> tuple[SuiteFile | None, bytes]:
    fname = "suite.toml"
    try:
        data = read_limited(path, MAX_SUITE_FILE_BYTES)
        text = data.decode("utf-8-sig")
        raw = loads_toml(text)
    except LimitError as exc:
        problems.add(fname, None, str(exc))
        return None, b""
    except UnicodeDecodeError:
        problems.add(fname, None, "not UTF-8 text (save it as UTF-8)")
        return None, data
    except tomllib.TOMLDecodeError as exc:
        problems.add(fname, None, f"not valid TOML: {exc} (check quotes and brackets on that line)")
        return None, data
    conv = make_converter()
    mcp_raw = raw.pop("mcp", None) if isinstance(raw, dict) else None
    try:
        meta = conv.structure(raw, SuiteFile)
    except Exception as exc:  # noqa: BLE001
        for line in error_lines(exc, fname):
            problems.lines.append(_toml_where(fname, text, line))
        return None, data
    if mcp_raw is not None:  # [mcp.servers.NAME] (DESIGN.md, MCP)
        meta.mcp_servers = parse_mcp(mcp_raw, lambda key, msg: problems.lines.append(
            _toml_where(fname, text, f"{fname}: {key}: {msg}")))
    return meta, data


# --------------------------------------------------------------------------- ground_truth.json


def load_ground_truth(path: Path, problems: Problems) -> tuple[dict[str, str], bytes]:
    fname = "ground_truth.json"
    if not path.is_file():
        problems.add(fname, None, "missing (create it: a JSON object of placeholder values, {} if none)")
        return {}, b""
    try:
        data = read_limited(path, MAX_SUITE_FILE_BYTES)
        text = data.decode("utf-8-sig")
        raw = loads_json(text)
    except LimitError as exc:
        problems.add(fname, None, str(exc))
        return {}, b""
    except UnicodeDecodeError:
        problems.add(fname, None, "not UTF-8 text (save it as UTF-8)")
        return {}, data
    except json.JSONDecodeError as exc:
        problems.add(f"{fname}:{exc.lineno}", None, f"not valid JSON: {exc.msg} (column {exc.colno})")
        return {}, data
    if not isinstance(raw, dict):
        problems.add(fname, None, 'expected a JSON object like {"budget": "42,000"}')
        return {}, data

    def line_of(key: str) -> str:
        needle = json.dumps(key.split(".")[-1])
        for i, line in enumerate(text.splitlines(), start=1):
            if needle in line:
                return f"{fname}:{i}"
        return fname

    out: dict[str, str] = {}

    def put(key: str, value: Any) -> None:
        if not _KEY.match(key):
            problems.add(line_of(key), key, "a placeholder name is letters, digits, '_', '.', '-' and starts with a letter or '_'")
        elif isinstance(value, dict):
            for k, v in value.items():
                put(f"{key}.{k}", v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                put(f"{key}.{i}", v)
        elif isinstance(value, bool) or value is None:
            problems.add(line_of(key), key, f"expected text or a number, got {json.dumps(value)} (quote it)")
        elif isinstance(value, (int, float, str)):
            out[key] = value if isinstance(value, str) else json.dumps(value)

    for k, v in raw.items():
        put(k, v)
    _resolve_nested(out, line_of, problems)
    return out, data


def _resolve_nested(values: dict[str, str], line_of: Any, problems: Problems) -> None:
    """Resolve ``{{name}}`` inside ground-truth values in place (``"full": "{{first}}
    {{last}}"``). An unknown name or a loop (``a`` -> ``b`` -> ``a``) is a problem at the
    value's line; such a value is left as written."""
    done: dict[str, str] = {}
    bad: set[str] = set()

    def resolve(key: str, chain: list[str]) -> str | None:
        if key in done:
            return done[key]
        if key in bad:
            return None
        if key in chain:
            loop = chain[chain.index(key):] + [key]
            problems.add(line_of(loop[0]), loop[0], "placeholder loop " + " -> ".join(f"{{{{{k}}}}}" for k in loop)
                         + " (a value cannot contain itself: write one of them out)")
            bad.update(loop)
            return None
        text = values[key]
        names = [m.group(1) for m in PLACEHOLDER.finditer(text)]
        if not names:
            done[key] = text
            return text
        subs: dict[str, str] = {}
        for name in names:
            if name not in values:
                problems.add(line_of(key), key, unknown_msg([name], [k for k in values if k != key]))
                bad.add(key)
                return None
            got = resolve(name, chain + [key])
            if got is None:
                bad.add(key)
                return None
            subs[name] = got
        done[key] = substitute(text, subs)
        return done[key]

    for key in list(values):
        got = resolve(key, [])
        if got is not None:
            values[key] = got


# --------------------------------------------------------------------------- JSONL rows


def read_rows(path: Path, fname: str, problems: Problems, what: str = "prompt") -> list[tuple[int, dict[str, Any]]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        text = norm_bytes(read_limited(path, MAX_SUITE_FILE_BYTES)).decode("utf-8-sig")
    except LimitError as exc:
        problems.add(fname, None, str(exc))
        return rows
    except UnicodeDecodeError:
        problems.add(fname, None, "not UTF-8 text (save it as UTF-8)")
        return rows
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = loads_json(line)
        except LimitError as exc:
            problems.add(f"{fname}:{lineno}", None, str(exc))
            continue
        except json.JSONDecodeError as exc:
            problems.add(f"{fname}:{lineno}", None, f"not valid JSON: {exc.msg} at column {exc.colno} (one JSON object per line)")
            continue
        if not isinstance(obj, dict):
            problems.add(f"{fname}:{lineno}", None, f"expected a JSON object (one {what} per line)")
            continue
        rows.append((lineno, obj))
    if not rows and not any(p.startswith(fname) for p in problems.lines):
        problems.add(fname, None, f"holds no {what}s (add one JSON object per line)")
    return rows
