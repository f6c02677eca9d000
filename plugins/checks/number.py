"""``number``: the value the answer commits to equals ``value`` within ``tolerance``.

Reads ``$42,000``, ``42000``, ``42 000``, ``42_000``, ``42k``, ``1.2 million``, ``4.2e4``,
an unambiguous European decimal comma (``2.754,85``) and numbers in words ("forty-two
thousand", via ``text2num``); see :mod:`hbench.plugins.checks.numbers`. Never the answer: a number
under negation ("not 42,000", "rather than 42.5 s", "42 is wrong") or glued to letters
(``INV-42000``, ``v2``: an id, not an amount).

``which`` picks the number compared:

* ``final`` (default): the value the answer commits to: the last number after a commit
  marker ("is", "=", ":", "total") outside parentheses, else the last number outside
  parentheses. It fails when the answer offers two different candidates ("either X or
  Y", "X or maybe Y", "between X and Y");
* ``any`` (one of them), ``last`` or ``first``.

``unit`` (e.g. ``"s"``; read from the prompt when it says "in seconds", "in ms", ...)
converts a number written with another unit of the same kind ("42500 ms" is 42.5 s); a
bare number is taken to be in ``unit``. ``value`` is a number or text holding one
number, so ``"{{budget}}"`` works with ``"budget": "42,000"``. The hermes-brain-bench
v0.1 kind ``numeric`` maps here.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

import attrs

from hbench.checks import CheckResult, normalise, numbers_equal, parse_number, short
from hbench.plugins.checks.numbers import UNITS, alternatives, convert, read_numbers

_WHICH = ("final", "any", "last", "first")
_UNIT_IN_PROMPT = re.compile(r"\b(?:in|as|using|expressed in|give it in|answer in) ([a-z]+)\b")


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


def _unit(value: Any) -> str | None:
    if value is None:
        return None
    unit = normalise(str(value))
    if unit not in UNITS:
        raise ValueError(f"unit: unknown unit {value!r} (known: {', '.join(sorted(UNITS))})")
    return unit


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.6g}"


@attrs.define
class Number:
    name: ClassVar[str] = "number"

    value: Any = attrs.field(converter=_value)
    tolerance: Any = attrs.field(default=0.0, converter=_tolerance)
    which: Literal["final", "any", "last", "first"] = "final"
    unit: str | None = attrs.field(default=None, converter=_unit)

    def __attrs_post_init__(self) -> None:
        if self.which not in _WHICH:
            raise ValueError(f"which: expected {', '.join(_WHICH)}, got {self.which!r}")

    @classmethod
    def options_from_prompt(cls, prompt: str, options: dict[str, Any]) -> dict[str, Any]:
        """``unit`` from the prompt ("in seconds"), when the check does not give one."""
        if "unit" in options:
            return options
        for m in _UNIT_IN_PROMPT.finditer(normalise(prompt)):
            if m.group(1) in UNITS and len(m.group(1)) > 1:
                return {**options, "unit": m.group(1)}
        return options

    def _want(self) -> str:
        tol = f" ± {_fmt(self.tolerance)}" if self.tolerance else ""
        return f"{_fmt(self.value)}{tol}" + (f" {self.unit}" if self.unit else "")

    def check(self, answer: str) -> CheckResult:
        reading = read_numbers(normalise(answer or ""))
        want = self._want()
        if reading.truncated:
            return CheckResult(False, f"more than {len(reading.mentions)} numbers in the answer: a list, not one value (expected {want})")
        cands = reading.candidates()
        if not cands:
            skipped = [m.raw for m in reading.mentions]
            extra = f"; not counted: {', '.join(skipped[:4])} (negated or an id)" if skipped else ""
            return CheckResult(False, f"no number in {short(answer or '')!r} (expected {want}){extra}")

        def val(m: Any) -> float:
            return convert(m.value, m.unit, self.unit)

        if self.which == "any":
            pool = cands
        elif self.which == "first":
            pool = cands[:1]
        elif self.which == "last":
            pool = cands[-1:]
        else:
            alt = alternatives(reading, cands)
            if alt and not numbers_equal(val(alt[0]), val(alt[1])):
                return CheckResult(False, f"offers two candidates, {alt[0].raw} or {alt[1].raw} (expected one: {want})")
            main = [m for m in cands if not m.aside] or cands
            committed = [m for m in main if m.committed]
            pool = (committed or main)[-1:]
        for m in pool:
            if numbers_equal(val(m), self.value, self.tolerance):
                return CheckResult(True, f"{self.which} number {m.raw} = {want}")
        got = ", ".join(m.raw for m in pool[:6])
        return CheckResult(False, f"{self.which} number {got} != expected {want}")
