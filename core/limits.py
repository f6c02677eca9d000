"""Size and nesting limits on every parser input (``hbench.toml``, suite files,
scorecards given to ``hbench report``, tool arguments from a server).

A hostile or broken file must give a one-line error naming it, never a
``RecursionError`` traceback: the parsers (``tomllib`` is pure Python) recurse per level
of nesting, and so does the code after them (cattrs, placeholder substitution,
``json.dumps`` of a journal record). Parsing is guarded, then the parsed value's depth is
measured without recursion and refused past :data:`MAX_DEPTH`, far below Python's
recursion limit so the code downstream has room.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

#: deepest nesting accepted in a file hbench reads (a real one is under 10)
MAX_DEPTH = 100
#: bytes accepted per file, by what it is
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_SUITE_FILE_BYTES = 64 * 1024 * 1024
MAX_SCORECARD_BYTES = 512 * 1024 * 1024


class LimitError(ValueError):
    """A parser input is too large, too deeply nested, or not valid; ``str()`` is one line
    without the file name (the caller adds it)."""


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of lists and dicts in ``value`` (a scalar is 0, ``[]`` is 1), counted
    without recursion; stops counting once past ``limit`` (returns ``limit + 1``)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            children: Any = v.values()
        elif isinstance(v, (list, tuple)):
            children = v
        else:
            continue
        d += 1
        if d > deepest:
            deepest = d
            if deepest > limit:
                return deepest
        stack.extend((c, d) for c in children if isinstance(c, (dict, list, tuple)))
    return deepest


def check_depth(value: Any, limit: int = MAX_DEPTH) -> Any:
    """``value``, or :class:`LimitError` when nested deeper than ``limit``."""
    if depth(value, limit) > limit:
        raise LimitError(f"nested deeper than {limit} levels (flatten it)")
    return value


def check_size(n_bytes: int, limit: int) -> None:
    if n_bytes > limit:
        raise LimitError(f"{_mib(n_bytes)} is larger than the {_mib(limit)} hbench reads (is this the right file?)")


def read_limited(path: Any, limit: int) -> bytes:
    """The bytes of ``path``, or :class:`LimitError` when it holds more than ``limit``
    (read no further than that: a 10 GB file costs one bounded read)."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
        if len(data) > limit:
            fh.seek(0, 2)
            check_size(fh.tell(), limit)
    return data


def loads_json(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` with the nesting limit; JSONDecodeError passes through (its line and
    column are the caller's to show), deep nesting is a :class:`LimitError`."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise LimitError(f"nested deeper than {max_depth} levels (flatten it)") from None
    return check_depth(value, max_depth)


def loads_toml(text: str, *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """``tomllib.loads`` with the nesting limit; TOMLDecodeError passes through."""
    try:
        value = tomllib.loads(text)
    except RecursionError:
        raise LimitError(f"nested deeper than {max_depth} levels (flatten it)") from None
    return check_depth(value, max_depth)


def response_json(response: Any, *, max_depth: int = MAX_DEPTH) -> Any:
    """A server's JSON body (an ``httpx.Response``) with the nesting limit: a body nested too
    deeply is a ValueError (:class:`LimitError`) like any body that is not JSON, so callers'
    ``except ValueError`` covers both, and nothing after them meets a RecursionError."""
    return loads_json(response.content, max_depth=max_depth)


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n} bytes"
