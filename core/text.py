"""Text at the boundary: what a server (or a file) sends, made valid Unicode.

JSON may carry a lone surrogate (``"\\ud800"`` is valid JSON); Python decodes it into a
``str`` that cannot be encoded as UTF-8, so it would stop the first write downstream
(the journal, a report). Where text comes in, :func:`valid_text` / :func:`valid_json`
turn each lone surrogate into U+FFFD and join a pair that arrived split in two
(``"\\ud83d"`` then ``"\\ude00"`` in two stream chunks), so everything after is valid
UTF-8.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["has_surrogate", "valid_json", "valid_text"]

_SURROGATE = re.compile("[\ud800-\udfff]")
#: a JSON escape of a surrogate, in text or bytes (the only way one reaches a decoded value:
#: strict UTF-8 decoding refuses an encoded surrogate)
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def has_surrogate(text: str) -> bool:
    """True when ``text`` holds a surrogate code point (cannot be encoded as UTF-8)."""
    return _SURROGATE.search(text) is not None


def valid_text(text: str) -> str:
    """``text`` with surrogate pairs joined and lone surrogates replaced by U+FFFD."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def valid_json(value: Any) -> Any:
    """A decoded JSON value with every string (keys too) made valid by :func:`valid_text`.

    Goes through the JSON text, so nesting as deep as ``json.loads`` accepted costs no
    Python recursion; a value with no surrogate is returned as it is."""
    if isinstance(value, str):
        return valid_text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return value
    if _SURROGATE.search(text) is None:
        return value
    return json.loads(valid_text(text))
