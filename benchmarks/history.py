"""History: the run database's speed (plugins/history).

* ``history_import`` - ``hbench history import DIR`` of a results folder holding a
  10,000-attempt run (10 lanes x 100 prompts x 10 attempts: ten scorecards and their
  journal, records copied from a real run) into a new SQLite file, schema migrations
  included. Goal: < 2 s.
* ``history_list`` - ``hbench history`` (a real process: start-up included) on a
  database holding 1,000 runs. Median of 5. Goal: < 300 ms.
* ``history_compare`` - ``hbench compare RUN_A RUN_B`` (a real process) of two 5-lane
  runs in the database. Median of 5. Goal: < 300 ms.
* ``history_overhead`` - what the live writer adds to ``hbench run`` against the instant
  scripted server (its own process): the default suite (hermes-brain) at its default 5
  attempts a prompt. Runs with the writer on and off are alternated (real processes) and
  their medians printed, but on a shared machine their difference is noise; the figure
  is the writer's own CPU (a fresh process writing that run's scorecards as the writer
  does, its imports included, minus one only reading them) over the run's wall time.
  Goal: < 1%.

The figures are CPU times (user + system) of the commands: on a loaded machine wall time
mostly measures the load, and a single-threaded command's CPU time is its wall time on an
idle one. Wall times are printed beside them.

    .venv/bin/python -m benchmarks.history [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import ServerProcess, bundled_scripts, figure, lanes_toml, verdict, write_json

GOAL_IMPORT_S = 2.0
GOAL_LIST_MS = 300.0
GOAL_COMPARE_MS = 300.0
GOAL_OVERHEAD = 0.01


def _env(db: Path, history: str = "1") -> dict[str, str]:
    return {**os.environ, "HBENCH_DB": str(db), "HBENCH_HISTORY": history, "HBENCH_LOG_LEVEL": "warning"}


def _hbench(args: list[str], env: dict[str, str], cpu: list[float] | None = None
            ) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``hbench ARGS``: (wall seconds, result); its CPU seconds (user + sys) appended to ``cpu``."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "hbench", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, r


def template_run(tmp: Path, srv_url: str, runs: int = 5) -> Path:
    """One real run of two lanes (the bundled v1 suite) to copy records from."""
    out = tmp / "template"
    cfg = lanes_toml(tmp / "template.toml", {"a": srv_url, "b": srv_url})
    _, r = _hbench(["--config", str(cfg), "run", "--lanes", "a,b", "--suite", "hermes-brain-v1", "--runs", str(runs),
                    "--core-only", "--report", "json", "--no-progress", "--no-history", "--out", str(out)],
                   _env(tmp / "unused.sqlite", "0"))
    if r.returncode != 0:
        raise RuntimeError(f"template run failed: {r.stderr[-800:]}")
    return out


def big_results(src: Path, dest: Path, lanes: int, prompts: int, per: int) -> int:
    """A results folder: ``lanes`` scorecards of ``prompts`` x ``per`` attempts and the journal."""
    card = json.loads((src / "a.json").read_text())
    journal = [json.loads(x) for x in (src / "journal.jsonl").read_text().splitlines() if x.strip()]
    header = next(r for r in journal if r["type"] == "header")
    att_rec = next(r for r in journal if r["type"] == "attempt")
    tmpl_prompt = next(p for p in card["prompts"] if p.get("attempts"))
    tmpl_att = tmpl_prompt["attempts"][0]
    dest.mkdir(parents=True)
    n = 0
    with open(dest / "journal.jsonl", "w", encoding="utf-8") as jf:
        jf.write(json.dumps(header, separators=(",", ":")) + "\n")
        for li in range(lanes):
            name = f"lane{li:02d}"
            jf.write(json.dumps({"type": "lane", "lane": name, "fingerprint": f"fp{li}"}, separators=(",", ":")) + "\n")
            c = json.loads(json.dumps(card))
            c["lane"].update(name=name, fingerprint=f"fp{li}")
            c["prompts"] = []
            for pi in range(prompts):
                p = {**tmpl_prompt, "id": f"p{pi:03d}", "runs": per, "attempts": []}
                for k in range(1, per + 1):
                    p["attempts"].append({**tmpl_att, "n": k, "passed": (pi + k) % 3 != 0})
                    rec = {**att_rec, "lane": name, "prompt_id": p["id"], "n": k,
                           "attempt": {**att_rec["attempt"], "lane": name, "prompt_id": p["id"], "n": k}}
                    jf.write(json.dumps(rec, separators=(",", ":")) + "\n")
                    n += 1
                c["prompts"].append(p)
            write_json(dest / f"{name}.json", c)
    return n


def bench_import(tmp: Path, src: Path, shape: tuple[int, int, int]) -> tuple[float, int]:
    folder = tmp / "big"
    n = big_results(src, folder, *shape)
    db = tmp / "import.sqlite"
    cpu: list[float] = []
    wall, r = _hbench(["history", "import", str(folder)], _env(db), cpu)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-800:])
    # the import itself, in this process (a fresh database: migrations included)
    from hbench.plugins.history import db as dbm
    from hbench.plugins.history.importer import import_folders

    db2 = tmp / "import2.sqlite"
    t = time.perf_counter()
    import_folders(dbm.engine_for(str(db2)), [str(folder)])
    inproc = time.perf_counter() - t
    print(f"  import of {n} attempts ({shape[0]} lanes x {shape[1]} prompts x {shape[2]}) into a new SQLite file: "
          f"`hbench history import` {wall:.2f} s wall, {cpu[0]:.2f} s CPU (start-up and migrations included); "
          f"{inproc:.2f} s wall in process")
    return cpu[0], n


def fill_runs(db: Path, src: Path, runs: int, lanes: int = 1) -> list[str]:
    from hbench.plugins.history import db as dbm
    from hbench.plugins.history.store import write_lane

    eng = dbm.engine_for(str(db))
    cards = [json.loads((src / f"{x}.json").read_text()) for x in ("a", "b")]
    ids = []
    t0 = 1_700_000_000
    for i in range(runs):
        rid = f"run{i:05d}"
        when = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(t0 + 3600 * i))
        for li in range(lanes):
            c = json.loads(json.dumps(cards[li % 2]))
            c["lane"].update(name=f"lane{li}")
            c["provenance"].update(run_id=rid, run_started_at=when, started_at=when, finished_at=when)
            write_lane(eng, c)
        ids.append(rid)
    return ids


def median_cmd(args: list[str], env: dict[str, str], n: int) -> tuple[float, float, str]:
    """(median wall ms, median CPU ms, stdout) of ``hbench ARGS`` run ``n`` times."""
    times, cpu, out = [], [], ""
    for _ in range(n):
        t, r = _hbench(args, env, cpu)
        if r.returncode not in (0, 4):
            raise RuntimeError(f"hbench {' '.join(args)}: exit {r.returncode}: {r.stderr[-800:]}")
        times.append(t * 1000)
        out = r.stdout
    return statistics.median(times), 1000 * statistics.median(cpu), out


def bench_overhead(tmp: Path, srv_url: str, suite: str, runs: int, pairs: int) -> tuple[float, float, float, float]:
    """(median wall on, median wall off, CPU added / wall off, wall added / wall off); the
    database already exists (created once, like a user's)."""
    db = tmp / "overhead.sqlite"
    from hbench.plugins.history import db as dbm

    dbm.engine_for(str(db))  # created and migrated before, as on any machine after its first run
    args = ["run", "--lane-url", srv_url, "--model", "scripted-model", "--suite", suite,
            "--runs", str(runs), "--report", "json", "--no-progress"]
    on, off, cpu_on, cpu_off = [], [], [], []
    for i in range(pairs):
        order = (("1", on, cpu_on), ("0", off, cpu_off))
        for hist, acc, cpu in (order if i % 2 == 0 else order[::-1]):
            t, r = _hbench([*args, "--out", str(tmp / f"ov{i}{hist}")], _env(db, hist), cpu)
            if r.returncode not in (0, 3):
                raise RuntimeError(r.stderr[-800:])
            acc.append(t)
    m_on, m_off = statistics.median(on), statistics.median(off)
    # the writer's own cost, measured apart (the run-to-run noise of a loaded machine is
    # larger than the writer): CPU of a fresh process that writes the run's scorecards as
    # the writer does (imports included) minus one that only reads them
    code = ("import json, pathlib, sys; from hbench.report import load_scorecard\n"
            "cards = [load_scorecard(p) for p in sorted(pathlib.Path(sys.argv[1]).glob('*.json'))]\n"
            "if sys.argv[2] == '1':\n    from hbench.plugins.history.live import writer\n"
            "    [writer.write(c) for c in cards]\n")
    cost = {}
    import resource

    for w in ("0", "1"):
        runs_cpu = []
        for _ in range(3):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-c", code, str(tmp / "ov01"), w], env=_env(db), check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            runs_cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        cost[w] = statistics.median(runs_cpu)
    writer_cpu = cost["1"] - cost["0"]
    print(f"  the writer alone (a fresh process writing the run's lanes as the writer does): {writer_cpu:.3f} s CPU")
    return m_on, m_off, writer_cpu / m_off, (m_on - m_off) / m_off


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.history", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smallest configuration (seconds; for the smoke test)")
    args = ap.parse_args(argv)
    q = args.quick
    shape = (2, 10, 5) if q else (10, 100, 10)
    n_runs, reps, ov_runs, pairs = (20, 1, 1, 1) if q else (1000, 5, 5, 3)
    with tempfile.TemporaryDirectory(prefix="hbench-bench-history-") as d:
        tmp = Path(d)
        script = write_json(tmp / "script.json", {"scripts": bundled_scripts()})
        with ServerProcess(script, tmp, record=False) as srv:
            src = template_run(tmp, srv.url, runs=1 if q else 2)
            imp_s, n = bench_import(tmp, src, shape)

            db = tmp / "list.sqlite"
            t = time.perf_counter()
            fill_runs(db, src, n_runs)
            print(f"  wrote {n_runs} runs in {time.perf_counter() - t:.1f} s")
            list_wall, list_ms, out = median_cmd(["history", "--limit", "50"], _env(db), reps)
            help_ms, help_cpu, _ = median_cmd(["--help"], _env(db), reps)
            print(f"  hbench history ({n_runs} runs in the database): median {list_wall:.0f} ms wall, {list_ms:.0f} ms "
                  f"CPU over {reps}; {len(out.splitlines())} lines (hbench --help: {help_ms:.0f} ms wall, "
                  f"{help_cpu:.0f} ms CPU)")

            db5 = tmp / "compare.sqlite"
            a, b = fill_runs(db5, src, 2, lanes=5)
            cmp_wall, cmp_ms, out = median_cmd(["compare", a, b], _env(db5), reps)
            print(f"  hbench compare of two 5-lane runs: median {cmp_wall:.0f} ms wall, {cmp_ms:.0f} ms CPU over {reps}")

            ov_suite = "hermes-brain-v1" if q else "hermes-brain"
            m_on, m_off, frac, frac_wall = bench_overhead(tmp, srv.url, ov_suite, ov_runs, pairs)
            print(f"  hbench run ({ov_suite}, {ov_runs} attempts a prompt): writer on {m_on:.2f} s, off {m_off:.2f} s "
                  f"wall (medians of {pairs}: {100 * frac_wall:+.1f}%, within the noise); the writer's CPU is "
                  f"{100 * frac:.2f}% of the run's wall time")
    print(verdict(imp_s < GOAL_IMPORT_S))
    print(figure("history_import", imp_s, f"s CPU `hbench history import` of {n} attempts", f"< {GOAL_IMPORT_S:g} s"))
    print(verdict(list_ms < GOAL_LIST_MS))
    print(figure("history_list", list_ms, f"ms CPU `hbench history` with {n_runs} runs", f"< {GOAL_LIST_MS:g} ms",
                 "{:.0f}"))
    print(verdict(cmp_ms < GOAL_COMPARE_MS))
    print(figure("history_compare", cmp_ms, "ms CPU `hbench compare` of two 5-lane runs", f"< {GOAL_COMPARE_MS:g} ms",
                 "{:.0f}"))
    print(verdict(frac < GOAL_OVERHEAD))
    print(figure("history_overhead", 100 * frac, "% of a run's wall time: CPU the live writer adds",
                 f"< {100 * GOAL_OVERHEAD:g} %", "{:.1f}"))


if __name__ == "__main__":
    main()
