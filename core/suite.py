"""Suites: load and validate a suite folder, substitute placeholders, render fixtures.

Two layouts (DESIGN.md, section Suites)::

    hbench                       hermes-brain-bench v0.1 (published dataset)
    suite.toml                   data/train.jsonl      (same prompt fields)
    prompts.jsonl                ground_truth.json
    ground_truth.json            scratch/              (pre-seeded, copied verbatim)
    fixtures/   (templates)

``{{name}}`` placeholders resolve from ``ground_truth.json`` in prompt text, in check
fields (escaped in a kind's ``regex_fields``) and in fixture templates. Validation reports
every problem, not the first, each as ``file:line: key: message (fix)``.

Hashes are stable across machines: text files have CRLF turned into LF before hashing
and rendering, and a tree's sha256 is taken over its sorted relative POSIX paths and
bytes: for each file, ``path + NUL + str(len(bytes)) + NUL + bytes``.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping

import attrs

from hbench.config import error_lines, make_converter
from hbench.errors import SuiteError
from hbench.limits import MAX_SUITE_FILE_BYTES, LimitError, loads_json, loads_toml, read_limited
from hbench.models import ArgsExpectation, FollowUp, Prompt, Suite, SuiteDefaults

__all__ = [
    "LAYOUT_HBENCH",
    "LAYOUT_V01",
    "DEFAULT_SYSTEM_PROMPT",
    "fixture_files",
    "load_suite",
    "render_fixtures",
    "resolve_suite",
    "substitute",
    "tree_sha256",
]

LAYOUT_HBENCH = "hbench"
LAYOUT_V01 = "hermes-brain-bench-0.1"

#: v0.1 check kinds that are spelled differently here
V01_KIND_ALIASES = {"numeric": "number"}

#: files and folders never part of a fixture tree (byte-compilation and OS litter)
IGNORED_NAMES = frozenset({"__pycache__", ".DS_Store", "Thumbs.db", ".git"})
IGNORED_SUFFIXES = (".pyc", ".pyo")

DEFAULT_SYSTEM_PROMPT = (
    "You are an agent working in a folder of files (your working directory). Answer "
    "from the files, using your tools to list, search and read them, and to calculate. "
    "Do not guess: if the files do not hold the answer, say so plainly."
)

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}\}")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
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
    # suite format 2 (DESIGN.md, "Scenario fields"); checked by _scenario_fields
    tools: list[str] | None = None
    decoys: int = 0
    forbid_tools: list[str] = attrs.field(factory=list)
    expect_args: list[Any] = attrs.field(factory=list)
    turns: list[Any] = attrs.field(factory=list)
    difficulty: int | None = None
    tags: list[str] = attrs.field(factory=list)


class _Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, key: str | None, message: str) -> None:
        self.lines.append(f"{where}: {key}: {message}" if key else f"{where}: {message}")


# --------------------------------------------------------------------------- placeholders


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean {{{{{close[0]}}}}}?" if close else "add it to ground_truth.json or fix the name"


def substitute(
    text: str,
    values: Mapping[str, str],
    *,
    escape: bool = False,
    unknown: list[str] | None = None,
) -> str:
    """Replace ``{{name}}`` with ``values[name]`` (``re.escape``d when ``escape``). Names
    not in ``values`` are left as they are and appended to ``unknown`` when given."""

    def repl(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            if unknown is not None:
                unknown.append(key)
            return m.group(0)
        return re.escape(values[key]) if escape else values[key]

    return PLACEHOLDER.sub(repl, text)


def _substitute_tree(value: Any, values: Mapping[str, str], escape: bool, unknown: list[str]) -> Any:
    if isinstance(value, str):
        return substitute(value, values, escape=escape, unknown=unknown)
    if isinstance(value, list):
        return [_substitute_tree(v, values, escape, unknown) for v in value]
    if isinstance(value, dict):
        return {k: _substitute_tree(v, values, escape, unknown) for k, v in value.items()}
    return value


def _unknown_msg(names: list[str], known: Iterable[str]) -> str:
    uniq = list(dict.fromkeys(names))
    known = sorted(known)
    parts = [f"unknown placeholder {{{{{n}}}}} ({_did_you_mean(n, known)})" for n in uniq]
    return "; ".join(parts)


# --------------------------------------------------------------------------- hashing


def _norm_bytes(data: bytes) -> bytes:
    """Text files (UTF-8) get CRLF -> LF, so a Windows checkout hashes the same."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    return data.replace(b"\r\n", b"\n")


