"""``substring``: literal text that must (``any``/``all``) or must not (``none``) appear.

Needles and answer are both normalised (NFKC, straight quotes, case-folded, whitespace
collapsed, ``<think>`` removed), so ``I don’t know`` matches ``i don't know``.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from hbench.checks import CheckResult, normalise, short


def _strings(field: str):  # noqa: ANN202
    def check(_inst, _attr, value) -> None:  # noqa: ANN001
        for i, v in enumerate(value):
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"{field}[{i}]: expected non-empty text, got {v!r}")
            if not normalise(v):
                raise ValueError(f"{field}[{i}]: {v!r} is empty once normalised (only invisible characters or a "
                                 f"<think> block), so it would be found in every answer: write the text to look for")
    return check


@attrs.define
class Substring:
    """Pass when one of ``any`` appears (if given), all of ``all`` appear, and none of
    ``none`` appears. At least one of the three lists must be non-empty."""

    name: ClassVar[str] = "substring"

    any: list[str] = attrs.field(factory=list, validator=_strings("any"))
    all: list[str] = attrs.field(factory=list, validator=_strings("all"))
    none: list[str] = attrs.field(factory=list, validator=_strings("none"))

    def __attrs_post_init__(self) -> None:
        if not (self.any or self.all or self.none):
            raise ValueError("give at least one of 'any', 'all' or 'none' (a list of texts)")

    def check(self, answer: str) -> CheckResult:
        text = normalise(answer)
        if not text:
            return CheckResult(False, "empty answer")
        for needle in self.none:
            if normalise(needle) in text:
                return CheckResult(False, f"contains forbidden {needle!r}")
        missing = [n for n in self.all if normalise(n) not in text]
        if missing:
            return CheckResult(False, f"missing {', '.join(repr(m) for m in missing)}")
        if self.any:
            hit = next((n for n in self.any if normalise(n) in text), None)
            if hit is None:
                return CheckResult(False, f"none of {', '.join(repr(n) for n in self.any)} in {short(text)!r}")
            return CheckResult(True, f"found {hit!r}")
        return CheckResult(True, "all required text present" if self.all else "no forbidden text")
