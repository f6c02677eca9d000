"""structlog setup: to stderr, console renderer on a TTY, JSON lines otherwise.

Event names are dotted (``lane.ready``, ``attempt.runaway``). Plugins call
:func:`get_logger` and never configure logging themselves. Every value passes through
the secret scrubber: an API key registered with :func:`register_secret` is replaced by
``***`` wherever it appears, in any event field.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

_SECRETS: set[str] = set()
_configured = False
#: settings given to configure() and not yet applied: structlog (which imports rich) is
#: imported on the first log call, not at import (``hbench plugins`` / ``--help`` stay fast)
_pending: tuple[str, str, Any] | None = None
_apply_lock = threading.Lock()

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def register_secret(value: str | None) -> None:
    """Scrub ``value`` from every log line, result and report from now on."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def scrub(text: str) -> str:
    """Replace every registered secret in ``text`` with ``***``."""
    for s in _SECRETS:
        if s in text:
            text = text.replace(s, "***")
    return text


def _scrub_value(v: Any) -> Any:
    if isinstance(v, str):
        return scrub(v)
    if isinstance(v, dict):
        return {k: _scrub_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_scrub_value(x) for x in v)
    if isinstance(v, BaseException):
        return scrub(f"{type(v).__name__}: {v}")
    return v


def _scrub_processor(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    if not _SECRETS:
        return event
    return {k: _scrub_value(v) for k, v in event.items()}


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is *now* (test runners swap it; a logger bound
    to a closed stream would raise on the next line)."""

    def write(self, s: str) -> int:
        return sys.stderr.write(s)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return getattr(sys.stderr, "isatty", lambda: False)()


def configure(fmt: str = "auto", level: str = "warning", stream: Any = None) -> None:
    """Configure structlog once per process. ``fmt``: auto | console | json.

    Applied at once when structlog is already imported, else on the first
    :func:`get_logger` call."""
    global _configured, _pending
    stream = stream or _CurrentStderr()
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    with _apply_lock:
        _pending = (fmt, level, stream)
        _configured = True
    if "structlog" in sys.modules:
        _apply()


def _apply() -> None:
    global _pending
    import structlog

    with _apply_lock:  # a thread that logs meanwhile waits for the whole configuration
        if _pending is None:
            return
        fmt, level, stream = _pending
        processors: list[Any] = [
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _scrub_processor,
        ]
        if fmt == "json":
            processors.append(structlog.processors.JSONRenderer())
        else:
            processors.append(structlog.dev.ConsoleRenderer(colors=False))
        structlog.configure(
            processors=processors,
            wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, logging.WARNING)),
            logger_factory=structlog.PrintLoggerFactory(file=stream),
            cache_logger_on_first_use=False,
        )
        _pending = None


def get_logger(**bind: Any) -> Any:
    if not _configured:
        configure()
    if _pending is not None:
        _apply()
    import structlog

    return structlog.get_logger(**bind)
