"""Reading numbers out of an answer the way a person reads them (the ``number`` and
``honesty`` checks' shared reader; it lives with them: nothing else in hbench reads numbers).

:func:`read_numbers` finds every number mention in a text, in order, with what a check
needs to judge it: its value, the unit written after it, whether it is *glued* to
letters (``INV-42000``, ``v2``: an id, not an amount), whether it sits under a negation
("not 42,000", "rather than 42.5 s": never the answer), whether it follows a commit
marker ("the total is", "=", ":"), and whether it sits inside parentheses (an aside).
:func:`alternatives` says whether two mentions are offered as alternatives ("either X or
Y", "X or maybe Y", "between X and Y").

Accepted spellings: ``$42,000``, ``42000``, ``42 000``, ``42_000``, ``42k``, ``1.2
million``, ``4.2e4``, ``-3.5``, an unambiguous European decimal comma (``2.754,85``,
``42,5``; ``42,500`` stays forty-two thousand five hundred) and numbers written in
words ("forty-two thousand", "forty-two point five"; parsed by ``text2num``). ISO dates
and clock times are not numbers.

Works on normalised text (see :func:`hbench.checks.normalise`); offsets refer to the text
after numbers in words were turned into digits (:attr:`Reading.text`).
"""

from __future__ import annotations

import re
from typing import Iterable

import attrs

__all__ = ["MAX_MENTIONS", "Mention", "Reading", "UNITS", "alternatives", "convert", "digits_in_words", "read_numbers"]

_SUFFIX = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "b": 1e9, "bn": 1e9, "billion": 1e9}

#: unit token -> (dimension, factor to the dimension's base unit)
UNITS: dict[str, tuple[str, float]] = {
    "ms": ("time", 1e-3), "msec": ("time", 1e-3), "msecs": ("time", 1e-3),
    "millisecond": ("time", 1e-3), "milliseconds": ("time", 1e-3),
    "s": ("time", 1.0), "sec": ("time", 1.0), "secs": ("time", 1.0), "second": ("time", 1.0), "seconds": ("time", 1.0),
    "min": ("time", 60.0), "mins": ("time", 60.0), "minute": ("time", 60.0), "minutes": ("time", 60.0),
    "h": ("time", 3600.0), "hr": ("time", 3600.0), "hrs": ("time", 3600.0), "hour": ("time", 3600.0), "hours": ("time", 3600.0),
    "day": ("time", 86400.0), "days": ("time", 86400.0),
    "week": ("time", 604800.0), "weeks": ("time", 604800.0),
    "byte": ("bytes", 1.0), "bytes": ("bytes", 1.0),
    "kb": ("bytes", 1e3), "kib": ("bytes", 1024.0), "mb": ("bytes", 1e6), "mib": ("bytes", 1024.0**2),
    "gb": ("bytes", 1e9), "gib": ("bytes", 1024.0**3),
}

# One number: optional sign and currency, then the digits in one of the accepted
# groupings, an optional decimal part and exponent, then an optional magnitude suffix.
# The European forms come first so "2.754,85" is not read as 2.754 and 85.
_NUMBER = re.compile(
    r"""
    (?P<sign>[-+])?
    (?:(?P<cur>[$€£¥])\ ?)?
    (?:
        (?P<eu>\d{1,3}(?:\.\d{3})+,\d+(?![\d,]))                    # 2.754,85
      | (?P<euc>\d+,\d{1,2}(?![\d,]))                               # 42,5  42,50
      | (?P<int>\d{1,3}(?:,\d{3})+(?![\d])|\d{1,3}(?:\ \d{3})+(?![\d,])|\d{1,3}(?:_\d{3})+(?![\d_])|\d+)
        (?P<frac>\.\d+)?
        (?P<exp>e[-+]?\d+)?
    )
    (?:\ ?(?P<suf>thousand|million|billion|bn|mn|k|m|b)(?![a-z0-9]))?
    """,
    re.VERBOSE | re.IGNORECASE,
)
_ISO_DATE = re.compile(r"(?<![\d.])\d{4}-\d{1,2}-\d{1,2}(?![\d])|(?<![\d.])\d{1,2}:\d{2}(?::\d{2})?(?![\d])")
_UNIT_AFTER = re.compile(r"\ ?([a-z]+)\b")
_EURO_LIST = re.compile(r"\d,\d+,\d")

