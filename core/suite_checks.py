"""Building a suite's prompts from their rows: each prompt's check (its kind's class, its
options substituted and validated), the scenario fields of suite format 2 (``tools``,
``forbid_tools``, ``decoys``, ``expect_args``, ``turns``, ``difficulty``, ``tags``;
DESIGN.md, "Scenario fields") and the tools they name. Each problem is added to a
:class:`~hbench.suite_toml.Problems` list as ``file:line: key: message (fix)``.
"""

from __future__ import annotations

import difflib
import functools
import re
from typing import Any, Mapping

from hbench.config import error_lines, make_converter
from hbench.matching import form_error
from hbench.models import ArgsExpectation, FollowUp, Prompt
from hbench.placeholders import placeholders_in, substitute, substitute_matchers, substitute_tree, unknown_msg
from hbench.suite_toml import Problems, PromptRow, with_hint

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


# --------------------------------------------------------------------------- checks


@functools.lru_cache(maxsize=1)
def _check_converter() -> Any:
    """One converter for every check of every load: a new one per check cost ~4 ms (its
    structure functions are generated anew), 0.5 s for a 42-prompt suite."""
    return make_converter()


def _build_check(
    raw: Any, where: str, values: Mapping[str, str], checks: Any, problems: Problems, kind_aliases: Mapping[str, str],
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
        opts[key] = substitute_tree(value, values, key in regex_fields, unknown)
        if unknown:
            problems.add(where, f"check.{key}", unknown_msg(unknown, values))
        empty = sorted({n for n in placeholders_in(value) if n in values and not values[n].strip()})
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
            problems.lines.append(f"{where}: check.{m.group(1)}: {m.group(2)}" if m else with_hint(line))
        return None


# --------------------------------------------------------------------------- prompts


def build_prompts(
    rows: list[tuple[int, dict[str, Any]]],
    fname: str,
    values: Mapping[str, str],
    checks: Any,
    problems: Problems,
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
                problems.lines.append(with_hint(line.replace(f"{where}: (top level): ", f"{where}: ")))
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
            problems.add(where, "prompt", unknown_msg(unknown, values))
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


def _scenario_fields(row: PromptRow, where: str, values: Mapping[str, str], checks: Any, problems: Problems,
                     kind_aliases: Mapping[str, str]) -> dict[str, Any]:
    """The format-2 fields of one prompt row, checked and substituted (tool names are
    checked against the suite's tools later, by :func:`check_tool_references`). Each
    problem is added to ``problems``; what is usable is returned."""
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
        args = substitute_matchers(e["args"], values, unknown)
        if unknown:
            problems.add(where, f"{key}.args", unknown_msg(unknown, values))
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
            problems.add(where, f"{key}.say", unknown_msg(unknown, values))
        check = None
        if "check" in t:
            sub = Problems()
            check = _build_check(t["check"], where, values, checks, sub, kind_aliases, prompt=say)
            prefix = f"{where}: check"
            problems.lines += [f"{where}: {key}.check{line[len(prefix):]}" if line.startswith(prefix) else line
                               for line in sub.lines]
            if check is None:
                continue
        turns.append(FollowUp(say=say, check=check))
    out["turns"] = tuple(turns)
    return out


def check_tool_references(prompts: list[Prompt], fname: str, builtin: list[str], suite_tools: list[str],
                           n_decoys: int, problems: Problems) -> None:
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
