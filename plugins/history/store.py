"""Writing one lane of one run into the run database, from its scorecard JSON.

Both ways in use this one function: the live writer (the ``hbench_lane_finished`` hook,
with the scorecard as ``<lane>.json`` would hold it) and ``hbench history import`` (with
the file itself). That is why a database rebuilt from files equals the one written live.

Writing is idempotent: a lane already there for that run is replaced, so importing twice
adds nothing and a ``--resume``d run updates its lanes.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from hbench.plugins.history.where import HEAD, parse_ts, redact_url, resolve_url, sqlite_file

# SQLAlchemy is imported by the SQLAlchemy executor only: the live writer on a SQLite file
# at HEAD writes through sqlite3 (write_lane_sqlite), so a run does not pay its import.


def _s(x: Any) -> str:
    return "" if x is None else str(x)


def _f(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def run_id_of(data: dict[str, Any], fallback: str | None = None) -> str:
    """The scorecard's ``provenance.run_id``; else ``fallback`` (the journal header's);
    else a stable id from the host and the run's start time (scorecards from before run ids)."""
    prov = data.get("provenance") or {}
    rid = prov.get("run_id") or fallback
    if rid:
        return str(rid)
    h = prov.get("host")
    host = (h.get("hostname") or h.get("name") or "") if isinstance(h, dict) else ""
    basis = f"{host}|{prov.get('run_started_at') or prov.get('started_at') or ''}|{(data.get('suite') or {}).get('sha256', '')}"
    return "legacy-" + hashlib.sha256(basis.encode()).hexdigest()[:20]


def fingerprint_of(data: dict[str, Any], fallback: str | None = None) -> str:
    """``lane.fingerprint`` (the journal's lane fingerprint); else ``fallback`` (read from the
    journal); else a hash of what the scorecard says about the lane and its settings."""
    lane = data.get("lane") or {}
    fp = lane.get("fingerprint") or fallback
    if fp:
        return str(fp)
    settings = (data.get("provenance") or {}).get("settings") or {}
    basis = {"kind": lane.get("kind"), "base_url": redact_url(_s(lane.get("base_url"))), "model": lane.get("model"),
             "settings": {k: settings.get(k) for k in ("agent", "timeout_s", "max_turns", "max_tokens", "temperature")}}
    return "sc-" + hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()[:40]


def canonical_json(data: dict[str, Any]) -> str:
    """The scorecard as stored: sorted keys, credentials out of every URL."""
    return redact_url(json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False))


