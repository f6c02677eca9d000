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

import sqlalchemy as sa

from hbench.plugins.history import db
from hbench.plugins.history.db import attempts, lane_runs, lanes, prompts, redact_url, runs
from hbench.plugins.history.where import parse_ts


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


def write_lane(engine: sa.Engine, data: dict[str, Any], *, run_id: str | None = None,
               fingerprint: str | None = None, retries: int = 5) -> str:
    """Store one lane's scorecard (``hbench.scorecard/1`` as a dict). Returns the run id.

    ``run_id`` / ``fingerprint``: fallbacks for scorecards that lack them. A concurrent
    writer creating the same lane identity at the same moment is retried."""
    for attempt in range(retries):
        try:
            with db.write_conn(engine) as conn:
                return _write(conn, data, run_id, fingerprint)
        except sa.exc.IntegrityError:
            if attempt == retries - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _write(conn: sa.Connection, data: dict[str, Any], run_id: str | None, fingerprint: str | None) -> str:
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
    row = conn.execute(sa.select(runs.c.finished_at).where(runs.c.run_id == rid)).first()
    if row is None:
        conn.execute(runs.insert().values(
            run_id=rid, started_at=run_started, started_ts=parse_ts(run_started), finished_at=finished,
            host=_s((host.get("hostname") or host.get("name")) if isinstance(host, dict) else host),
            hbench_version=_s(prov.get("hbench_version"))))
    elif (parse_ts(finished) or 0) > (parse_ts(row.finished_at) or 0):
        conn.execute(runs.update().where(runs.c.run_id == rid).values(finished_at=finished))

    # the lane's identity
    ident = {"name": _s(lane.get("name")), "served_model": _s(lane.get("served_model")),
             "fingerprint": fingerprint_of(data, fingerprint), "suite_sha256": _s(suite.get("sha256"))}
    where = sa.and_(*(lanes.c[k] == v for k, v in ident.items()))
    lane_id = conn.execute(sa.select(lanes.c.id).where(where)).scalar()
    if lane_id is None:
        lane_id = conn.execute(lanes.insert().values(
            **ident, suite_name=_s(suite.get("name")), suite_version=_s(suite.get("version")),
            kind=_s(lane.get("kind")), model=_s(lane.get("model")),
            base_url=redact_url(_s(lane.get("base_url"))))).inserted_primary_key[0]

    # the lane in this run: replaced when it is already there (import twice, --resume)
    old = conn.execute(sa.select(lane_runs.c.id).where(lane_runs.c.run_id == rid,
                                                       lane_runs.c.lane_id == lane_id)).scalar()
    if old is not None:
        conn.execute(attempts.delete().where(attempts.c.lane_run_id == old))
        conn.execute(prompts.delete().where(prompts.c.lane_run_id == old))
        conn.execute(lane_runs.delete().where(lane_runs.c.id == old))
    ci = data.get("pass_rate_ci95") or [None, None]
    tp = data.get("throughput") or {}
    lr_id = conn.execute(lane_runs.insert().values(
        run_id=rid, lane_id=lane_id, started_at=_s(prov.get("started_at")), finished_at=finished,
        finished_ts=parse_ts(finished), core_pass=int(data.get("core_pass") or 0),
        core_n=int(data.get("core_n") or 0), pass_rate=float(data.get("pass_rate") or 0.0),
        ci_low=_f(ci[0]) if len(ci) > 0 else None, ci_high=_f(ci[1]) if len(ci) > 1 else None,
        consistency=_f(data.get("consistency")), runaway_rate=_f(data.get("runaway_rate")),
        correct_tool_rate=_f(data.get("correct_tool_rate")), format_error_rate=_f(data.get("format_error_rate")),
        error_rate=_f(data.get("error_rate")), rankable=bool(data.get("rankable")),
        failed=data.get("failed"), attempts_run=int(data.get("attempts_run") or 0),
        tok_s=_f(tp.get("tok_s")), scorecard=text,
        complete=data.get("complete") if isinstance(data.get("complete"), bool) else None,
        incomplete_reason=data.get("incomplete_reason"),
    )).inserted_primary_key[0]

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
    _bulk_insert(conn, prompts, prompt_rows)
    _bulk_insert(conn, attempts, attempt_rows)
    return rid


def _bulk_insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Many rows at once: the INSERT compiled by SQLAlchemy for this dialect, executed
    with the driver's executemany (SQLAlchemy's per-row parameter processing was half of
    an import's time). Values are plain str/int/float/bool/None, which both drivers take."""
    if not rows:
        return
    cols = list(rows[0])
    compiled = table.insert().compile(dialect=conn.dialect, column_keys=cols)
    if compiled.positional:
        params: Any = [tuple(r[k] for k in compiled.positiontup) for r in rows]
    else:
        params = rows
    conn.exec_driver_sql(str(compiled), params)
