"""``json_keys``: the answer holds a JSON object whose top-level keys are ``keys``.

JSON is parsed from the raw answer with only ``<think>`` blocks removed, never from the
normalised text (normalising would turn curly quotes into straight ones: pseudo-JSON with
curly quotes would parse, and a real curly quote inside a value would break it). The
object may be fenced or bare with prose around it; the last top-level JSON value wins,
and a value nested inside it is part of it, not a candidate. That value must be an
object (an array is not) without duplicate keys. ``exact = false`` accepts a superset of
``keys``. Keys are compared after the check normalisation (case-folded).

``values`` pins key values, so the object must be right, not just well-formed: numbers
compare numerically when both sides are numbers or numeric strings (``4417.0`` =
``"4417"``), strings after the check normalisation, anything else as canonical JSON.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any, ClassVar

import attrs

from hbench.checks import CheckResult, normalise, numbers_equal, short, strip_think


def _key_list(_inst, _attr, value) -> None:  # noqa: ANN001
    if not value:
        raise ValueError("keys: give the list of expected top-level keys")
    for i, k in enumerate(value):
        if not isinstance(k, str) or not normalise(k):
            raise ValueError(f"keys[{i}]: expected a key name, got {k!r}")


class DuplicateKey(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise DuplicateKey(k)
        out[k] = v
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs)
#: where a JSON object or array can begin: '{' before a key or '}', '[' before a value or ']'
_CANDIDATE = re.compile(r'\{\s*["}]|\[\s*[\[{"\-0-9tfn\]]')
_PLAIN = json.JSONDecoder()


def last_json_value(text: str) -> tuple[Any, str | None]:
    """``(value, None)`` for the last top-level JSON object in ``text`` (or an array that
    holds objects: an answer that gives ``[{...}]``), else ``(None, why or None)``. A value
    nested inside another is part of it. The last object having a duplicate key is
    reported (``why``); an array of plain values (``[1]`` in prose) is passed over."""
    found: Any = None
    dup: str | None = None
    i = 0
    n = len(text)
    # Work bound (deterministic, linear in the answer): characters the decoder may read over
    # all failed tries. Each failed try from every '{'/'[' rescans what follows it, so a flood
    # of unclosed or deeply nested brackets was quadratic (a 21 KiB answer ran past 10 s).
    budget = 16 * n + 100_000
    deep_cost = sys.getrecursionlimit() * 8  # a RecursionError read about this much
    while i < n:
        if budget < 0:
            return None, ("gave up looking for JSON: the answer is a flood of unclosed or deeply "
                          "nested brackets")
        m = _CANDIDATE.search(text, i)  # only where a JSON object or array can begin
        if m is None:
            break
        start = m.start()
        try:
            obj, end = _DECODER.raw_decode(text, start)
        except DuplicateKey as exc:
            try:
                _, end = _PLAIN.raw_decode(text, start)
            except (json.JSONDecodeError, RecursionError):  # pragma: no cover - decoded above up to the key
                i = start + 1
                continue
            found, dup, i = None, str(exc), end
            continue
        except json.JSONDecodeError as exc:
            # what was read, plus the error's own line count over text[:pos] (json does that)
            budget -= (exc.pos - start) + exc.pos // 32 + 1
            i = start + 1
            continue
        except RecursionError:
            budget -= deep_cost
            i = start + 1
            continue
        i = end
        if isinstance(obj, list) and not any(isinstance(x, dict) for x in obj):
            continue
        found, dup = obj, None
    if found is None and dup is not None:
        return None, f"duplicate key {dup!r} in the JSON object"
    return found, None


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, str):
        s = v.strip().replace(",", "").replace("_", "")
        try:
            x = float(s)
        except ValueError:
            return None
        return x if math.isfinite(x) else None
    return None


def values_equal(actual: Any, expected: Any) -> bool:
    """Numbers (or numeric strings) numerically, strings after normalising, the rest
    as canonical JSON."""
    a, e = _as_number(actual), _as_number(expected)
    if a is not None and e is not None:
        return numbers_equal(a, e)
    if isinstance(actual, str) and isinstance(expected, str):
        return normalise(actual) == normalise(expected)
    return json.dumps(actual, sort_keys=True) == json.dumps(expected, sort_keys=True)


@attrs.define
class JsonKeys:
    name: ClassVar[str] = "json_keys"

    keys: list[str] = attrs.field(validator=_key_list)
    exact: bool = True
    values: dict[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        unknown = [k for k in self.values if normalise(k) not in {normalise(x) for x in self.keys}]
        if unknown:
            raise ValueError(f"values: key(s) {', '.join(map(repr, unknown))} are not in keys")

    def check(self, answer: str) -> CheckResult:
        obj, why = last_json_value(strip_think(answer or ""))
        if why:
            return CheckResult(False, why)
        if obj is None:
            return CheckResult(False, f"no JSON object in the answer: {short(normalise(answer))!r}")
        if not isinstance(obj, dict):
            return CheckResult(False, f"the JSON is an array, not an object: {short(json.dumps(obj))!r}")
        by_key: dict[str, Any] = {}
        for k, v in obj.items():
            nk = normalise(k)
            if nk in by_key:
                return CheckResult(False, f"duplicate key {k!r} in the JSON object (after case-folding)")
            by_key[nk] = v
        got = set(by_key)
        want = {normalise(k) for k in self.keys}
        missing, extra = sorted(want - got), sorted(got - want)
        if missing:
            return CheckResult(False, f"JSON object lacks key(s) {', '.join(missing)}")
        if self.exact and extra:
            return CheckResult(False, f"JSON object has extra key(s) {', '.join(extra)}")
        for k, expected in self.values.items():
            actual = by_key[normalise(k)]
            if not values_equal(actual, expected):
                return CheckResult(False, f"key {k!r} is {actual!r}, expected {expected!r}")
        return CheckResult(True, f"JSON object with keys {', '.join(sorted(got))}")
