"""``hbench history import DIR...``: rebuild the run database from results folders.

A results folder holds the source of truth: ``<lane>.json`` scorecards and
``journal.jsonl``. Each scorecard is written with :func:`store.write_lane`, exactly as the
live writer does, so a database rebuilt from files equals the one written live; writing
replaces a lane already there, so importing twice adds nothing.

The journal supplies what older scorecards lack: the run id (its header), the lane
fingerprint (its ``lane`` records) and each attempt's tokens. Only the lines that carry
them are parsed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from hbench.errors import BadInput


@attrs.define
class Imported:
    folder: str
    run_id: str
    lanes: list[str] = attrs.field(factory=list)
    rebuilt: list[str] = attrs.field(factory=list)  # lanes scored again from a journal (no scorecard)
    notes: list[str] = attrs.field(factory=list)


@attrs.define
class JournalFacts:
    run_id: str | None = None
    suite_sha256: str | None = None
    fingerprints: dict[str, str] = attrs.field(factory=dict)


def journal_facts(path: Path) -> JournalFacts:
    """The header's run id and each lane's first fingerprint, from the lines that hold them."""
    facts = JournalFacts()
    if not path.is_file():
        return facts
    with open(path, "rb") as f:
        for raw in f:
            if raw.startswith(b'{"type":"header"'):
                rec = _load(raw)
                facts.run_id = rec.get("run_id") or facts.run_id
                facts.suite_sha256 = (rec.get("suite") or {}).get("sha256")
            elif raw.startswith(b'{"type":"lane",'):
                rec = _load(raw)
                lane = rec.get("lane")
                if isinstance(lane, str) and lane not in facts.fingerprints and rec.get("fingerprint"):
                    facts.fingerprints[lane] = str(rec["fingerprint"])
    return facts


def journal_tokens(path: Path, lane: str) -> dict[tuple[str, int], tuple[int, int]]:
    """``(prompt_id, n) -> (prompt_tokens, completion_tokens)`` of one lane (a later record wins)."""
    out: dict[tuple[str, int], tuple[int, int]] = {}
    with open(path, "rb") as f:
        for raw in f:
            if not raw.startswith(b'{"type":"attempt"'):
                continue
            rec = _load(raw)
            if rec.get("lane") != lane:
                continue
            a = rec.get("attempt") or {}
            out[(str(rec.get("prompt_id")), int(rec.get("n") or 0))] = (
                int(a.get("prompt_tokens") or 0), int(a.get("completion_tokens") or 0))
    return out


def _load(raw: bytes) -> dict[str, Any]:
    try:
        rec = json.loads(raw)
    except ValueError:
        return {}  # a torn line: the journal reader skips it too
    return rec if isinstance(rec, dict) else {}


def _fill_tokens(data: dict[str, Any], journal: Path) -> None:
    missing = any("prompt_tokens" not in a for p in data.get("prompts") or () for a in p.get("attempts") or ())
    if not missing or not journal.is_file():
        return
    tokens = journal_tokens(journal, str((data.get("lane") or {}).get("name")))
    for p in data.get("prompts") or ():
        for a in p.get("attempts") or ():
            if "prompt_tokens" not in a:
                a["prompt_tokens"], a["completion_tokens"] = tokens.get((str(p.get("id")), int(a.get("n") or 0)), (0, 0))


def import_folders(engine: Any, folders: list[str]) -> list[Imported]:
    """Import each folder (not recursive): every scorecard, then every lane a journal
    (``journal.jsonl`` and rotated ``journal.*.jsonl``) holds without one. Bad input names
    the file."""
    from hbench.models import SCORECARD_SCHEMA
    from hbench.plugins.history.store import run_id_of, write_lane
    from hbench.report import ScorecardError, is_scorecard_file

    done: list[Imported] = []
    for folder in folders:
        d = Path(folder)
        if not d.is_dir():
            raise BadInput(f"{folder}: not a folder (give results folders: the --out of hbench run)")
        cards = sorted(f for f in d.glob("*.json") if is_scorecard_file(f))
        journal = d / "journal.jsonl"
        journals = ([journal] if journal.is_file() else []) + sorted(d.glob("journal.*.jsonl"))
        if not cards and not journals:
            raise BadInput(f"{folder}: no scorecards (*.json with schema {SCORECARD_SCHEMA}) and no journal to import")
        facts = journal_facts(journal)
        by_run: dict[str, Imported] = {}
        stored: set[tuple[str, str]] = set()
        for f in cards:
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ScorecardError(f"{f}: cannot read it as JSON ({exc})") from None
            if not isinstance(data, dict) or data.get("schema") != SCORECARD_SCHEMA:
                raise ScorecardError(f"{f}: not an {SCORECARD_SCHEMA} scorecard")
            same_run = facts.suite_sha256 is None or facts.suite_sha256 == (data.get("suite") or {}).get("sha256")
            lane = str((data.get("lane") or {}).get("name"))
            if same_run and (data.get("provenance") or {}).get("run_id") in (None, facts.run_id):
                _fill_tokens(data, journal)
            rid = write_lane(engine, data, run_id=facts.run_id if same_run else None,
                             fingerprint=facts.fingerprints.get(lane) if same_run else None)
            stored.add((rid, lane))
            by_run.setdefault(rid, Imported(str(d), rid)).lanes.append(lane)
        for j in journals:
            rebuilt, notes = rebuild_from_journal(j, stored)
            for data in rebuilt:
                rid = write_lane(engine, data)
                lane = str(data["lane"]["name"])
                stored.add((rid, lane))
                imp = by_run.setdefault(rid, Imported(str(d), rid))
                imp.lanes.append(lane)
                imp.rebuilt.append(lane)
            if notes:
                rid = run_id_of({}, journal_facts(j).run_id or f"journal {j.name}")
                by_run.setdefault(rid, Imported(str(d), rid)).notes.extend(notes)
        done.extend(by_run.values())
    return done


def rebuild_from_journal(path: Path, stored: set[tuple[str, str]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Scorecards for the lanes of a journal that have attempts but no stored scorecard
    (``stored``: (run id, lane) pairs): the run stopped before the lane finished, or a later
    run into the same folder replaced its scorecard. The attempts are scored again with
    the suite the journal names, when that suite is installed at the same sha256;
    throughput and telemetry come from the lane's ``lane_finished`` record when there is
    one. Returns (scorecards as dicts, notes on what could not be rebuilt)."""
    from hbench.journal import JournalError, completed, iter_records
    from hbench.plugins.history.store import run_id_of

    try:
        header = next(iter_records(path), (0, {}))[1]
    except JournalError as exc:
        return [], [str(exc)]
    if header.get("type") != "header":
        return [], [f"{path}: no journal header; not an hbench journal"]
    suite_info = header.get("suite") or {}
    rid = run_id_of({"suite": suite_info, "provenance": {"run_started_at": header.get("created_at")}},
                    header.get("run_id"))
    if all((rid, lane) in stored for lane in journal_facts(path).fingerprints):
        return [], []  # every lane it began has its scorecard (the common case): no attempt line parsed
    order: list[str] = []
    fingerprints: dict[str, str] = {}
    finished: dict[str, dict[str, Any]] = {}
    first_at: dict[str, str] = {}
    for _no, rec in iter_records(path):
        lane = rec.get("lane")
        if not isinstance(lane, str):
            continue
        if rec.get("type") == "lane":
            fingerprints.setdefault(lane, str(rec.get("fingerprint") or ""))
            first_at.setdefault(lane, str(rec.get("at") or ""))
        elif rec.get("type") == "attempt" and lane not in order:
            order.append(lane)
        elif rec.get("type") == "lane_finished":
            finished[lane] = rec
    todo = [lane for lane in order if (rid, lane) not in stored]
    if not todo:
        return [], []
    from hbench.errors import SuiteError
    from hbench.plugin_manager import get_plugins
    from hbench.suite import load_suite

    try:
        suite = load_suite(str(suite_info.get("name")), get_plugins().registries)
    except (SuiteError, LookupError, BadInput) as exc:
        return [], [f"{path.name}: lanes {', '.join(todo)} have no scorecard and their suite "
                    f"{suite_info.get('name')!r} cannot be loaded to score them again ({str(exc).splitlines()[0]})"]
    if suite.sha256 != suite_info.get("sha256"):
        return [], [f"{path.name}: lanes {', '.join(todo)} have no scorecard and suite {suite.name!r} is installed "
                    f"at another version (sha256 {suite.sha256[:12]}, the journal's {str(suite_info.get('sha256'))[:12]}): "
                    "not scored again"]
    from hbench.report import scorecard_to_dict
    from hbench.scoring import score_lane, score_prompt

    attempts = completed(path)
    out = []
    for lane in todo:
        mine = [a for (ln, _pid, _n), a in attempts.items() if ln == lane]
        by_prompt: dict[str, list[Any]] = {}
        for a in mine:
            by_prompt.setdefault(a.prompt_id, []).append(a)
        scores = [score_prompt(p, by_prompt[p.id]) if by_prompt.get(p.id) else
                  score_prompt(p, [], skipped="not in the journal") for p in suite.prompts]
        fin = finished.get(lane) or {}
        lane_d = {"name": lane, "kind": "", "model": fin.get("model"), "base_url": fin.get("base_url") or "",
                  "served_model": fin.get("served_model"), "fingerprint": fingerprints.get(lane) or None}
        sc = score_lane(lane_d, suite_info, scores, max((a.n for a in mine), default=0),
                        stopped=f"rebuilt from {path.name}: the lane has no scorecard")
        last = max((a.finished_at for a in mine if a.finished_at), default="")
        sc.provenance = {"run_id": rid, "run_started_at": header.get("created_at") or "",
                         "started_at": first_at.get(lane, ""), "finished_at": str(fin.get("at") or last),
                         "host": {}, "rebuilt_from": path.name}
        sc.warnings = [f"rebuilt by `hbench history import` from {path.name}: the run left no scorecard for this "
                       "lane (it did not finish, or a later run into the same folder replaced it)"]
        out.append(scorecard_to_dict(sc))
    return out, []