# negation right before a number: "not 42", "isn't $42", "rather than 42", "instead of the 42"
# negation right after: "42 is wrong", "42 (incorrect)", "42 isn't right"
_NEG_AFTER = re.compile(
    r"\A\ ?(?:[a-z%]+\ )?[(,\-]?\ ?(?:(?:is|was|would be|seems|looks|sounds)\ )?"
    r"(?:wrong|incorrect|not (?:right|correct|it|the answer)|(?:isn't|wasn't) (?:right|correct|it|the answer))\b"
)
# what comes right before a number, read backwards a word at a time (a regex anchored at
# the end of the text before it cost ~0.2 ms a number: 15 s on a 1 MiB answer)
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*|\d+|[^\sa-z\d$€£¥*]")
_NEG_WORDS = frozenset({"not", "never", "except"})
_NEG_FILL = frozenset({"the", "a", "an", "exactly", "quite", "just", "really", "simply", "even", "equal", "to", "it",
                       "that", "this", "be", "been", "is", "was"})
_COMMIT_WORDS = frozenset({"=", ":", "is", "are", "was", "were", "equals", "total", "totals", "totalled", "totaled",
                           "spent", "answer", "result", "gives", "give", "it's", "be", "so", "thus", "therefore",
                           "meaning", "hence"})
_COMMIT_FILL = frozenset({"exactly", "precisely", "about", "roughly", "approximately", "around", "just", "only", "a",
                          "the", "of", "in"})
_TO_AFTER = frozenset({"comes", "come", "came", "up", "sums", "sum", "amounts", "amount"})


def _negated_before(words: list[str]) -> bool:
    """``words`` (last first) end in a negation: "not", "isn't", "rather than", "instead
    of", "as opposed to", "other than", "except", with only filler words after it."""
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w in _NEG_WORDS or w.endswith("n't") or (w == "than" and nxt in ("rather", "other")) \
                or (w == "of" and nxt == "instead") or (w == "to" and nxt == "opposed"):
            return True
        if w not in _NEG_FILL:
            return False
    return False


def _committed_before(words: list[str], head: str) -> bool:
    """``words`` (last first) end in a commit marker ("is", "=", ":", "total of", "comes
    to", "i.e.") with only filler words after it."""
    if head.rstrip(" $€£¥*").endswith(("i.e.", "i.e.,")):
        return True
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w in _COMMIT_WORDS or w.endswith("'s") or (w == "to" and nxt in _TO_AFTER):
            return True
        if w not in _COMMIT_FILL:
            return False
    return False


def _glued_before(text: str, start: int) -> bool:
    """Letters right before the number (``v2``, ``q3``), or a token holding letters
    joined to it by ``-``, ``_``, ``#`` or ``/`` (``INV-42000``, ``sku#7``)."""
    if start == 0:
        return False
    c = text[start - 1]
    if c.isalpha():
        return True
    if c in "-_#/":
        j = start - 2
        while j >= 0 and start - j <= 24 and text[j].isalnum():
            if text[j].isalpha():
                return True
            j -= 1
    return False


_WORDS = re.compile(r"[a-z]+(?:'[a-z]+)?")
_ALT_WORDS = frozenset({"or", "either", "maybe", "perhaps", "possibly", "probably", "alternatively", "otherwise", "could", "might"})
_ALT_FILLER = frozenset({
    "it", "it's", "its", "is", "be", "could", "might", "may", "would", "the", "a", "an", "answer", "value", "total",
    "else", "actually", "even", "also", "about", "around", "roughly", "approximately", "something", "like", "so",
    "i", "think", "guess", "and", "to", "between", "from", "dollars", "usd", "though", "but", "also", "well",
    "no", "wait", "hmm", "sorry", "or", "unless", "if", "not", "sure", "i'm",
}) | frozenset(UNITS)
_RANGE = re.compile(r"\A\ ?(?:-|to|and|–)\ ?\Z")

_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
}
_DIGIT_RUN = re.compile(
    r"\b(?:(?:double|triple)[\s-]+)?(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\b"
    r"(?:[\s,.\-]+(?:(?:double|triple)[\s-]+)?(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\b)+"
)


