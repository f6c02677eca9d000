"""``regex``: patterns that must all (``all``) or at least one (``any``) match.

Case-insensitive unless ``case_sensitive = true`` (then the answer keeps its case; it is
otherwise normalised the same way). ``{{placeholder}}`` values substituted into
patterns are regex-escaped, so a value ``v1.2`` matches only ``v1.2``. Patterns compile
with RE2 (linear time on hostile answers), falling back to Python ``re``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from hbench.checks import CheckResult, compile_patterns, normalise, short


@attrs.define
class Regex:
    name: ClassVar[str] = "regex"
    regex_fields: ClassVar[tuple[str, ...]] = ("all", "any")

    all: list[str] = attrs.field(factory=list)
    any: list[str] = attrs.field(factory=list)
    case_sensitive: bool = False
    _all: list[Any] = attrs.field(init=False, factory=list, repr=False, eq=False)
    _any: list[Any] = attrs.field(init=False, factory=list, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if not (self.all or self.any):
            raise ValueError("give at least one of 'all' or 'any' (a list of patterns)")
        self._all = compile_patterns(self.all, case_sensitive=self.case_sensitive, field="all")
        self._any = compile_patterns(self.any, case_sensitive=self.case_sensitive, field="any")

    def check(self, answer: str) -> CheckResult:
        text = normalise(answer, casefold=not self.case_sensitive)
        if not text:
            return CheckResult(False, "empty answer")
        for pat, c in zip(self.all, self._all):
            if not c.search(text):
                return CheckResult(False, f"no match for /{pat}/ in {short(text)!r}")
        if self._any:
            for pat, c in zip(self.any, self._any):
                if c.search(text):
                    return CheckResult(True, f"matched /{pat}/")
            return CheckResult(False, f"none of {len(self.any)} patterns matched {short(text)!r}")
        return CheckResult(True, f"all {len(self.all)} patterns matched")
