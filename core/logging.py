"""structlog setup: to stderr, console renderer on a TTY, JSON lines otherwise.

Event names are dotted (``lane.ready``, ``attempt.runaway``). Plugins call
:func:`get_logger` and never configure logging themselves. Every value passes through
the secret scrubber: an API key registered with :func:`register_secret` is replaced by
``***`` wherever it appears, in any event field.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import sys
import threading
from typing import Any
from urllib.parse import quote, quote_plus, unquote

_SECRETS: set[str] = set()
_FORMS: set[str] = set()  # every registered secret in every form it may be echoed in
_FORMS_SORTED: list[str] = []  # the same, longest first
_configured = False
#: settings given to configure() and not yet applied: structlog (which imports rich) is
#: imported on the first log call, not at import (``hbench plugins`` / ``--help`` stay fast)
_pending: tuple[str, str, Any] | None = None
_apply_lock = threading.Lock()
_secrets_lock = threading.Lock()

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def register_secret(value: str | None) -> None:
    """Scrub ``value`` from every log line, result and report from now on, in every form a
    server or a library may echo it (see :func:`secret_forms`)."""
    global _FORMS_SORTED
    if value and len(value) >= 4 and value not in _SECRETS:
        forms = secret_forms(value)
        with _secrets_lock:
            _SECRETS.add(value)
            _FORMS.update(forms)
            _FORMS_SORTED = sorted(_FORMS, key=len, reverse=True)  # replaced whole: readers need no lock


def register_url_secrets(url: str | None) -> None:
    """Register the password (and ``user:password``) of a URL's userinfo as secrets."""
    if not url or "@" not in url:
        return
    m = _USERINFO.search(url)
    if m is None:
        return
    info = m.group("info")
    user, _, password = info.partition(":")
    for v in (info, unquote(info), password, unquote(password)):
        register_secret(v)


def secret_forms(value: str) -> set[str]:
    """``value`` as it may be echoed: raw; JSON-escaped (with and without ``\\/``, with
    ``\\uXXXX``); URL-encoded (``%2F`` or ``%2f``, ``+`` for spaces); HTML entities
    (``&amp;`` style, every character as ``&#NN;`` or ``&#xHH;``); and base64 at each of the
    three byte alignments (standard and URL-safe), so the key inside a base64 blob
    (``Bearer <key>``, Basic ``user:key``) is cut too. Forms under 6 characters are left
    out (they would cut unrelated text)."""
    forms = {value}
    for j in (json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]):
        forms.update({j, j.replace("/", "\\/")})
    for q in (quote(value, safe=""), quote_plus(value, safe=""), quote(value)):
        forms.update({q, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), q)})
    forms.add(html.escape(value))
    forms.add(html.escape(value, quote=False))
    forms.add("".join(f"&#{ord(c)};" for c in value))
    forms.add("".join(f"&#x{ord(c):x};" for c in value))
    forms.add("".join(f"&#x{ord(c):X};" for c in value))
    raw = value.encode("utf-8", "replace")
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + raw).decode()
        # skip the characters that also encode the padding bytes, and the last partial group
        start = (8 * k + 5) // 6
        tail = len(raw) + k
        end = (tail // 3) * 4
        core = enc[start:end]
        if len(core) >= 8:
            forms.update({core, core.replace("+", "-").replace("/", "_")})
    # a form holding a backslash, inside JSON text (a journal line, a JSON log): escaped again
    forms.update([f.replace("\\", "\\\\") for f in forms if "\\" in f])
    return {f for f in forms if len(f) >= 6 or f == value}


#: ``scheme://user:password@`` (also JSON-escaped ``:\/\/``): the userinfo is dropped. The
#: pattern starts at the ``:`` (a literal: scanned fast), not at the scheme's first letter
_USERINFO = re.compile(r"(?P<scheme>:(?:\\?/){2})(?P<info>[^/\\?#@\s\"'<>]+)@")


def scrub(text: str) -> str:
    """Remove every registered secret (in each of its forms) from ``text``, as ``***``, and
    the userinfo (``user:password@``) of any URL in it."""
    if "@" in text and (":/" in text or ":\\/" in text):
        text = _USERINFO.sub(r"\g<scheme>", text)
    for s in _FORMS_SORTED:
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
