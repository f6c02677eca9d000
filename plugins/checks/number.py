"""``number``: a number in the answer equals ``value`` within ``tolerance``.

Reads ``$42,000``, ``42000``, ``42 000``, ``42k``, ``1.2 million``. ``which`` picks the
number compared: ``any`` (one of them), ``last`` (the final number, for answers that
show their working) or ``first``. ``value`` is a number or text holding one number, so
``"{{budget}}"`` works with ``"budget": "42,000"``. The hermes-brain-bench v0.1 kind
``numeric`` maps here.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import attrs

from hbench.checks import CheckResult, find_numbers, numbers_equal, parse_number, short


def _value(value: Any) -> float:
    try:
        return parse_number(value)
    except ValueError as exc:
        raise ValueError(f"value: {exc}") from None


def _tolerance(value: Any) -> float:
    try:
        tol = parse_number(value)
    except ValueError as exc:
        raise ValueError(f"tolerance: {exc}") from None
    if tol < 0:
        raise ValueError(f"tolerance: must be >= 0, got {value!r}")
    return tol


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.6g}"


@attrs.define
class Number:
    name: ClassVar[str] = "number"

    value: Any = attrs.field(converter=_value)
    tolerance: Any = attrs.field(default=0.0, converter=_tolerance)
    which: Literal["any", "last", "first"] = "any"

    def __attrs_post_init__(self) -> None:
        if self.which not in ("any", "last", "first"):
            raise ValueError(f"which: expected any, last or first, got {self.which!r}")

    def check(self, answer: str) -> CheckResult:
        nums = find_numbers(answer or "")
        want = f"{_fmt(self.value)}" + (f" ± {_fmt(self.tolerance)}" if self.tolerance else "")
        if not nums:
            return CheckResult(False, f"no number in {short(answer or '')!r} (expected {want})")
        pool = nums if self.which == "any" else [nums[-1] if self.which == "last" else nums[0]]
        for x in pool:
            if numbers_equal(x, self.value, self.tolerance):
                return CheckResult(True, f"found {_fmt(x)} (expected {want})")
        got = ", ".join(_fmt(x) for x in pool[:6])
        return CheckResult(False, f"{self.which} number {got} != expected {want}")