@attrs.frozen
class Mention:
    """One number in the text."""

    value: float
    start: int
    end: int
    raw: str
    unit: str | None = None  # the unit word right after it ("s", "ms", "seconds"), if known
    currency: bool = False
    glued: bool = False  # attached to letters: an id or version, not an amount
    negated: bool = False  # "not X", "rather than X", "X is wrong"
    committed: bool = False  # right after "is", "=", ":", "total", ..., or the first word of the answer
    aside: bool = False  # inside parentheses


@attrs.frozen
class Reading:
    text: str
    mentions: tuple[Mention, ...]
    truncated: bool = False  # more than MAX_MENTIONS numbers: only the first were read

    def candidates(self) -> list[Mention]:
        """Mentions that could be the answer: neither glued nor negated."""
        return [m for m in self.mentions if not m.glued and not m.negated]


def words_to_digits(text: str) -> str:
    """Numbers in words turned into digits by ``text2num`` ("forty-two thousand" ->
    "42000"); text without number words is returned unchanged, without importing it."""
    if not re.search(r"\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|teen|twenty|thirty"
                     r"|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|billion)", text):
        return text
    from text_to_num import alpha2digit  # ~13 ms: only text with number words needs it

    out = []
    for chunk in _chunks(text):
        if _NUMBER_WORD.search(chunk):
            try:
                chunk = alpha2digit(chunk, "en")
            except Exception:  # noqa: BLE001 - text2num refused the text: keep it as written
                pass
        out.append(chunk)
    return _FRACTION.sub(lambda m: m.group(1) + _FRACTIONS[m.group(2)], "".join(out))


_NUMBER_WORD = re.compile(
    r"\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\w+teen|twenty|thirty|forty|fifty"
    r"|sixty|seventy|eighty|ninety|hundred|thousand|million|billion)\b"
)
_CHUNK = 2000


def _chunks(text: str) -> list[str]:
    """``text`` cut after sentence ends into pieces of about ``_CHUNK`` characters (a
    longer sentence at a space), so ``alpha2digit`` (quadratic in its input) stays linear."""
    out: list[str] = []
    start = 0
    n = len(text)
    while start < n:
        end = min(n, start + _CHUNK)
        if end < n:
            cut = max(text.rfind(c, start, end) for c in ".!?;\n")
            if cut <= start:
                cut = text.rfind(" ", start, end)
            end = cut + 1 if cut > start else end
        out.append(text[start:end])
        start = end
    return out


_FRACTIONS = {"a half": ".5", "one half": ".5", "a quarter": ".25", "three quarters": ".75"}
_FRACTION = re.compile(r"\b(\d+) and (a half|one half|a quarter|three quarters)\b")


def digits_in_words(text: str) -> str:
    """Runs of digits spelled one by one ("five five five, oh one nine nine") turned into
    the digit string ("5550199"); other text unchanged. For phone-like values."""

    def one(m: re.Match[str]) -> str:
        out = []
        mult = 1
        for w in re.findall(r"[a-z]+", m.group(0)):
            if w == "double":
                mult = 2
            elif w == "triple":
                mult = 3
            else:
                out.append(_DIGIT_WORDS[w] * mult)
                mult = 1
        return "".join(out)

    return _DIGIT_RUN.sub(one, text)


def _value(m: re.Match[str]) -> float:
    if m.group("eu"):
        value = float(m.group("eu").replace(".", "").replace(",", "."))
    elif m.group("euc"):
        value = float(m.group("euc").replace(",", "."))
    else:
        digits = m.group("int").replace(",", "").replace(" ", "").replace("_", "")
        value = float(digits + (m.group("frac") or "") + (m.group("exp") or ""))
    if m.group("suf"):
        value *= _SUFFIX[m.group("suf").lower()]
    if m.group("sign") == "-":
        value = -value
    return value




#: the most number mentions read from one answer; an answer with more is a list of
#: numbers, not an answer (and reading on would cost time and memory on hostile input)
MAX_MENTIONS = 2000