def write_lane(engine: Any, data: dict[str, Any], *, run_id: str | None = None,
               fingerprint: str | None = None, retries: int = 5) -> str:
    """Store one lane's scorecard (``hbench.scorecard/1`` as a dict) through SQLAlchemy.
    Returns the run id.

    ``run_id`` / ``fingerprint``: fallbacks for scorecards that lack them. A concurrent
    writer creating the same lane identity at the same moment is retried."""
    import sqlalchemy as sa

    from hbench.plugins.history import db

    for attempt in range(retries):
        try:
            with db.write_conn(engine) as conn:
                return _write(_SaOps(conn), data, run_id, fingerprint)
        except sa.exc.IntegrityError:
            if attempt == retries - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def write_lane_sqlite(url: str | None, data: dict[str, Any], *, retries: int = 5) -> str | None:
    """The same write through the standard library's sqlite3 when the database is a SQLite
    file already at :data:`HEAD` (the rows are the same: one :func:`_write` plans them);
    None when it is not (a new file, an older schema, PostgreSQL): use :func:`write_lane`."""
    import sqlite3

    path = sqlite_file(resolve_url(url))
    if path is None or not path.exists():
        return None
    conn = sqlite3.connect(str(path), timeout=60, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        rev = conn.execute("SELECT version_num FROM alembic_version").fetchone() if conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'").fetchone() else None
        if rev is None or rev[0] != HEAD:
            return None
        for attempt in range(retries):
            conn.execute("BEGIN IMMEDIATE")
            try:
                rid = _write(_SqliteOps(conn), data, None, None)
                conn.execute("COMMIT")
                return rid
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK")
                if attempt == retries - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    finally:
        conn.close()
    raise AssertionError("unreachable")


class _SaOps:
    """The statements a lane write needs, through SQLAlchemy Core (SQLite and PostgreSQL)."""

    def __init__(self, conn: Any):
        import sqlalchemy as sa

        from hbench.plugins.history import db

        self.conn, self.sa, self.db = conn, sa, db

    def run_finished_at(self, rid: str) -> tuple[str] | None:
        r = self.conn.execute(self.sa.select(self.db.runs.c.finished_at).where(self.db.runs.c.run_id == rid)).first()
        return (r[0],) if r is not None else None

    def insert(self, table: str, values: dict[str, Any]) -> int | None:
        t = self.db.metadata.tables[table]
        res = self.conn.execute(t.insert().values(**values))
        return res.inserted_primary_key[0] if table != "runs" else None

    def update_run(self, rid: str, finished: str) -> None:
        self.conn.execute(self.db.runs.update().where(self.db.runs.c.run_id == rid).values(finished_at=finished))

    def lane_id(self, ident: dict[str, Any]) -> int | None:
        lanes = self.db.lanes
        return self.conn.execute(self.sa.select(lanes.c.id).where(
            self.sa.and_(*(lanes.c[k] == v for k, v in ident.items())))).scalar()

    def lane_run_id(self, rid: str, lane_id: int) -> int | None:
        lr = self.db.lane_runs
        return self.conn.execute(self.sa.select(lr.c.id).where(lr.c.run_id == rid, lr.c.lane_id == lane_id)).scalar()

    def delete_lane_run(self, lr_id: int) -> None:
        db = self.db
        self.conn.execute(db.attempts.delete().where(db.attempts.c.lane_run_id == lr_id))
        self.conn.execute(db.prompts.delete().where(db.prompts.c.lane_run_id == lr_id))
        self.conn.execute(db.lane_runs.delete().where(db.lane_runs.c.id == lr_id))

    def bulk(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Many rows at once: the INSERT compiled by SQLAlchemy for this dialect, executed
        with the driver's executemany (SQLAlchemy's per-row parameter processing was half
        of an import's time). Values are plain str/int/float/bool/None."""
        if not rows:
            return
        compiled = self.db.metadata.tables[table].insert().compile(dialect=self.conn.dialect, column_keys=list(rows[0]))
        params: Any = [tuple(r[k] for k in compiled.positiontup) for r in rows] if compiled.positional else rows
        self.conn.exec_driver_sql(str(compiled), params)


class _SqliteOps:
    """The same statements for sqlite3 (the tables of :mod:`db`, at :data:`HEAD`)."""

    def __init__(self, conn: Any):
        self.conn = conn

    def run_finished_at(self, rid: str) -> tuple[str] | None:
        return self.conn.execute("SELECT finished_at FROM runs WHERE run_id = ?", (rid,)).fetchone()

    def insert(self, table: str, values: dict[str, Any]) -> int | None:
        cols = list(values)
        cur = self.conn.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                [values[c] for c in cols])
        return cur.lastrowid if table != "runs" else None

    def update_run(self, rid: str, finished: str) -> None:
        self.conn.execute("UPDATE runs SET finished_at = ? WHERE run_id = ?", (finished, rid))

    def lane_id(self, ident: dict[str, Any]) -> int | None:
        keys = list(ident)
        r = self.conn.execute(f"SELECT id FROM lanes WHERE {' AND '.join(f'{k} = ?' for k in keys)}",
                              [ident[k] for k in keys]).fetchone()
        return r[0] if r else None

    def lane_run_id(self, rid: str, lane_id: int) -> int | None:
        r = self.conn.execute("SELECT id FROM lane_runs WHERE run_id = ? AND lane_id = ?", (rid, lane_id)).fetchone()
        return r[0] if r else None

    def delete_lane_run(self, lr_id: int) -> None:
        for sql in ("DELETE FROM attempts WHERE lane_run_id = ?", "DELETE FROM prompts WHERE lane_run_id = ?",
                    "DELETE FROM lane_runs WHERE id = ?"):
            self.conn.execute(sql, (lr_id,))

    def bulk(self, table: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        cols = list(rows[0])
        self.conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                              [tuple(r[c] for c in cols) for r in rows])


def _write(ops: Any, data: dict[str, Any], run_id: str | None, fingerprint: str | None) -> str:
    """Plan and execute one lane's rows (the same values whatever ``ops`` executes them)."""
    text = canonical_json(data)  # what is stored; credentials out
    data = json.loads(text)  # and the figures are read from that same text
    prov = data.get("provenance") or {}
    lane = data.get("lane") or {}
    suite = data.get("suite") or {}
    rid = run_id_of(data, run_id)
    host = prov.get("host")
    run_started = _s(prov.get("run_started_at") or prov.get("started_at"))
    finished = _s(prov.get("finished_at"))

    # the run: created by its first lane; finished_at is its last lane's
    row = ops.run_finished_at(rid)
    if row is None:
        ops.insert("runs", {
            "run_id": rid, "started_at": run_started, "started_ts": parse_ts(run_started), "finished_at": finished,
            "host": _s((host.get("hostname") or host.get("name")) if isinstance(host, dict) else host),
            "hbench_version": _s(prov.get("hbench_version"))})
    elif (parse_ts(finished) or 0) > (parse_ts(row[0]) or 0):
        ops.update_run(rid, finished)

    # the lane's identity
    ident = {"name": _s(lane.get("name")), "served_model": _s(lane.get("served_model")),
             "fingerprint": fingerprint_of(data, fingerprint), "suite_sha256": _s(suite.get("sha256"))}
    lane_id = ops.lane_id(ident)
    if lane_id is None:
        lane_id = ops.insert("lanes", {
            **ident, "suite_name": _s(suite.get("name")), "suite_version": _s(suite.get("version")),
            "kind": _s(lane.get("kind")), "model": _s(lane.get("model")),
            "base_url": redact_url(_s(lane.get("base_url")))})

    # the lane in this run: replaced when it is already there (import twice, --resume)
    old = ops.lane_run_id(rid, lane_id)
    if old is not None:
        ops.delete_lane_run(old)
    ci = data.get("pass_rate_ci95") or [None, None]
    tp = data.get("throughput") or {}
    lr_id = ops.insert("lane_runs", {
        "run_id": rid, "lane_id": lane_id, "started_at": _s(prov.get("started_at")), "finished_at": finished,
        "finished_ts": parse_ts(finished), "core_pass": int(data.get("core_pass") or 0),
        "core_n": int(data.get("core_n") or 0), "pass_rate": float(data.get("pass_rate") or 0.0),
        "ci_low": _f(ci[0]) if len(ci) > 0 else None, "ci_high": _f(ci[1]) if len(ci) > 1 else None,
        "consistency": _f(data.get("consistency")), "runaway_rate": _f(data.get("runaway_rate")),
        "correct_tool_rate": _f(data.get("correct_tool_rate")), "format_error_rate": _f(data.get("format_error_rate")),
        "error_rate": _f(data.get("error_rate")), "rankable": bool(data.get("rankable")),
        "failed": data.get("failed"), "attempts_run": int(data.get("attempts_run") or 0),
        "tok_s": _f(tp.get("tok_s")), "scorecard": text,
        "complete": data.get("complete") if isinstance(data.get("complete"), bool) else None,
        "incomplete_reason": data.get("incomplete_reason"),
    })

    prompt_rows, attempt_rows = [], []
    for p in data.get("prompts") or ():
        pid = _s(p.get("id"))
        prompt_rows.append({
            "lane_run_id": lr_id, "prompt_id": pid, "category": _s(p.get("category")), "core": bool(p.get("core")),
            "runs": int(p.get("runs") or 0), "passes": int(p.get("passes") or 0),
            "pass_rate": float(p.get("pass_rate") or 0.0), "majority_pass": bool(p.get("majority_pass")),
            "skipped": p.get("skipped"), "gate": p.get("gate"),
        })
        for a in p.get("attempts") or ():
            err = a.get("error")
            attempt_rows.append({
                "lane_run_id": lr_id, "prompt_id": pid, "n": int(a.get("n") or 0), "passed": bool(a.get("passed")),
                "runaway": a.get("runaway"), "errored": bool(a["errored"]) if "errored" in a else err is not None,
                "error": err, "wall_s": float(a.get("wall_s") or 0.0),
                "prompt_tokens": int(a.get("prompt_tokens") or 0),
                "completion_tokens": int(a.get("completion_tokens") or 0),
            })
    ops.bulk("prompts", prompt_rows)
    ops.bulk("attempts", attempt_rows)
    return rid
