"""Reading the run database: the history table, one run, pruning, and what
``hbench compare`` arguments name (a run id, a results folder, ``LANE@latest``/``LANE@-N``)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import attrs

from hbench.errors import BadInput

# SQLAlchemy (hbench.plugins.history.db) is imported inside the functions that need it:
# `hbench history` and `hbench compare` read a SQLite database with sqlite3 (fastread).

#: lane-run columns ``hbench history --json`` shows (the scorecard's names)
FIGURES = ("core_pass", "core_n", "pass_rate", "consistency", "runaway_rate", "correct_tool_rate",
           "format_error_rate", "error_rate", "rankable", "failed", "attempts_run", "tok_s", "complete",
           "incomplete_reason")


def parse_since(text: str) -> float:
    """``7d``, ``12h``, ``30m`` (ago) or an ISO date/time (``2026-11-01``, ``2026-11-01T08:00``, UTC)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if m:
        mult = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        return time.time() - float(m.group(1)) * mult
    from hbench.plugins.history.where import parse_ts

    for candidate in (text, text + "T00:00:00", text + ":00"):
        ts = parse_ts(candidate if re.search(r"[+-]\d{4}$|Z$", candidate) else candidate + "+0000")
        if ts is not None:
            return ts
    raise BadInput(f"--since {text!r}: give a date (2026-11-01), a date and time (2026-11-01T08:00, UTC) "
                   "or an age (7d, 12h, 30m)")


def _lane_run_select() -> Any:
    import sqlalchemy as sa

    from hbench.plugins.history.db import lane_runs, lanes, runs

    cols = [lane_runs.c[k] for k in ("id", "run_id", "started_at", "finished_at", "ci_low", "ci_high", *FIGURES)]
    return (sa.select(*cols, runs.c.started_at.label("run_started_at"), runs.c.started_ts, runs.c.host,
                      runs.c.hbench_version, lanes.c.name, lanes.c.served_model, lanes.c.fingerprint,
                      lanes.c.suite_sha256, lanes.c.suite_name, lanes.c.suite_version, lanes.c.kind,
                      lanes.c.model, lanes.c.base_url)
            .join(runs, runs.c.run_id == lane_runs.c.run_id).join(lanes, lanes.c.id == lane_runs.c.lane_id))


def _m(r: Any) -> Any:
    """A row's columns by name (SQLAlchemy rows and sqlite3 rows alike)."""
    return r._mapping if hasattr(r, "_mapping") else r


def _lane_dict(r: Any) -> dict[str, Any]:
    m = _m(r)
    out = {"lane": m["name"], "kind": m["kind"], "model": m["model"] or None, "served_model": m["served_model"] or None,
           "base_url": m["base_url"] or None, "fingerprint": m["fingerprint"],
           "suite": {"name": m["suite_name"], "version": m["suite_version"], "sha256": m["suite_sha256"]},
           "started_at": m["started_at"], "finished_at": m["finished_at"]}
    for k in FIGURES:
        out[k] = m[k]
    out["rankable"] = bool(m["rankable"])
    out["complete"] = None if m["complete"] is None else bool(m["complete"])
    out["pass_rate_ci95"] = [m["ci_low"], m["ci_high"]]
    return out


