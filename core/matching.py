"""The value-matching rule of suite format 2 (DESIGN.md, "Scenario fields"): pure.

Used by ``expect_args`` (scoring) and by ``when`` in ``tools.jsonl`` (suite tools), so
both match the same way. An expected value is one of:

* a plain JSON value: numbers compare numerically (``250`` = ``250.0`` = ``"250"``),
  strings after trimming and case-folding, ``true``/``false``/``null`` exactly, lists
  item by item, objects key by key with keys not named free;
* ``{"regex": P}``: ``P`` searched (case-insensitive) in the string form of the value
  (a string as is, anything else as compact JSON);
* ``{"number": X, "tolerance": T}``: a number (or numeric string) within ``T`` of ``X``
  (``tolerance`` defaults to 0).
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any, Mapping

__all__ = ["args_match", "describe", "form_error", "value_matches"]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _as_number(v: Any) -> float | None:
    if _is_number(v):
        return float(v)
    if isinstance(v, str):
        s = v.strip().replace(",", "")
        try:
            x = float(s)
        except ValueError:
            return None
        return x if math.isfinite(x) else None
    return None


def _string_form(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _special(expected: Mapping[str, Any]) -> str | None:
    keys = set(expected)
    if keys == {"regex"} and isinstance(expected["regex"], str):
        return "regex"
    if "number" in keys and keys <= {"number", "tolerance"} and _is_number(expected["number"]):
        return "number"
    return None


def form_error(expected: Any) -> str | None:
    """Why ``expected`` is not a usable expected value (a bad regex, a negative tolerance),
    or None. For the suite validator."""
    if isinstance(expected, dict):
        kind = _special(expected)
        if kind == "regex":
            try:
                _regex(expected["regex"])
            except re.error as exc:
                return f"regex {expected['regex']!r} does not compile: {exc}"
            return None
        if kind == "number":
            tol = expected.get("tolerance", 0)
            if not _is_number(tol) or tol < 0:
                return f"tolerance must be a number >= 0, got {tol!r}"
            return None
        if "regex" in expected or "number" in expected:
            return ('a matcher is {"regex": "PATTERN"} or {"number": X, "tolerance": T} and nothing else '
                    f"(got keys {', '.join(sorted(expected))})")
        for v in expected.values():
            err = form_error(v)
            if err:
                return err
    if isinstance(expected, list):
        for v in expected:
            err = form_error(v)
            if err:
                return err
    if isinstance(expected, float) and not math.isfinite(expected):
        return "numbers must be finite"
    return None


def value_matches(expected: Any, actual: Any) -> bool:
    """Does ``actual`` (a value the model sent) match ``expected`` (see the module doc)?"""
    if isinstance(expected, dict):
        kind = _special(expected)
        if kind == "regex":
            return _regex(expected["regex"]).search(_string_form(actual)) is not None
        if kind == "number":
            x = _as_number(actual)
            tol = expected.get("tolerance", 0) or 0
            return x is not None and abs(x - float(expected["number"])) <= float(tol) + 1e-12
        if not isinstance(actual, dict):
            return False
        return args_match(expected, actual)
    if isinstance(expected, bool) or expected is None:
        return actual is expected or (actual == expected and type(actual) is type(expected))
    if _is_number(expected):
        x = _as_number(actual)
        return x is not None and x == float(expected)
    if isinstance(expected, str):
        if isinstance(actual, str):
            return expected.strip().casefold() == actual.strip().casefold()
        if _is_number(actual):
            x = _as_number(expected)
            return x is not None and x == float(actual)
        return False
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(actual) == len(expected)
                and all(value_matches(e, a) for e, a in zip(expected, actual)))
    return bool(expected == actual)


def args_match(expected: Mapping[str, Any], actual: Any) -> bool:
    """Every key of ``expected`` is in ``actual`` (a dict) with a matching value; keys not
    named are free."""
    if not isinstance(actual, Mapping):
        return False
    return all(k in actual and value_matches(v, actual[k]) for k, v in expected.items())


def describe(args: Any, limit: int = 160) -> str:
    """Compact JSON of ``args`` for a ``why`` line (capped)."""
    text = _string_form(args)
    return text if len(text) <= limit else text[: limit - 1] + "…"
