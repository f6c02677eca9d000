"""Reading a SQLite run database with the standard library's ``sqlite3``, for the two
commands that must answer at start-up speed: ``hbench history`` and ``hbench compare``
(goal < 300 ms with start-up; importing SQLAlchemy alone costs ~250 ms of CPU).

Used only when the database is a SQLite file already at the schema this hbench writes
(:data:`where.HEAD`); otherwise (PostgreSQL, an older schema to migrate, no file) the
SQLAlchemy path in :mod:`query` runs. The SQL here reads the tables :mod:`db` defines.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from hbench.plugins.history.where import HEAD, resolve_url, sqlite_file

LANE_RUN_COLUMNS = (
    "lr.id, lr.run_id, lr.started_at, lr.finished_at, lr.core_pass, lr.core_n, lr.pass_rate, lr.ci_low, "
    "lr.ci_high, lr.consistency, lr.runaway_rate, lr.correct_tool_rate, lr.format_error_rate, lr.error_rate, "
    "lr.rankable, lr.failed, lr.attempts_run, lr.tok_s, lr.complete, lr.incomplete_reason, "
    "r.started_at AS run_started_at, r.started_ts, r.host, r.hbench_version, l.name, l.served_model, l.fingerprint, "
    "l.suite_sha256, l.suite_name, l.suite_version, l.kind, l.model, l.base_url")
FROM = "FROM lane_runs lr JOIN runs r ON r.run_id = lr.run_id JOIN lanes l ON l.id = lr.lane_id"


def connect(url: str | None = None) -> sqlite3.Connection | None:
    """A read-only connection when ``url`` is a SQLite file at :data:`HEAD`, else None."""
    path = sqlite_file(resolve_url(url))
    if path is None or not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 60000")
        rev = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    if rev is None or rev[0] != HEAD:
        conn.close()
        return None
    return conn


def history(conn: sqlite3.Connection, *, lane: str | None, model: str | None, suite: str | None,
            since: float | None) -> Any:
    """Rows as :func:`query.history` reads them (same order), streamed."""
    where, args = [], []
    if lane:
        where.append("l.name = ?")
        args.append(lane)
    if model:
        where.append("(l.served_model = ? OR l.model = ?)")
        args += [model, model]
    if suite:
        where.append("(l.suite_name = ? OR substr(l.suite_sha256, 1, ?) = ?)")
        args += [suite, len(suite), suite]
    if since is not None:
        where.append("r.started_ts >= ?")
        args.append(since)
    sql = (f"SELECT {LANE_RUN_COLUMNS} {FROM}" + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY r.started_ts IS NULL, r.started_ts DESC, r.run_id, lr.id")
    return conn.execute(sql, args)


def lane_run(conn: sqlite3.Connection, lane: str, back: int) -> tuple[str, str] | None:
    """(scorecard JSON, run id) of ``lane``'s run ``back`` runs before its latest."""
    row = conn.execute("SELECT lr.scorecard, lr.run_id FROM lane_runs lr JOIN lanes l ON l.id = lr.lane_id "
                       "WHERE l.name = ? ORDER BY lr.finished_ts IS NULL, lr.finished_ts DESC, lr.id DESC "
                       "LIMIT 1 OFFSET ?", (lane, back)).fetchone()
    return (row[0], row[1]) if row else None


def lane_run_count(conn: sqlite3.Connection, lane: str) -> int:
    return conn.execute("SELECT count(*) FROM lane_runs lr JOIN lanes l ON l.id = lr.lane_id WHERE l.name = ?",
                        (lane,)).fetchone()[0]


def run_ids(conn: sqlite3.Connection, ref: str) -> list[str]:
    """``ref`` itself when it is a run id, else up to 5 ids starting with it (4+ characters)."""
    if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (ref,)).fetchone():
        return [ref]
    if len(ref) < 4:
        return []
    return [r[0] for r in conn.execute("SELECT run_id FROM runs WHERE substr(run_id, 1, ?) = ? LIMIT 5",
                                       (len(ref), ref))]


def run_scorecards(conn: sqlite3.Connection, run_id: str) -> list[tuple[str, str]]:
    """(lane name, scorecard JSON) of every lane in a run, in the order written."""
    return [(r[0], r[1]) for r in conn.execute(
        "SELECT l.name, lr.scorecard FROM lane_runs lr JOIN lanes l ON l.id = lr.lane_id "
        "WHERE lr.run_id = ? ORDER BY lr.id", (run_id,))]
