"""Where the run database is, without importing SQLAlchemy: the URL (``--db``,
``HBENCH_DB``, or SQLite in the user data dir), the schema revision this hbench writes,
and credential removal for everything stored or shown."""

from __future__ import annotations

import calendar
import os
import re
import time
from pathlib import Path
from typing import Any

from hbench.errors import BadInput

#: the newest migration (``migrations/versions``); db.py's tables are what it leaves
HEAD = "0002"
ENV_DB = "HBENCH_DB"


def default_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("hbench", appauthor=False)) / "history.sqlite"


def resolve_url(url: str | None = None) -> str:
    """``--db``, else ``HBENCH_DB``, else the default SQLite file. A bare path is a SQLite
    file; ``postgresql://`` means psycopg 3."""
    raw = url if url else os.environ.get(ENV_DB) or ""
    where = "--db" if url else ENV_DB
    if not raw:
        return f"sqlite:///{default_path()}"
    if "://" not in raw:
        return f"sqlite:///{Path(raw).expanduser().absolute()}"
    scheme = raw.split("://", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + raw.split("://", 1)[1]
    if scheme == "postgresql+psycopg" or scheme == "sqlite" or scheme.startswith("sqlite+"):
        return raw
    raise BadInput(f"{where}={redact_url(raw)!r}: unsupported database (use a SQLite path, sqlite:///PATH or "
                   "postgresql://USER@HOST:PORT/DB)")


_CRED = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s\"'<>]*@")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:api[_-]?key|key|token|access_token|password|secret|sig)=)[^&\s\"'#<>]*")


def redact_url(text: str) -> str:
    """``text`` with credentials removed from every URL in it: ``user:pass@`` and secret
    query parameters (``?api_key=...``). Applied to everything the database stores."""
    if "://" not in text:
        return text
    return _QUERY_SECRET.sub(r"\1***", _CRED.sub(r"\g<scheme>", text))


def describe(url: str) -> str:
    """The URL as it may be shown (no password)."""
    return redact_url(url)




def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL (None for another database or an in-memory one)."""
    scheme, _, rest = url.partition("://")
    if not scheme.startswith("sqlite") or not rest.startswith("/"):
        return None
    path = rest[1:].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def exists(url: str | None = None) -> bool:
    """Whether there is a database to read (a SQLite file that is there; any server URL)."""
    full = resolve_url(url)
    path = sqlite_file(full)
    return path is not None and path.exists() if full.startswith("sqlite") else True


def parse_ts(text: Any) -> float | None:
    """``2026-11-30T21:43:57+0000`` (what hbench writes) -> seconds since the epoch."""
    if not isinstance(text, str) or not text:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S"):
        try:
            st = time.strptime(text.replace("Z", "+0000"), fmt)
        except ValueError:
            continue
        off = st.tm_gmtoff or 0
        return float(calendar.timegm(st) - off)
    return None