def tree_sha256(files: Mapping[str, bytes]) -> str:
    """sha256 over sorted relative POSIX paths and their bytes (see the module doc)."""
    h = hashlib.sha256()
    for rel in sorted(files):
        data = files[rel]
        h.update(rel.encode("utf-8") + b"\0" + str(len(data)).encode("ascii") + b"\0")
        h.update(data)
    return h.hexdigest()


def fixture_files(root: Path) -> dict[str, Path]:
    """Regular files under ``root`` by relative POSIX path (sorted), ignoring byte-code and
    OS litter. Raises ValueError on a symlink (it could point out of the sandbox)."""
    out: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_NAMES)
        base = Path(dirpath)
        for d in dirnames:
            if (base / d).is_symlink():
                raise ValueError(f"{(base / d).relative_to(root).as_posix()}: symlinks are not allowed in fixtures")
        for f in sorted(filenames):
            if f in IGNORED_NAMES or f.endswith(IGNORED_SUFFIXES):
                continue
            p = base / f
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                raise ValueError(f"{rel}: symlinks are not allowed in fixtures (copy the file instead)")
            if p.is_file():
                out[rel] = p
    return dict(sorted(out.items()))


def _render_tree(root: Path, values: Mapping[str, str], template: bool, where: str, problems: _Problems) -> dict[str, bytes]:
    """Render every file under ``root`` in memory: templates get placeholders replaced."""
    try:
        files = fixture_files(root)
    except ValueError as exc:
        problems.add(f"{where}/{str(exc).split(':', 1)[0]}", None, str(exc).split(": ", 1)[1])
        return {}
    out: dict[str, bytes] = {}
    for rel, path in files.items():
        data = _norm_bytes(path.read_bytes())
        if template:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                out[rel] = data  # binary: copied verbatim
                continue
            for lineno, line in enumerate(text.split("\n"), start=1):
                unknown: list[str] = []
                substitute(line, values, unknown=unknown)
                if unknown:
                    problems.add(f"{where}/{rel}:{lineno}", None, _unknown_msg(unknown, values))
            data = substitute(text, values).encode("utf-8")
        out[rel] = data
    return out


# --------------------------------------------------------------------------- resolve


def _registries(registries: Any) -> Any:
    if registries is None:
        from hbench.plugin_manager import get_registries

        return get_registries()
    return registries


def resolve_suite(name_or_path: str | os.PathLike[str], registries: Any = None) -> Path:
    """A suite name registered by a plugin (``hermes-brain``), or a folder path."""
    raw = os.fspath(name_or_path)
    p = Path(raw).expanduser()
    if p.is_dir():
        return p.resolve()
    reg = _registries(registries)
    if raw in reg.suites:
        return Path(reg.suites.get(raw)).resolve()
    installed = ", ".join(reg.suites.names()) or "none"
    hint = _did_you_mean_plain(raw, reg.suites.names())
    raise SuiteError(
        f"no suite {raw!r}: not an installed suite (installed: {installed}) and no folder at {p}"
        f" ({hint}pass an installed name or the path to a folder holding suite.toml)"
    )


