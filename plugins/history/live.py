"""The live writer: each lane goes into the run database as it finishes.

It stores the scorecard exactly as ``<lane>.json`` holds it (``scorecard_to_dict``) with the
row planner ``hbench history import`` uses (:mod:`hbench.plugins.history.store`), so the two
agree: through sqlite3 when the database is a SQLite file at the current schema (no
SQLAlchemy import in the run), else through SQLAlchemy. A database that cannot be written never fails the run: the
warning says why and how to add the lane later (``hbench history import OUT``).
"""

from __future__ import annotations

import threading
from typing import Any


def _enabled() -> bool:
    import os

    return os.environ.get("HBENCH_HISTORY", "1").strip().lower() not in ("0", "false", "no", "off", "")


class LiveWriter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._warming: threading.Thread | None = None

    def warm(self) -> None:
        """Import SQLAlchemy and open (migrate) the database off the run's path, once."""
        if self._warming is not None or not _enabled():
            return
        with self._lock:
            if self._warming is None:
                self._warming = threading.Thread(target=self._open_quietly, name="hbench-history-warm", daemon=True)
                self._warming.start()

    @staticmethod
    def _open_quietly() -> None:
        try:
            from hbench.plugins.history.where import exists, resolve_url, sqlite_file

            if sqlite_file(resolve_url()) is not None and exists():
                import sqlite3  # noqa: F401 - an existing SQLite file: write() uses sqlite3
                return
            from hbench.plugins.history.db import engine_for

            engine_for()  # a new file (created and stamped) or PostgreSQL: SQLAlchemy
        except Exception:  # noqa: BLE001 - write() reports it, with the lane's name
            pass

    def write(self, scorecard: Any) -> None:
        if not _enabled():
            return
        warming = self._warming
        if warming is not None:
            warming.join()
        lane = str((getattr(scorecard, "lane", None) or {}).get("name", "?"))
        try:
            from hbench.plugins.history.store import write_lane, write_lane_sqlite
            from hbench.report import scorecard_to_dict

            data = scorecard_to_dict(scorecard)
            if write_lane_sqlite(None, data) is None:  # not a SQLite file at the current schema
                from hbench.plugins.history.db import engine_for

                write_lane(engine_for(), data)
        except Exception as exc:  # noqa: BLE001 - the run goes on; the files keep everything
            from hbench.logging import get_logger, scrub
            from hbench.plugins.history.where import redact_url

            get_logger().warning("history.not_written", lane=lane,
                                 error=redact_url(scrub(f"{type(exc).__name__}: {exc}".splitlines()[0])),
                                 fix="hbench history import OUT adds it later; --no-history turns the writer off")


writer = LiveWriter()