def history(url: str | None = None, *, lane: str | None = None, model: str | None = None, suite: str | None = None,
            since: float | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Runs, newest first, each with its lanes (filtered). ``suite`` matches the suite's
    name or a sha256 prefix; ``model`` the served model id or the configured model."""
    from hbench.plugins.history import fastread

    fast = fastread.connect(url)
    if fast is not None:
        try:
            return _group(fastread.history(fast, lane=lane, model=model, suite=suite, since=since), limit)
        finally:
            fast.close()
    import sqlalchemy as sa

    from hbench.plugins.history.db import engine_for, lane_runs, lanes, runs

    q = _lane_run_select()
    if lane:
        q = q.where(lanes.c.name == lane)
    if model:
        q = q.where(sa.or_(lanes.c.served_model == model, lanes.c.model == model))
    if suite:
        q = q.where(sa.or_(lanes.c.suite_name == suite, lanes.c.suite_sha256.startswith(suite)))
    if since is not None:
        q = q.where(runs.c.started_ts >= since)
    q = q.order_by(runs.c.started_ts.desc().nulls_last(), runs.c.run_id, lane_runs.c.id)
    with engine_for(url).connect() as conn:
        return _group(conn.execute(q), limit)


def _group(rows: Any, limit: int | None) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        m = _m(r)
        run = out.get(m["run_id"])
        if run is None:
            if limit is not None and len(out) >= limit:
                break
            run = out[m["run_id"]] = {"run_id": m["run_id"], "started_at": m["run_started_at"],
                                      "host": m["host"], "hbench_version": m["hbench_version"], "lanes": []}
        run["lanes"].append(_lane_dict(r))
    return list(out.values())


def _pick_run(ref: str, found: list[str]) -> str:
    if len(found) == 1:
        return found[0]
    if found:
        raise BadInput(f"run {ref!r} is ambiguous: {', '.join(found)}; give more of the id")
    raise BadInput(f"no run {ref!r} in the run database (see `hbench history`)")


def find_run(conn: Any, ref: str) -> str:
    """A run id, or an unambiguous prefix of one (at least 4 characters)."""
    import sqlalchemy as sa

    from hbench.plugins.history.db import runs

    if conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id == ref)).first():
        return ref
    found = []
    if len(ref) >= 4:
        found = [r[0] for r in conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id.startswith(ref)).limit(5))]
    return _pick_run(ref, found)


def show(engine: Any, ref: str) -> dict[str, Any]:
    """One run: its lanes with their figures and per-prompt results."""
    import sqlalchemy as sa

    from hbench.plugins.history.db import attempts, lane_runs, prompts, runs

    with engine.connect() as conn:
        rid = find_run(conn, ref)
        run = conn.execute(sa.select(runs).where(runs.c.run_id == rid)).first()._mapping
        out = {"run_id": rid, "started_at": run["started_at"], "finished_at": run["finished_at"],
               "host": run["host"], "hbench_version": run["hbench_version"], "lanes": []}
        for r in conn.execute(_lane_run_select().where(lane_runs.c.run_id == rid).order_by(lane_runs.c.id)):
            lane = _lane_dict(r)
            ps = conn.execute(sa.select(prompts).where(prompts.c.lane_run_id == r._mapping["id"])
                              .order_by(prompts.c.id))
            lane["prompts"] = [{"id": p.prompt_id, "category": p.category, "core": bool(p.core), "runs": p.runs,
                                "passes": p.passes, "pass_rate": p.pass_rate, "majority_pass": bool(p.majority_pass),
                                "skipped": p.skipped} for p in ps]
            tok = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(attempts.c.prompt_tokens), 0),
                                         sa.func.coalesce(sa.func.sum(attempts.c.completion_tokens), 0),
                                         sa.func.coalesce(sa.func.sum(sa.cast(attempts.c.errored, sa.Integer)), 0))
                               .where(attempts.c.lane_run_id == r._mapping["id"])).first()
            lane["attempts"] = {"n": tok[0], "prompt_tokens": int(tok[1]), "completion_tokens": int(tok[2]),
                                "errored": int(tok[3])}
            out["lanes"].append(lane)
    return out


def prune(engine: Any, keep: int) -> int:
    """Keep the ``keep`` newest runs; delete the rest (and lane identities no run uses).
    Returns how many runs were deleted."""
    if keep < 0:
        raise BadInput(f"--keep {keep}: must be 0 or more")
    import sqlalchemy as sa

    from hbench.plugins.history.db import attempts, lane_runs, lanes, prompts, runs, write_conn

    with write_conn(engine) as conn:
        ids = [r[0] for r in conn.execute(sa.select(runs.c.run_id)
                                          .order_by(runs.c.started_ts.desc().nulls_last(), runs.c.run_id.desc()))]
        old = ids[keep:]
        for i in range(0, len(old), 500):
            chunk = old[i:i + 500]
            lr = sa.select(lane_runs.c.id).where(lane_runs.c.run_id.in_(chunk)).scalar_subquery()
            conn.execute(attempts.delete().where(attempts.c.lane_run_id.in_(lr)))
            conn.execute(prompts.delete().where(prompts.c.lane_run_id.in_(lr)))
            conn.execute(lane_runs.delete().where(lane_runs.c.run_id.in_(chunk)))
            conn.execute(runs.delete().where(runs.c.run_id.in_(chunk)))
        conn.execute(lanes.delete().where(~lanes.c.id.in_(sa.select(lane_runs.c.lane_id).distinct())))
    return len(old)


# --------------------------------------------------------------------------- compare arguments


@attrs.define
class Side:
    """One side of a comparison: scorecards by lane name, and where they came from."""

    label: str
    scorecards: dict[str, dict[str, Any]]
    run_ids: list[str] = attrs.field(factory=list)


_LANE_REF = re.compile(r"^(?P<lane>.+)@(?P<which>latest|-?\d+)$")


def resolve(ref: str, url: str | None = None) -> Side:
    """What a compare argument names: a results folder (scorecards read from it), a run
    (every lane in it) or ``LANE@latest`` / ``LANE@-N`` (that lane's Nth run before its latest)."""
    p = Path(ref)
    if p.is_dir():
        from hbench.report import collect_scorecard_paths

        cards = {}
        for f in collect_scorecard_paths([p]):
            data = json.loads(f.read_text(encoding="utf-8"))
            cards[str((data.get("lane") or {}).get("name"))] = data
        rid = {str((c.get("provenance") or {}).get("run_id") or "") for c in cards.values()} - {""}
        return Side(ref, cards, sorted(rid))
    from hbench.plugins.history import fastread, where

    if not where.exists(url):
        raise BadInput(f"{ref!r}: not a results folder, and there is no run database yet "
                       f"({where.describe(where.resolve_url(url))}); run hbench, or `hbench history import DIR`")
    m = _LANE_REF.match(ref)
    lane, back = None, 0
    if m:
        lane, which = m.group("lane"), m.group("which")
        back = 0 if which in ("latest", "0") else -int(which)
        if back < 0:
            raise BadInput(f"{ref!r}: use LANE@latest or LANE@-N (N runs before the latest)")
    fast = fastread.connect(url)
    if fast is not None:
        try:
            if lane is not None:
                got, count = fastread.lane_run(fast, lane, back), lambda: fastread.lane_run_count(fast, lane)
                return _lane_side(ref, lane, got, count)
            rid = _pick_run(ref, fastread.run_ids(fast, ref))
            return Side(rid, {name: json.loads(text) for name, text in fastread.run_scorecards(fast, rid)}, [rid])
        finally:
            fast.close()
    import sqlalchemy as sa

    from hbench.plugins.history.db import engine_for, lane_runs, lanes

    with engine_for(url).connect() as conn:
        if lane is not None:
            row = conn.execute(
                sa.select(lane_runs.c.scorecard, lane_runs.c.run_id).join(lanes, lanes.c.id == lane_runs.c.lane_id)
                .where(lanes.c.name == lane)
                .order_by(lane_runs.c.finished_ts.desc().nulls_last(), lane_runs.c.id.desc())
                .offset(back).limit(1)).first()
            count = lambda: conn.execute(sa.select(sa.func.count()).select_from(  # noqa: E731
                lane_runs.join(lanes, lanes.c.id == lane_runs.c.lane_id)).where(lanes.c.name == lane)).scalar()
            return _lane_side(ref, lane, (row[0], row[1]) if row else None, count)
        rid = find_run(conn, ref)
        cards = {}
        for r in conn.execute(sa.select(lane_runs.c.scorecard, lanes.c.name)
                              .join(lanes, lanes.c.id == lane_runs.c.lane_id)
                              .where(lane_runs.c.run_id == rid).order_by(lane_runs.c.id)):
            cards[r.name] = json.loads(r.scorecard)
        return Side(rid, cards, [rid])


def _lane_side(ref: str, lane: str, got: tuple[str, str] | None, count: Any) -> Side:
    if got is None:
        n = count()
        if not n:
            raise BadInput(f"{ref!r}: lane {lane!r} has no runs in the run database (see `hbench history`)")
        raise BadInput(f"{ref!r}: lane {lane!r} has only {n} run{'s' if n != 1 else ''} in the run database")
    return Side(ref, {lane: json.loads(got[0])}, [got[1]])


def trend(engine: Any, lane: str, suite_sha256: str | None, last: int = 20) -> list[dict[str, Any]]:
    """A lane's last runs, oldest first: ``{run_id, finished_at, core_pass, core_n, pass_rate, ci}``."""
    import sqlalchemy as sa

    from hbench.plugins.history.db import lane_runs, lanes

    q = (sa.select(lane_runs.c.run_id, lane_runs.c.finished_at, lane_runs.c.core_pass, lane_runs.c.core_n,
                   lane_runs.c.pass_rate, lane_runs.c.ci_low, lane_runs.c.ci_high)
         .join(lanes, lanes.c.id == lane_runs.c.lane_id).where(lanes.c.name == lane))
    if suite_sha256:
        q = q.where(lanes.c.suite_sha256 == suite_sha256)
    q = q.order_by(lane_runs.c.finished_ts.desc().nulls_last(), lane_runs.c.id.desc()).limit(last)
    with engine.connect() as conn:
        rows = list(conn.execute(q))
    return [{"run_id": r.run_id, "finished_at": r.finished_at, "core_pass": r.core_pass, "core_n": r.core_n,
             "pass_rate": r.pass_rate, "ci": [r.ci_low, r.ci_high]} for r in reversed(rows)]