def read_numbers(text: str, limit: int = MAX_MENTIONS) -> Reading:
    """Every number mention in ``text`` (normalised text: lower case, straight quotes), up
    to ``limit`` of them (``truncated`` says there were more)."""
    text = words_to_digits(text)
    blocked = [(m.start(), m.end()) for m in _ISO_DATE.finditer(text)]
    mentions: list[Mention] = []
    pos = 0
    depth, seen = 0, 0  # parentheses open before `seen`, counted as mentions are reached
    lead = len(text) - len(text.lstrip(" *_#>`\"'([-:\n\t"))  # a number starting here leads the answer
    while True:
        m = _NUMBER.search(text, pos)
        if m is None:
            break
        if len(mentions) >= limit:
            return Reading(text, tuple(mentions), truncated=True)
        start, end = m.start(), m.end()
        if m.group("sign") and start > 0 and (text[start - 1].isalnum() or text[start - 1] in "._"):
            start += 1  # a hyphen glued to what precedes it is not a minus sign: re-read
            m = _NUMBER.match(text, start)
            if m is None:  # pragma: no cover - the digits are still there
                pos = start
                continue
            end = m.end()
        before = text[max(0, start - 1):start]
        if before and (before.isdigit() or before in ".,_" and start > 1 and text[start - 2].isdigit()):
            pos = end  # the tail of a longer token (1.2.3, a list 1,2,3): not a number of its own
            continue
        if any(a <= start < b for a, b in blocked):
            pos = max(end, next(b for a, b in blocked if a <= start < b))
            continue
        if (m.group("euc") and _EURO_LIST.search(text, max(0, start - 2), min(len(text), end + 2))):
            pos = end  # "1,2,3": a list, not a decimal comma
            continue
        raw = m.group(0)
        value = _value(m)
        head = text[max(0, start - 40):start]
        glued = _glued_before(text, start) and not (m.group("cur") or m.group("sign"))
        tail = text[end:end + 40]
        unit = None
        u = _UNIT_AFTER.match(tail)
        if u is not None and (u.start(1) == 0 or tail.startswith(" ")):
            word = u.group(1)
            if word in UNITS:
                unit = word
        if tail[:1].isalpha() and unit is None and not m.group("suf"):
            glued = True  # 42abc, 3rd, 2x: not an amount
        if re.match(r"[-_#/][a-z]", tail):
            glued = True  # 42-abc (an id)
        words = _TOKEN.findall(head)[::-1]
        negated = _negated_before(words) or bool(_NEG_AFTER.match(tail))
        committed = start <= lead or _committed_before(words, head)  # after a marker, or it leads the answer
        seg = text[seen:start]
        depth, seen = max(0, depth + seg.count("(") - seg.count(")")), start
        mentions.append(Mention(
            value=value, start=start, end=end, raw=raw.strip(), unit=unit, currency=bool(m.group("cur")),
            glued=glued, negated=negated, committed=committed, aside=depth > 0,
        ))
        pos = end
    return Reading(text, tuple(mentions))


def alternatives(reading: Reading, mentions: Iterable[Mention]) -> tuple[Mention, Mention] | None:
    """The first two consecutive mentions offered as alternatives: "either X or Y", "X or
    maybe Y", "X, perhaps Y", "between X and Y", "X-Y"; None when there are none."""
    ms = list(mentions)
    for a, b in zip(ms, ms[1:]):
        between = reading.text[a.end:b.start]
        if _RANGE.match(between) and (reading.text[max(0, a.start - 9):a.start].strip().endswith("between")
                                      or between.strip() in ("-", "to", "–")):
            return a, b
        words = _WORDS.findall(between)
        if len(between) > 60 or re.search(r"[.;!?](?:\s|\Z)", between) and "or" not in words[:2]:
            continue
        if words and set(words) & _ALT_WORDS and set(words) <= (_ALT_WORDS | _ALT_FILLER):
            return a, b
    return None


def convert(value: float, unit: str | None, to: str | None) -> float:
    """``value`` in ``unit`` expressed in ``to`` when both are units of one dimension;
    otherwise ``value`` unchanged (a bare number is taken to be in the asked unit)."""
    if unit is None or to is None or unit not in UNITS or to not in UNITS:
        return value
    (dim_a, fa), (dim_b, fb) = UNITS[unit], UNITS[to]
    if dim_a != dim_b:
        return value
    return value * fa / fb
