"""``{{name}}`` placeholders: the values of a suite's ``ground_truth.json`` in prompt text,
in check fields (escaped in a kind's ``regex_fields``, and inside ``{"regex": ...}``
argument matchers) and in fixture templates. An unknown name is reported with the closest
known one.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Iterable, Mapping

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}\}")


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


def substitute_tree(value: Any, values: Mapping[str, str], escape: bool, unknown: list[str]) -> Any:
    if isinstance(value, str):
        return substitute(value, values, escape=escape, unknown=unknown)
    if isinstance(value, list):
        return [substitute_tree(v, values, escape, unknown) for v in value]
    if isinstance(value, dict):
        return {k: substitute_tree(v, values, escape, unknown) for k, v in value.items()}
    return value


def unknown_msg(names: list[str], known: Iterable[str]) -> str:
    uniq = list(dict.fromkeys(names))
    known = sorted(known)
    parts = [f"unknown placeholder {{{{{n}}}}} ({_did_you_mean(n, known)})" for n in uniq]
    return "; ".join(parts)


def placeholders_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [m.group(1) for m in PLACEHOLDER.finditer(value)]
    if isinstance(value, list):
        return [n for v in value for n in placeholders_in(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in placeholders_in(v)]
    return []


def substitute_matchers(value: Any, values: Mapping[str, str], unknown: list[str]) -> Any:
    """Placeholders in expected argument values; escaped inside ``{"regex": ...}``."""
    if isinstance(value, dict):
        return {k: (substitute(v, values, escape=True, unknown=unknown) if k == "regex" and isinstance(v, str)
                    else substitute_matchers(v, values, unknown)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_matchers(v, values, unknown) for v in value]
    if isinstance(value, str):
        return substitute(value, values, unknown=unknown)
    return value
