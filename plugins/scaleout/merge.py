"""``hbench merge DIR...``: join the results folders of ``hbench run --shard I/N`` into one run.

Each shard folder holds ``shard.json`` (:mod:`hbench.shard`: its index and count, the suite,
and per lane the fingerprint and the whole plan), its ``journal.jsonl`` and its
``<lane>.json`` parts. Merge:

1. refuses shards that are not of one run: another count, suite or lane fingerprint
   (bad input, exit 2, naming the folders and the key that differs), or one shard twice;
2. per lane, takes every journaled attempt of every shard (a later record of the same
   attempt wins, as ``--resume`` reads them) and scores them as one run would
   (:func:`hbench.scoring.score_prompt`, :func:`~hbench.scoring.score_lane`): the same
   scores and per-attempt verdicts as the unsharded run;
3. counts what a missing shard (or one stopped early) held as **missing** attempts: the
   lane is ``complete: false`` saying which shards are missing, and merge exits 3 (the
   mechanism ``hbench run`` uses for an incomplete lane); a lane a shard failed to run is
   failed (exit 1);
4. writes one journal, every reporter's files (``<lane>.json``, summary.md, report.html,
   ...) and broadcasts ``hbench_lane_finished`` / ``hbench_run_finished`` (so the run
   database gets the merged lanes, as it gets a run's).

Throughput and telemetry come from the lowest-numbered shard that measured them (each shard
measured the lane on its own box); the scorecard's provenance lists every shard merged.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import attrs

from hbench.errors import BadInput, HBenchError


class ShardMismatch(BadInput):
    """Shards of different runs (another count, suite or lane configuration)."""


@attrs.define
class MergeResult:
    scorecards: list[Any]
    out_dir: Path
    journal: Path
    exit_code: int
    verdict: str | None = None
    missing_shards: list[int] = attrs.field(factory=list)


def _read_shards(dirs: list[str | Path]) -> list[tuple[Path, dict[str, Any]]]:
    from hbench.shard import read_manifest

    if not dirs:
        raise BadInput("hbench merge: name the shards' results folders, like hbench merge shard-0 shard-1 --out merged")
    shards: list[tuple[Path, dict[str, Any]]] = []
    for d in dirs:
        path = Path(d)
        if not path.is_dir():
            raise BadInput(f"{d}: no such folder; give merge the --out folders of `hbench run --shard I/N`")
        shards.append((path, read_manifest(path)))
    first_dir, first = shards[0]
    seen: dict[int, Path] = {}
    for path, m in shards:
        if m["count"] != first["count"]:
            raise ShardMismatch(f"{path}/shard.json: count {m['count']}, but {first_dir}/shard.json has count "
                                f"{first['count']}: shards of different splits; merge the folders of one "
                                "`--shard I/N` split only")
        for key in ("name", "sha256", "fixtures_sha256"):
            if (m["suite"] or {}).get(key) != (first["suite"] or {}).get(key):
                raise ShardMismatch(f"{path}/shard.json: suite {key} {str(m['suite'].get(key))[:12]} differs from "
                                    f"{first_dir}'s {str(first['suite'].get(key))[:12]}: shards of different suites; "
                                    "run every shard on the same suite")
        if m["index"] in seen:
            raise BadInput(f"{path}: shard {m['index']}/{m['count']} is also {seen[m['index']]}; give each shard once")
        seen[m["index"]] = path
    lanes: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path, m in shards:
        for name, info in m["lanes"].items():
            if name not in lanes:
                lanes[name] = (path, info)
                continue
            other_path, other = lanes[name]
            for key in ("fingerprint", "runs", "plan"):
                if info.get(key) != other.get(key):
                    what = {"fingerprint": "lane fingerprint (its configuration or the run settings: agent, "
                                           "timeout, max_turns, max_tokens, temperature)",
                            "runs": "runs", "plan": "plan (prompts selected: --core-only, --tags, --categories)"}[key]
                    raise ShardMismatch(f"{path}/shard.json: lane {name!r} has another {what} than in "
                                        f"{other_path}/shard.json; these shards are not of one run. Run every "
                                        "shard with the same hbench.toml and flags, then merge")
    return sorted(shards, key=lambda s: s[1]["index"])


def _attempts(journal: Path) -> dict[str, dict[tuple[str, int], dict[str, Any]]]:
    """Full attempt dicts per lane by (prompt, n); a later record wins."""
    from hbench.journal import iter_records

    out: dict[str, dict[tuple[str, int], dict[str, Any]]] = {}
    if not journal.is_file():
        return out
    for _no, rec in iter_records(journal):
        if rec.get("type") == "attempt" and isinstance(rec.get("attempt"), dict):
            out.setdefault(str(rec.get("lane")), {})[(str(rec.get("prompt_id")), int(rec.get("n") or 0))] = rec["attempt"]
    return out


def merge(dirs: list[str | Path], out: str | Path, *, plugins: Any = None, prefer: str = "memory",
          report: str | None = None, suite: str | None = None) -> MergeResult:
    """Merge shard folders ``dirs`` into ``out``; see the module docstring."""
    from hbench.journal import Journal, attempt_from_dict, light
    from hbench.outdir import claim
    from hbench.plugin_manager import get_plugins
    from hbench.report import scorecard_from_dict
    from hbench.runner import EXIT_INCOMPLETE, EXIT_LANE_FAILED, EXIT_OK
    from hbench.scoring import score_lane, score_prompt
    from hbench.suite import load_suite

    plugins = plugins or get_plugins()
    reg = plugins.registries
    shards = _read_shards(dirs)
    first = shards[0][1]
    count = int(first["count"])
    present = {m["index"] for _, m in shards}
    missing_shards = [i for i in range(count) if i not in present]
    suite_obj = load_suite(suite or first.get("suite_path") or first["suite"]["name"], reg)
    if suite_obj.sha256 != first["suite"].get("sha256"):
        raise ShardMismatch(f"suite {suite_obj.name!r} at {suite_obj.path} (sha256 {suite_obj.sha256[:12]}) is not the "
                            f"one the shards ran (sha256 {str(first['suite'].get('sha256'))[:12]}); pass --suite "
                            "with the suite folder they ran")
    suite_info = {"name": suite_obj.name, "version": suite_obj.version, "sha256": suite_obj.sha256,
                  "fixtures_sha256": suite_obj.fixtures_sha256}
    names = [r.strip() for r in report.split(",") if r.strip()] if report else reg.reporters.names()
    unknown = [n for n in names if n not in reg.reporters]
    if unknown:
        raise BadInput(f"--report: unknown reporter {', '.join(map(repr, unknown))} "
                       f"(installed: {', '.join(reg.reporters.names()) or 'none'})")
    for path, _m in shards:
        if Path(out).resolve() == path.resolve():
            raise BadInput(f"--out {out}: is shard folder {path}; write the merged run to a new folder (--out merged)")
    lane_order: list[str] = list(dict.fromkeys(n for _, m in shards for n in m["lanes"]))
    per_shard = [(path, m, _attempts(path / "journal.jsonl")) for path, m in shards]

    outdir = claim(out, key="--out", suite_path=suite_obj.path)
    try:
        journal_path = outdir.path / "journal.jsonl"
        journal = Journal.open(journal_path, suite=suite_info, resume=False)
        run_id = str(journal.header.get("run_id") or uuid.uuid4().hex)
        cards = []
        lane_specs: dict[str, Any] = {}
        try:
            for lane in lane_order:
                sc, spec = _merge_lane(lane, per_shard, count, missing_shards, suite_obj, suite_info, run_id,
                                       journal, score_prompt, score_lane, attempt_from_dict, light,
                                       scorecard_from_dict)
                cards.append(sc)
                lane_specs[lane] = spec
        finally:
            journal.close()
        context = {"journal": journal_path, "suite": suite_obj, "allow_mixed": True, "prefer": prefer,
                   "fail_under": []}
        json_rep = reg.reporters.get("json") if "json" in names else None
        for sc in cards:
            plugins.broadcast("hbench_lane_finished", scorecard=sc, lane=lane_specs[sc.lane["name"]])
            if json_rep is not None:
                json_rep.write([sc], outdir.path, context)
        for n in names:
            if n != "json":
                reg.reporters.get(n).write(cards, outdir.path, context)
        plugins.broadcast("hbench_run_finished", scorecards=cards, out_dir=outdir.path, context=context)
    finally:
        outdir.release()
    failed = [sc for sc in cards if sc.failed]
    incomplete = [sc for sc in cards if not sc.complete and not sc.failed]
    code, verdict = EXIT_OK, None
    if failed:
        code = EXIT_LANE_FAILED
        verdict = "exit 1: " + "; ".join(f"lane {sc.lane['name']!r} failed to run: {sc.failed}" for sc in failed)
    elif incomplete:
        code = EXIT_INCOMPLETE
        verdict = "exit 3: " + "; ".join(f"lane {sc.lane['name']!r} incomplete: {sc.incomplete_reason}"
                                         for sc in incomplete) + " (not ranked)"
    return MergeResult(scorecards=cards, out_dir=outdir.path, journal=journal_path, exit_code=code, verdict=verdict,
                       missing_shards=missing_shards)


def _merge_lane(lane: str, per_shard: list[tuple[Path, dict[str, Any], dict[str, Any]]], count: int,
                missing_shards: list[int], suite: Any, suite_info: dict[str, Any], run_id: str, journal: Any,
                score_prompt: Any, score_lane: Any, attempt_from_dict: Any, light: Any,
                scorecard_from_dict: Any) -> tuple[Any, Any]:
    from hbench.models import LaneSpec, Telemetry, Throughput
    from hbench.report import scorecard_filename
    from hbench.shard import select

    info = next(m["lanes"][lane] for _, m, _a in per_shard if lane in m["lanes"])
    plan = [(str(p), int(n)) for p, n in info["plan"]]
    runs = int(info["runs"])
    parts: list[tuple[int, Any]] = []  # (shard index, its scorecard of this lane)
    stops: list[str] = []
    attempts: dict[tuple[str, int], dict[str, Any]] = {}
    for path, m, by_lane in per_shard:
        i = int(m["index"])
        if lane not in m["lanes"]:
            stops.append(f"shard {i}/{count} never began this lane")
            continue
        mine = set(select(lane, plan, i, count))
        for key, rec in (by_lane.get(lane) or {}).items():
            if key in mine:
                attempts[key] = rec
        card_path = path / scorecard_filename(lane)
        if card_path.is_file():
            try:
                parts.append((i, scorecard_from_dict(json.loads(card_path.read_text(encoding="utf-8")), card_path)))
            except (OSError, ValueError, HBenchError) as exc:
                stops.append(f"shard {i}/{count}'s {card_path.name} is unreadable ({exc})")
        else:
            stops.append(f"shard {i}/{count} did not finish this lane (no {card_path.name})")
    if missing_shards:
        stops.insert(0, f"shard{'s' if len(missing_shards) > 1 else ''} "
                        f"{', '.join(f'{i}/{count}' for i in missing_shards)} not merged (no results folder given); "
                        "run them (hbench run --shard I/N) and merge every shard's folder")
    planned = set(plan)
    missing = len(planned - set(attempts))
    for i, part in parts:
        if part.incomplete_reason and not part.complete and not part.failed:
            stops.append(f"shard {i}/{count}: {part.incomplete_reason}")
    failed = next((f"shard {i}/{count}: {part.failed}" for i, part in parts if part.failed), None)
    skipped: dict[str, str] = {}
    for _i, part in parts:
        for p in part.prompts:
            if p.skipped and p.id not in skipped:
                skipped[p.id] = p.skipped
    planned_prompts = {p for p, _n in plan}
    by_prompt: dict[str, list[Any]] = {}
    ordered = sorted(attempts.items(), key=lambda kv: (plan.index(kv[0]) if kv[0] in planned else len(plan)))
    base = parts[0][1] if parts else None
    fingerprint = info.get("fingerprint")
    journal.begin_lane(lane, str(fingerprint))
    for key, rec in ordered:
        a = attempt_from_dict(rec)
        journal.append_attempt(a)
        by_prompt.setdefault(key[0], []).append(light(a))
    prompt_scores = []
    for p in suite.prompts:
        if p.id not in planned_prompts:
            prompt_scores.append(score_prompt(p, [], skipped=skipped.get(p.id, "not in the shards' plan")))
        else:
            prompt_scores.append(score_prompt(p, by_prompt.get(p.id, [])))
    lane_info = dict(base.lane) if base is not None else {"name": lane, "fingerprint": fingerprint}
    stopped = "; ".join(stops) if (stops and (missing or not parts)) else None
    sc = score_lane(lane_info, suite_info, prompt_scores, runs, adaptive=False, missing=missing, stopped=stopped,
                    failed=failed)
    measured = next((part for _i, part in parts if part.throughput.error is None), base)
    sc.throughput = measured.throughput if measured is not None else Throughput(error="not measured")
    sc.telemetry = measured.telemetry if measured is not None else Telemetry()
    try:  # what a solve costs (hbench.efficiency), over every shard's attempts, as a run computes it
        from hbench.efficiency import efficiency

        slo = (base.efficiency or {}).get("slo_s") if base is not None else None
        if slo is None and base is not None:
            slo = (base.provenance.get("settings") or {}).get("timeout_s")
        sc.efficiency = efficiency([a for atts in by_prompt.values() for a in atts], slo)
    except ImportError:
        pass
    sc.failed = failed
    sc.agent = base.agent if base is not None else {}
    sc.warnings = [f"shard {i}/{count}: {w}" for i, part in parts for w in part.warnings]
    if stops and not stopped:
        sc.warnings.extend(stops)
    prov = dict(base.provenance) if base is not None else {}
    stamps = [part.provenance for _i, part in parts]
    prov.update({
        "run_id": run_id,
        "started_at": min((p.get("started_at") or "" for p in stamps), default=None),
        "finished_at": max((p.get("finished_at") or "" for p in stamps), default=None),
        "merged_from": [{"shard": i, "count": count, "run_id": part.provenance.get("run_id"),
                         "host": (part.provenance.get("host") or {}).get("hostname")} for i, part in parts],
    })
    prov.pop("shard", None)
    sc.provenance = prov
    journal_finished = {"throughput": attrs.asdict(sc.throughput), "telemetry": attrs.asdict(sc.telemetry),
                        "served_model": lane_info.get("served_model"), "base_url": lane_info.get("base_url"),
                        "model": lane_info.get("model")}
    if sc.complete:
        journal.lane_finished(lane, journal_finished)
    spec = LaneSpec(name=lane, kind=str(lane_info.get("kind") or "openai"), base_url=lane_info.get("base_url") or None,
                    model=lane_info.get("model"), source=str(lane_info.get("source") or "merge"))
    return sc, spec


__all__ = ["merge", "MergeResult", "ShardMismatch"]
