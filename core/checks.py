"""What every check kind shares: answer normalisation, number parsing, JSON extraction and
regex compilation. The kinds themselves live in ``plugins/checks/`` (one module each).

A check kind is an attrs class (options are fields, validated by cattrs when the suite
loads) with ``name: ClassVar[str]`` and ``check(self, answer) -> CheckResult``. Optional
class variables: ``regex_fields`` (fields whose substituted ``{{placeholder}}`` values are
regex-escaped) and ``gate`` (``"honesty"``: failing it by majority makes a lane
unrankable). A classmethod ``options_from_prompt(prompt, options) -> options`` may fill
options from the prompt text when the suite loads (the unit asked for, the kind of value
asked for). Options that need preparing (compiled patterns) are prepared in
``__attrs_post_init__`` so a bad pattern fails at load time, with the field named.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any, Iterable, Sequence

from hbench.models import CheckResult

__all__ = [
    "CheckResult",
    "compile_patterns",
    "find_json_objects",
    "find_numbers",
    "last_json_object",
    "normalise",
    "parse_number",
    "short",
]

# --------------------------------------------------------------------------- normalise

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>.*\Z", re.DOTALL | re.IGNORECASE)
_THINK_CLOSE = re.compile(r"\A.*?</think>", re.DOTALL | re.IGNORECASE)
_WS = re.compile(r"\s+")

_CHAR_MAP = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u02bc": "'",
    "\u00b4": "'", "\u0060": "`",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"',
    "\u2212": "-", "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
    "\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u200b": "",
})


def strip_think(text: str) -> str:
    """Remove ``<think>...</think>`` blocks; an unclosed ``<think>`` runs to the end, and a
    ``</think>`` with no opening tag (templates that drop it) ends a leading block."""
    text = _THINK_BLOCK.sub(" ", text)
    if "</think>" in text.lower():
        text = _THINK_CLOSE.sub(" ", text, count=1)
    return _THINK_OPEN.sub(" ", text)


def normalise(text: str | None, *, casefold: bool = True) -> str:
    """The form every check compares: ``<think>`` blocks removed, Unicode NFKC, curly
    quotes and dashes made straight, case-folded (unless ``casefold=False``) and runs of
    whitespace collapsed to one space, trimmed."""
    if not text:
        return ""
    text = strip_think(text)
    text = unicodedata.normalize("NFKC", text).translate(_CHAR_MAP)
    if casefold:
        text = text.casefold()
    return _WS.sub(" ", text).strip()


def short(text: str, limit: int = 80) -> str:
    """One line, at most ``limit`` characters, for ``CheckResult.why``."""
    one = _WS.sub(" ", text or "").strip()
    return one if len(one) <= limit else one[: limit - 1] + "…"


# --------------------------------------------------------------------------- numbers

_SUFFIX = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "b": 1e9, "bn": 1e9, "billion": 1e9}

# A number: optional sign, optional currency, digits with ',' or ' ' thousands groups (or
# plain digits), optional decimals, optional magnitude suffix. The sign only counts when
# it is not glued to a word or digit (dates like 2026-05-12 are not negatives).
_NUMBER = re.compile(
    r"""
    (?<![\w.])
    (?P<sign>[-+])?
    (?P<cur>[$€£¥])?\s?
    (?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?:\ \d{3})+(?!\d)|\d+)
    (?P<frac>\.\d+)?
    (?:\s?(?P<suf>thousand|million|billion|bn|mn|k|m|b)(?![a-z]))?
    """,
    re.VERBOSE | re.IGNORECASE,
)


def find_numbers(text: str) -> list[float]:
    """Every number in ``text`` in order: ``$42,000``, ``42000``, ``42 000``, ``42k``,
    ``-3.5``, ``1.2 million``. Works on raw or normalised text."""
    out: list[float] = []
    for m in _NUMBER.finditer(normalise(text)):
        digits = m.group("int").replace(",", "").replace(" ", "")
        value = float(digits + (m.group("frac") or ""))
        if m.group("suf"):
            value *= _SUFFIX[m.group("suf").lower()]
        if m.group("sign") == "-":
            value = -value
        out.append(value)
    return out


def parse_number(value: Any) -> float:
    """A number option: an int/float, or a string holding exactly one number ("42,000",
    "$42k"). Raises ValueError with a message naming what was wrong."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        nums = find_numbers(value)
        if len(nums) == 1:
            return nums[0]
        raise ValueError(f"expected one number (like 42000 or \"42,000\"), got {value!r}")
    raise ValueError(f"expected a number, got {value!r}")


def numbers_equal(a: float, b: float, tolerance: float = 0.0) -> bool:
    """``|a - b| <= tolerance``, with a float-rounding allowance."""
    return abs(a - b) <= tolerance + 1e-9 * max(1.0, abs(a), abs(b))


# --------------------------------------------------------------------------- JSON

_DECODER = json.JSONDecoder()


def find_json_objects(text: str) -> list[dict[str, Any]]:
    """Top-level JSON objects in ``text`` (fenced or bare, prose around them allowed), in
    order. An object nested inside another is part of it, not a candidate of its own."""
    out: list[dict[str, Any]] = []
    i = 0
    while True:
        start = text.find("{", i)
        if start < 0:
            return out
        try:
            obj, end = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            i = start + 1
            continue
        if isinstance(obj, dict):
            out.append(obj)
            i = end
        else:  # pragma: no cover - raw_decode at '{' only yields dicts
            i = start + 1


def last_json_object(text: str) -> dict[str, Any] | None:
    """The last top-level JSON object in ``text`` (the answer's final word), or None."""
    found = find_json_objects(text)
    return found[-1] if found else None


# --------------------------------------------------------------------------- regex


def compile_patterns(patterns: Sequence[str], *, case_sensitive: bool = False, field: str = "pattern") -> list[Any]:
    """Compile suite patterns with RE2 (linear time on hostile answers); patterns RE2
    cannot express (lookaround, backreferences) fall back to Python ``re``. A pattern
    neither accepts raises ValueError naming ``field[i]``."""
    out = []
    for i, pat in enumerate(patterns):
        if not isinstance(pat, str):
            raise ValueError(f"{field}[{i}]: expected a string pattern, got {pat!r}")
        if not normalise(pat):
            raise ValueError(f"{field}[{i}]: {pat!r} is empty once normalised, so it would match every answer (write the text to match)")
        compiled = _compile(pat, case_sensitive, f"{field}[{i}]")
        if compiled.search("") is not None:
            raise ValueError(f"{field}[{i}]: /{pat}/ matches empty text, so it matches every answer (require at least one character)")
        out.append(compiled)
    return out


def _compile(pattern: str, case_sensitive: bool, where: str) -> Any:
    try:
        import re2

        opts = re2.Options()
        opts.log_errors = False  # a refused pattern falls back below; don't print to stderr
        opts.case_sensitive = case_sensitive
        return re2.compile(pattern, opts)
    except Exception:  # noqa: BLE001 - RE2 refused it (or is missing): try Python's re
        pass
    try:
        return re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"{where}: not a valid regular expression {pattern!r}: {exc} (escape literal characters with \\)") from None


def search_any(compiled: Iterable[Any], text: str) -> Any:
    """The first compiled pattern that matches ``text``, or None."""
    for c in compiled:
        if c.search(text):
            return c
    return None
