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
    """Import every scorecard in each folder (not recursive). Bad input names the file."""
    from hbench.plugins.history.store import write_lane
    from hbench.report import ScorecardError, is_scorecard_file
    from hbench.models import SCORECARD_SCHEMA

    done: list[Imported] = []
    for folder in folders:
        d = Path(folder)
        if not d.is_dir():
            raise BadInput(f"{folder}: not a folder (give results folders: the --out of hbench run)")
        cards = sorted(f for f in d.glob("*.json") if is_scorecard_file(f))
        journal = d / "journal.jsonl"
        if not cards:
            raise BadInput(f"{folder}: no scorecards (*.json with schema {SCORECARD_SCHEMA}) to import"
                           + (" (the journal alone is not imported: its lanes never finished; "
                              "hbench run --resume finishes them)" if journal.is_file() else ""))
        facts = journal_facts(journal)
        by_run: dict[str, Imported] = {}
        for f in cards:
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ScorecardError(f"{f}: cannot read it as JSON ({exc})") from None
            if not isinstance(data, dict) or data.get("schema") != SCORECARD_SCHEMA:
                raise ScorecardError(f"{f}: not an {SCORECARD_SCHEMA} scorecard")
            same_run = facts.suite_sha256 is None or facts.suite_sha256 == (data.get("suite") or {}).get("sha256")
            lane = str((data.get("lane") or {}).get("name"))
            if same_run:
                _fill_tokens(data, journal)
            rid = write_lane(engine, data, run_id=facts.run_id if same_run else None,
                             fingerprint=facts.fingerprints.get(lane) if same_run else None)
            by_run.setdefault(rid, Imported(str(d), rid)).lanes.append(lane)
        done.extend(by_run.values())
    return done
