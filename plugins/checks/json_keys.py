"""``json_keys``: the answer holds a JSON object whose top-level keys are ``keys``.

The object may be fenced or bare with prose around it; the last top-level object wins
and an object nested inside it is part of it, not a candidate. ``exact = false`` accepts
a superset of ``keys``. ``values`` optionally pins key values (compared as normalised
text, numbers by value), so the object must be right, not just well-formed. Keys are
compared after normalising (case-folded).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import attrs

from hbench.checks import CheckResult, find_numbers, last_json_object, normalise, numbers_equal


def _key_list(_inst, _attr, value) -> None:  # noqa: ANN001
    if not value:
        raise ValueError("keys: give the list of expected top-level keys")
    for i, k in enumerate(value):
        if not isinstance(k, str) or not k:
            raise ValueError(f"keys[{i}]: expected a key name, got {k!r}")


def _as_text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


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
        obj = last_json_object(normalise(answer))
        if obj is None:
            return CheckResult(False, "no JSON object in the answer")
        got = {normalise(k) for k in obj}
        want = {normalise(k) for k in self.keys}
        missing, extra = sorted(want - got), sorted(got - want)
        if missing:
            return CheckResult(False, f"JSON object lacks key(s) {', '.join(missing)}")
        if self.exact and extra:
            return CheckResult(False, f"JSON object has extra key(s) {', '.join(extra)}")
        by_key = {normalise(k): v for k, v in obj.items()}
        for k, expected in self.values.items():
            actual = by_key[normalise(k)]
            if isinstance(expected, (int, float)) and not isinstance(expected, bool):
                nums = find_numbers(_as_text(actual))
                ok = len(nums) == 1 and numbers_equal(nums[0], float(expected))
            else:
                ok = normalise(_as_text(actual)) == normalise(_as_text(expected))
            if not ok:
                return CheckResult(False, f"key {k!r} is {actual!r}, expected {expected!r}")
        return CheckResult(True, f"JSON object with keys {', '.join(sorted(got))}")