def _did_you_mean_plain(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


# --------------------------------------------------------------------------- load


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
    line = _with_hint(line)
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


def _load_suite_toml(path: Path, problems: _Problems) -> tuple[SuiteFile | None, bytes]:
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
        from hbench.suite_mcp import parse_mcp

        meta.mcp_servers = parse_mcp(mcp_raw, lambda key, msg: problems.lines.append(
            _toml_where(fname, text, f"{fname}: {key}: {msg}")))
    return meta, data


def _load_ground_truth(path: Path, problems: _Problems) -> tuple[dict[str, str], bytes]:
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


def _resolve_nested(values: dict[str, str], line_of: Any, problems: _Problems) -> None:
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
                problems.add(line_of(key), key, _unknown_msg([name], [k for k in values if k != key]))
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


def _read_rows(path: Path, fname: str, problems: _Problems, what: str = "prompt") -> list[tuple[int, dict[str, Any]]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        text = _norm_bytes(read_limited(path, MAX_SUITE_FILE_BYTES)).decode("utf-8-sig")
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


@functools.lru_cache(maxsize=1)
def _check_converter() -> Any:
    """One converter for every check of every load: a new one per check cost ~4 ms (its
    structure functions are generated anew), 0.5 s for a 42-prompt suite."""
    return make_converter()


def _build_check(
    raw: Any, where: str, values: Mapping[str, str], checks: Any, problems: _Problems, kind_aliases: Mapping[str, str],
    *, prompt: str = "",
) -> Any:
    """One prompt's check, its options substituted and validated. A kind may define
    ``options_from_prompt(prompt, options) -> options`` to read defaults from the prompt
    text (the asked unit, the asked kind of value)."""
    if not isinstance(raw, dict):
        problems.add(where, "check", 'expected an object like {"kind": "substring", "any": ["..."]}')
        return None
    kind = raw.get("kind")
    if not isinstance(kind, str) or not kind:
        problems.add(where, "check.kind", f"missing (installed: {', '.join(checks.names())})")
        return None
    kind = kind_aliases.get(kind, kind)
    if kind not in checks:
        close = difflib.get_close_matches(kind, checks.names(), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.add(where, "check.kind", f"unknown check kind {raw['kind']!r} (installed: {', '.join(checks.names())}){hint}")
        return None
    cls = checks.get(kind)
    regex_fields = set(getattr(cls, "regex_fields", ()) or ())
    opts: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "kind":
            continue
        unknown: list[str] = []
        opts[key] = _substitute_tree(value, values, key in regex_fields, unknown)
        if unknown:
            problems.add(where, f"check.{key}", _unknown_msg(unknown, values))
        empty = sorted({n for n in _placeholders_in(value) if n in values and not values[n].strip()})
        if empty:
            problems.add(where, f"check.{key}", "; ".join(
                f"{{{{{n}}}}} is empty in ground_truth.json, so the check would compare nothing (an empty value in a "
                f"pattern matches every answer): give {n!r} a value or take it out of the check" for n in empty))
    hook = getattr(cls, "options_from_prompt", None)
    if callable(hook) and prompt:
        try:
            opts = hook(prompt, opts)
        except Exception as exc:  # noqa: BLE001 - a plugin's hook: report, do not crash validation
            problems.add(where, "check", f"{kind}.options_from_prompt failed: {exc}")
            return None
    conv = _check_converter()
    try:
        return conv.structure(opts, cls)
    except Exception as exc:  # noqa: BLE001
        # Option validators raise "field: message"; fold the field into the key path.
        field_msg = re.compile(rf"^{re.escape(where)}: check: ([A-Za-z_][\w\[\]]*): (.*)$", re.DOTALL)
        for line in error_lines(exc, where, "check"):
            m = field_msg.match(line)
            problems.lines.append(f"{where}: check.{m.group(1)}: {m.group(2)}" if m else _with_hint(line))
        return None


def _placeholders_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [m.group(1) for m in PLACEHOLDER.finditer(value)]
    if isinstance(value, list):
        return [n for v in value for n in _placeholders_in(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _placeholders_in(v)]
    return []


def _build_prompts(
    rows: list[tuple[int, dict[str, Any]]],
    fname: str,
    values: Mapping[str, str],
    checks: Any,
    problems: _Problems,
    kind_aliases: Mapping[str, str],
) -> list[Prompt]:
    conv = make_converter()
    prompts: list[Prompt] = []
    seen: dict[str, int] = {}
    for lineno, obj in rows:
        where = f"{fname}:{lineno}"
        raw = dict(obj)
        if raw.get("conditional") == "":
            raw["conditional"] = None
        check_raw = raw.get("check")
        if "check" in raw:
            raw["check"] = {}  # structured separately, with its kind's class
        try:
            row = conv.structure(raw, PromptRow)
        except Exception as exc:  # noqa: BLE001
            for line in error_lines(exc, where):
                problems.lines.append(_with_hint(line.replace(f"{where}: (top level): ", f"{where}: ")))
            if isinstance(check_raw, dict):  # still report the check's own problems
                _build_check(check_raw, where, values, checks, problems, kind_aliases)
            continue
        if not _ID.match(row.id):
            problems.add(where, "id", f"{row.id!r} is not a usable id (letters, digits, '_', '.', '-'; it names files)")
        elif row.id in seen:
            problems.add(where, "id", f"duplicate prompt id {row.id!r} (first at line {seen[row.id]}; ids must be unique)")
        else:
            seen[row.id] = lineno
        if not row.prompt.strip():
            problems.add(where, "prompt", "empty (write the task the agent gets)")
        bad_tokens = [t for t in row.expect_tool_any if not isinstance(t, str) or not t.strip()]
        if bad_tokens:
            problems.add(where, "expect_tool_any", "tokens must be non-empty tool-name fragments like \"read\"")
        unknown: list[str] = []
        text = substitute(row.prompt, values, unknown=unknown)
        if unknown:
            problems.add(where, "prompt", _unknown_msg(unknown, values))
        check = _build_check(check_raw, where, values, checks, problems, kind_aliases, prompt=text)
        # the scenario fields' problems are listed, and the prompt is kept (the load fails
        # anyway) so that its tool references are checked too
        scenario = _scenario_fields(row, where, values, checks, problems, kind_aliases)
        if check is None:
            continue
        prompts.append(
            Prompt(
                id=row.id, prompt=text, check=check, category=row.category, core=row.core,
                conditional=row.conditional, expect_tool_any=tuple(row.expect_tool_any),
                vibe=row.vibe, note=row.note, line=lineno, **scenario,
            )
        )
    return prompts


# --------------------------------------------------------------------------- format 2


def _substitute_matchers(value: Any, values: Mapping[str, str], unknown: list[str]) -> Any:
    """Placeholders in expected argument values; escaped inside ``{"regex": ...}``."""
    if isinstance(value, dict):
        return {k: (substitute(v, values, escape=True, unknown=unknown) if k == "regex" and isinstance(v, str)
                    else _substitute_matchers(v, values, unknown)) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_matchers(v, values, unknown) for v in value]
    if isinstance(value, str):
        return substitute(value, values, unknown=unknown)
    return value


def _scenario_fields(row: PromptRow, where: str, values: Mapping[str, str], checks: Any, problems: _Problems,
                     kind_aliases: Mapping[str, str]) -> dict[str, Any]:
    """The format-2 fields of one prompt row, checked and substituted (tool names are
    checked against the suite's tools later, by :func:`_check_tool_references`). Each
    problem is added to ``problems``; what is usable is returned."""
    from hbench.matching import form_error

    out: dict[str, Any] = {}
    for key in ("tools", "forbid_tools", "tags"):
        names = getattr(row, key)
        if names is None:
            out[key] = None
            continue
        bad = [n for n in names if not isinstance(n, str) or not n.strip()]
        if bad:
            problems.add(where, key, "names must be non-empty strings")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            problems.add(where, key, f"{', '.join(map(repr, dup))} listed twice")
        out[key] = tuple(names)
    if row.decoys < 0:
        problems.add(where, "decoys", f"must be 0 or more, got {row.decoys}")
    out["decoys"] = row.decoys
    if row.difficulty is not None and row.difficulty not in (1, 2, 3):
        problems.add(where, "difficulty", f"must be 1, 2 or 3 (easy to hard), got {row.difficulty}")
    out["difficulty"] = row.difficulty
    expects = []
    for i, e in enumerate(row.expect_args):
        key = f"expect_args[{i}]"
        if not isinstance(e, dict) or set(e) != {"tool", "args"} or not isinstance(e.get("tool"), str) \
                or not isinstance(e.get("args"), dict):
            problems.add(where, key, 'expected {"tool": NAME, "args": {KEY: VALUE | {"regex": P} | '
                                     '{"number": X, "tolerance": T}}}')
            continue
        unknown: list[str] = []
        args = _substitute_matchers(e["args"], values, unknown)
        if unknown:
            problems.add(where, f"{key}.args", _unknown_msg(unknown, values))
        for arg, matcher in args.items():
            why = form_error(matcher)
            if why:
                problems.add(where, f"{key}.args.{arg}", why)
        expects.append(ArgsExpectation(tool=e["tool"], args=args))
    out["expect_args"] = tuple(expects)
    turns = []
    for i, t in enumerate(row.turns):
        key = f"turns[{i}]"
        if isinstance(t, str):
            t = {"say": t}
        if not isinstance(t, dict) or not isinstance(t.get("say"), str) or not t["say"].strip() \
                or set(t) - {"say", "check"}:
            problems.add(where, key, 'expected a follow-up message: a string, or {"say": "...", "check": {...}}')
            continue
        unknown = []
        say = substitute(t["say"], values, unknown=unknown)
        if unknown:
            problems.add(where, f"{key}.say", _unknown_msg(unknown, values))
        check = None
        if "check" in t:
            sub = _Problems()
            check = _build_check(t["check"], where, values, checks, sub, kind_aliases, prompt=say)
            prefix = f"{where}: check"
            problems.lines += [f"{where}: {key}.check{line[len(prefix):]}" if line.startswith(prefix) else line
                               for line in sub.lines]
            if check is None:
                continue
        turns.append(FollowUp(say=say, check=check))
    out["turns"] = tuple(turns)
    return out


def _check_tool_references(prompts: list[Prompt], fname: str, builtin: list[str], suite_tools: list[str],
                           n_decoys: int, problems: _Problems) -> None:
    """Every tool a prompt names (``tools``, ``forbid_tools``, ``expect_args``) exists and
    ``decoys`` fits the catalogue; each problem as file:line:key with the fix."""
    known = list(dict.fromkeys(suite_tools + builtin))

    def unknown(name: str) -> str:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return (f"unknown tool {name!r} (suite tools: {', '.join(suite_tools) or 'none, no tools.jsonl'}; "
                f"built-in: {', '.join(builtin)}){hint} (add it to tools.jsonl or fix the name)")

    for p in prompts:
        where = f"{fname}:{p.line}"
        for name in p.tools or ():
            if name not in known:
                problems.add(where, "tools", unknown(name))
        for name in p.forbid_tools:
            if name != "*" and name not in known:
                problems.add(where, "forbid_tools", unknown(name) + ' ("*" forbids every tool)')
        offered = set(p.tools) if p.tools is not None else set(builtin)
        for i, e in enumerate(p.expect_args):
            if e.tool not in known:
                problems.add(where, f"expect_args[{i}].tool", unknown(e.tool))
            elif e.tool not in offered:
                problems.add(where, f"expect_args[{i}].tool", f"{e.tool!r} is not offered to this prompt "
                                                              f"(add it to the prompt's tools)")
        if p.decoys and n_decoys == 0:
            problems.add(where, "decoys", f"{p.decoys} decoys asked for, but no decoy catalogue is installed "
                                          "(hbench ships plugins/tools/decoys.jsonl; reinstall, or set decoys to 0)")
        elif p.decoys > n_decoys:
            problems.add(where, "decoys", f"{p.decoys} decoys asked for, the catalogue has {n_decoys} "
                                          f"(ask for at most {n_decoys})")


def _load_tools(path: Path, values: Mapping[str, str], rendered: Mapping[str, bytes], builtin: list[str],
                problems: _Problems) -> tuple[list[Any], bytes]:
    """``tools.jsonl``: the suite tools, and its bytes with placeholders resolved (part of
    the fixture sha256: what the model can be shown)."""
    from hbench.suite_tools import parse_tool_rows

    fname = "tools.jsonl"
    rows = _read_rows(path, fname, problems, what="tool")

    def sub(value: Any, where: str, key: str) -> Any:
        unknown: list[str] = []
        out = _substitute_matchers(value, values, unknown) if key.endswith(".when") else \
            _substitute_tree(value, values, False, unknown)
        if unknown:
            problems.add(where, key, _unknown_msg(unknown, values))
        return out

    specs = parse_tool_rows(rows, fname, problems.add, substitute=sub, fixtures=rendered, reserved=builtin)
    resolved = substitute(_norm_bytes(path.read_bytes()).decode("utf-8", "replace"), values).encode("utf-8")
    return specs, resolved


#: the key a suite's resolved tools.jsonl has in the fixture tree hash (no fixture path
#: can start with "..", so it never collides with a file)
TOOLS_HASH_KEY = "../tools.jsonl"


def _fixtures_digest(rendered: Mapping[str, bytes], tools_resolved: bytes | None) -> str:
    """The fixture sha256: the rendered tree, plus the resolved tools.jsonl when the suite
    has one (a suite without tools hashes exactly as before format 2)."""
    if tools_resolved is None:
        return tree_sha256(rendered)
    return tree_sha256({**rendered, TOOLS_HASH_KEY: tools_resolved})


def _with_hint(line: str) -> str:
    """Add "did you mean" to an ``unknown key 'x' (allowed: a, b)`` line."""
    m = re.search(r"unknown key '([^']+)' \(allowed: ([^)]*)\)$", line)
    if not m:
        return line
    close = difflib.get_close_matches(m.group(1), [a.strip() for a in m.group(2).split(",")], n=1, cutoff=0.6)
    return f"{line}; did you mean {close[0]!r}?" if close else line


def _fail(root: Path, problems: _Problems) -> SuiteError:
    n = len(problems.lines)
    head = f"suite at {root} has {n} problem{'s' if n != 1 else ''}:"
    return SuiteError(head + "\n" + "\n".join(f"  {p}" for p in problems.lines), list(problems.lines))


def confined(root: Path, rel: str, problems: _Problems, *, root_folder: bool = False) -> Path | None:
    """``root/rel`` when it resolves inside the suite folder ``root`` (already resolved),
    else None with a problem naming it. A suite root (``fixtures/``, ``scratch/``) must
    not be a symlink at all (``root_folder``): its target would be copied into every
    attempt, sent to the lane and written to the journal. Nothing outside the suite is
    ever read."""
    path = root.joinpath(*rel.split("/"))
    real = os.path.realpath(path)
    if root_folder and path.is_symlink():
        problems.add(rel, None, f"is a symlink (to {os.readlink(path)}); a suite's {rel}/ must be a real folder "
                                "inside the suite (replace the link with a copy of the files)")
        return None
    if real != str(root) and not real.startswith(str(root) + os.sep):
        problems.add(rel, None, f"resolves outside the suite folder (to {real}) through a symlink; "
                                "copy the file into the suite instead of linking it")
        return None
    return path


def _detect_layout(root: Path) -> str | None:
    if (root / "suite.toml").is_file():
        return LAYOUT_HBENCH
    if (root / "data" / "train.jsonl").is_file():
        return LAYOUT_V01
    return None


def load_suite(name_or_path: str | os.PathLike[str], registries: Any = None) -> Suite:
    """Load, substitute and validate a suite; raise :class:`SuiteError` listing every problem.

    ``registries`` is :class:`hbench.plugin_manager.Registries` (default: the process's),
    used for suite names and check kinds.
    """
    reg = _registries(registries)
    root = resolve_suite(name_or_path, reg)
    layout = _detect_layout(root)
    problems = _Problems()
    if layout is None:
        raise SuiteError(
            f"{root}: not a suite folder: no suite.toml (hbench layout: suite.toml, prompts.jsonl, "
            "ground_truth.json, fixtures/) and no data/train.jsonl (hermes-brain-bench v0.1 layout)",
        )
    hashed: dict[str, bytes] = {}
    gt_path = confined(root, "ground_truth.json", problems)
    values, gt_bytes = _load_ground_truth(gt_path, problems) if gt_path is not None else ({}, b"")
    if gt_bytes:
        hashed["ground_truth.json"] = _norm_bytes(gt_bytes)

    if layout == LAYOUT_HBENCH:
        toml_path = confined(root, "suite.toml", problems)
        meta, toml_bytes = _load_suite_toml(toml_path, problems) if toml_path is not None else (None, b"")
        hashed["suite.toml"] = _norm_bytes(toml_bytes)
        fname = "prompts.jsonl"
        prompts_path = root / fname
        kind_aliases: Mapping[str, str] = {}
        fixtures = root / "fixtures"
        template = True
    else:
        meta = SuiteFile(
            name=root.name, version="0.1", system_prompt=DEFAULT_SYSTEM_PROMPT,
            description="hermes-brain-bench v0.1 (published layout)",
        )
        fname = "data/train.jsonl"
        prompts_path = root / fname
        kind_aliases = V01_KIND_ALIASES
        fixtures = root / "scratch"
        template = False  # pre-seeded: copied verbatim
    rows: list[tuple[int, dict[str, Any]]] = []
    if not prompts_path.is_file():
        problems.add(fname, None, "missing (one JSON object per line: id, prompt, check, ...)")
    elif confined(root, fname, problems) is not None:
        try:
            hashed[fname] = _norm_bytes(read_limited(prompts_path, MAX_SUITE_FILE_BYTES))
        except LimitError:
            pass  # _read_rows says so
        rows = _read_rows(prompts_path, fname, problems)
    prompts = _build_prompts(rows, fname, values, reg.checks, problems, kind_aliases)

    fixtures_dir: Path | None = None
    if fixtures.is_symlink() or fixtures.exists():
        fixtures_dir = confined(root, fixtures.name, problems, root_folder=True)
        if fixtures_dir is not None and not fixtures_dir.is_dir():
            problems.add(fixtures.name, None, f"is not a folder ({fixtures.name}/ holds the files each attempt starts with)")
            fixtures_dir = None
    rendered: dict[str, bytes] = {}
    if fixtures_dir is not None:
        rendered = _render_tree(fixtures_dir, values, template, fixtures.name, problems)
    # suite format 2: the suite's own tools, and every tool a prompt names
    builtin = [n for n in reg.tools.names() if not getattr(reg.tools.get(n), "decoy", False)]
    n_decoys = len(reg.tools.names()) - len(builtin)
    tool_specs: list[Any] = []
    tools_resolved: bytes | None = None
    tools_path = root / "tools.jsonl"
    if layout == LAYOUT_HBENCH and (tools_path.is_file() or tools_path.is_symlink()) \
            and confined(root, "tools.jsonl", problems) is not None:
        hashed["tools.jsonl"] = _norm_bytes(tools_path.read_bytes())
        tool_specs, tools_resolved = _load_tools(tools_path, values, rendered, builtin, problems)
    _check_tool_references(prompts, fname, builtin, [t.name for t in tool_specs], n_decoys, problems)
    if meta is not None:
        d = meta.defaults
        for key, value, zero_ok in (("runs", d.runs, False), ("timeout_s", d.timeout_s, False),
                                    ("max_turns", d.max_turns, False), ("max_tokens", d.max_tokens, False),
                                    ("temperature", d.temperature, True)):
            if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
                need = "0 or more" if zero_ok else "more than 0"
                problems.add("suite.toml", f"defaults.{key}", f"{value!r} is not usable: must be a finite number, {need}")
    if problems.lines or meta is None:
        raise _fail(root, problems)
    return Suite(
        name=meta.name,
        version=meta.version,
        description=meta.description,
        system_prompt=meta.system_prompt,
        defaults=meta.defaults,
        prompts=tuple(prompts),
        ground_truth=dict(values),
        path=str(root),
        fixtures_dir=str(fixtures_dir) if fixtures_dir is not None else None,
        sha256=tree_sha256(hashed),
        fixtures_sha256=_fixtures_digest(rendered, tools_resolved),
        layout=layout,
        tools=tuple(tool_specs),
        mcp_servers=dict(meta.mcp_servers),
    )


# --------------------------------------------------------------------------- render


def rendered_fixtures(suite: Suite) -> dict[str, bytes]:
    """The rendered fixture tree in memory: relative POSIX path -> bytes."""
    if suite.fixtures_dir is None:
        return {}
    problems = _Problems()
    root = Path(suite.fixtures_dir)
    if root.is_symlink() or confined(Path(suite.path), root.name, problems, root_folder=True) is None:
        # swapped for a link since the suite loaded: never copy what it points at
        raise SuiteError(f"{root}: is a symlink or leaves the suite folder; a suite's {root.name}/ must be "
                         "a real folder inside the suite", problems.lines)
    files = _render_tree(Path(suite.fixtures_dir), suite.ground_truth, suite.layout == LAYOUT_HBENCH, "fixtures", problems)
    if problems.lines:  # the folder changed since the suite loaded
        raise SuiteError("\n".join(problems.lines), problems.lines)
    return files


def render_fixtures(suite: Suite, dest: Path) -> None:
    """Write the rendered fixture tree into ``dest`` (created; must be empty if it exists).

    Bytes-deterministic: the same suite gives the same bytes, whose :func:`tree_sha256`
    equals ``suite.fixtures_sha256``. Files are 0644, folders 0755.
    """
    dest = Path(dest)
    files = rendered_fixtures(suite)
    tools_path = Path(suite.path) / "tools.jsonl"
    tools_resolved = None
    if suite.layout == LAYOUT_HBENCH and tools_path.is_file():
        tools_resolved = substitute(_norm_bytes(tools_path.read_bytes()).decode("utf-8", "replace"),
                                    suite.ground_truth).encode("utf-8")
    if _fixtures_digest(files, tools_resolved) != suite.fixtures_sha256:
        raise SuiteError(
            f"{suite.fixtures_dir}: fixtures changed since suite {suite.name!r} loaded "
            "(reload the suite so its fixtures_sha256 matches what is rendered)"
        )
    if dest.exists() and any(dest.iterdir()):
        raise SuiteError(f"{dest}: not empty (render fixtures into a new or empty folder)")
    dest.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        target = dest.joinpath(*rel.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(target.parent, 0o755)
        target.write_bytes(data)
        os.chmod(target, 0o644)
