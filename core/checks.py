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
import threading
import time
import unicodedata
from typing import Any, Sequence

from hbench.models import CheckResult
from hbench.text import valid_text

__all__ = [
    "CHECK_BUDGET_S",
    "CHECK_TEXT_CAP",
    "CheckResult",
    "cap_text",
    "compile_patterns",
    "find_json_objects",
    "find_numbers",
    "last_json_object",
    "normalise",
    "parse_number",
    "run_check",
    "short",
]

# --------------------------------------------------------------------------- normalise

_THINK_TAG = re.compile(r"<(/?)think>", re.IGNORECASE)
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
    ``</think>`` with no opening tag (templates that drop it) ends a leading block.

    One pass over the tags, so linear in the text: a regex per ``<think>`` (the previous
    form) rescanned the rest of the text for each unclosed tag, quadratic on a flood of
    them (a 274 KiB answer took 87 s)."""
    keep: list[tuple[int, int]] = []  # spans of text kept, in order
    pos = 0  # start of the text not yet decided
    opened = -1  # start of the <think> whose block is open, or -1
    first_orphan = -1  # index in keep after which the first orphan </think> sits
    for m in _THINK_TAG.finditer(text):
        if m.group(1):  # </think>
            if opened >= 0:  # closes the open block: it goes, one space in its place
                keep.append((pos, opened))
                keep.append((-1, -1))
                pos, opened = m.end(), -1
            elif first_orphan < 0:  # a close with no open tag: everything up to it goes
                keep.append((pos, m.start()))
                first_orphan = len(keep)
                pos = m.end()
        elif opened < 0:
            opened = m.start()
    keep.append((pos, opened if opened >= 0 else len(text)))
    if first_orphan >= 0:
        keep = [(-1, -1)] + keep[first_orphan:]
    out = [" " if a < 0 else text[a:b] for a, b in keep]
    if opened >= 0:
        out.append(" ")
    return "".join(out)


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


# --------------------------------------------------------------------------- bounds

#: the most of an answer a check (and agreement) reads, in UTF-8 bytes; the rest is cut
CHECK_TEXT_CAP = 1024 * 1024
#: how long one check may take before the attempt fails with that reason
CHECK_BUDGET_S = 10.0


def cap_text(text: str | None, cap: int = CHECK_TEXT_CAP) -> tuple[str, int | None]:
    """``(text, None)``, or its first ``cap`` UTF-8 bytes and the whole size in bytes when
    it is longer (cut on a character boundary)."""
    text = text or ""
    if len(text) * 4 <= cap:  # a character is at most 4 bytes: cannot be over
        return text, None
    data = text.encode("utf-8", "replace")
    if len(data) <= cap:
        return text, None
    return data[:cap].decode("utf-8", "ignore"), len(data)


class _CheckThreads:
    """Daemon threads that run checks, reused; one that overran its budget is left to
    finish (or not) on its own and never reused, so a hung check cannot hang the run or
    keep the process alive at exit."""

    def __init__(self) -> None:
        self._idle: list[tuple[threading.Event, list[Any]]] = []
        self._lock = threading.Lock()

    def run(self, fn: Any, arg: Any, budget_s: float) -> tuple[bool, Any]:
        """``(finished, result or exception)``."""
        with self._lock:
            slot = self._idle.pop() if self._idle else None
        if slot is None:
            slot = (threading.Event(), [None, None, threading.Event()])
            threading.Thread(target=self._loop, args=(slot,), name="hbench-check", daemon=True).start()
        go, box = slot
        done: threading.Event = box[2]
        done.clear()
        box[0], box[1] = fn, arg
        go.set()
        if not done.wait(budget_s):
            return False, None  # abandoned: never put back
        out = box[0]
        box[0] = box[1] = None
        with self._lock:
            self._idle.append(slot)
        return True, out

    @staticmethod
    def _loop(slot: tuple[threading.Event, list[Any]]) -> None:
        go, box = slot
        while True:
            go.wait()
            go.clear()
            fn, arg = box[0], box[1]
            try:
                box[0] = fn(arg)
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                box[0] = exc
            box[2].set()


_CHECK_THREADS = _CheckThreads()


def run_check(check: Any, answer: str | None, *, budget_s: float | None = None,
              cap: int | None = None) -> tuple[CheckResult, float, str | None]:
    """Run ``check.check`` on at most ``cap`` bytes of ``answer`` within ``budget_s``
    (defaults: :data:`CHECK_TEXT_CAP`, :data:`CHECK_BUDGET_S`).

    Returns ``(result, seconds, note)``: ``note`` says the answer was cut (for the
    attempt's warnings). A check that raises or overruns its budget fails with that
    reason; an overrunning one is left behind on its own daemon thread."""
    budget_s = CHECK_BUDGET_S if budget_s is None else budget_s
    cap = CHECK_TEXT_CAP if cap is None else cap
    text, whole = cap_text(answer, cap)
    text = valid_text(text)  # a check reads valid Unicode (RE2 encodes its input as UTF-8)
    note = None
    if whole is not None:
        note = f"answer is {whole:,} bytes; the check read its first {cap:,} bytes"
    kind = getattr(check, "name", None) or type(check).__name__
    t0 = time.monotonic()
    finished, out = _CHECK_THREADS.run(check.check, text, budget_s)
    took = time.monotonic() - t0
    if not finished:
        return (CheckResult(False, f"check {kind} did not finish within its {budget_s:g} s budget "
                                   f"(answer of {len(text):,} characters); counted as failed"), took, note)
    if isinstance(out, BaseException):
        return CheckResult(False, f"check {kind} failed: {type(out).__name__}: {short(str(out), 160)}"), took, note
    if not isinstance(out, CheckResult):
        return CheckResult(False, f"check {kind} returned {type(out).__name__}, not a CheckResult"), took, note
    return out, took, note


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
        # a C++ extension: loaded when a regex is compiled (a suite loads), not when
        # `hbench plugins` imports the check kinds
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
