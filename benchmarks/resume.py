"""4. Resume: kill -9 at 50%, then ``--resume``; and rebuilding state from a big journal.

* ``hbench run`` (a real process) on the bundled suite at N=4 against the scripted
  server (0.03 s a request) is killed with SIGKILL once half the planned attempts are in
  its journal, then run again with ``--resume``. Repeated attempts = attempts the
  resumed run started (counted by the server) beyond those the journal lacked.
  The journal must end with every planned attempt exactly once. Goal: 0.
* A 10,000-attempt journal (10 lanes x 100 prompts x 10 runs, each record a real
  attempt from the run above, transcript included) is read back as ``--resume`` does
  before running anything: open (checks every line), then per lane the fingerprint, the
  journaled attempts and the lane_finished record. Goal: < 1 s.

    .venv/bin/python -m benchmarks.resume [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks._common import bundled_scripts, figure, verdict

GOAL_REPEATS = 0
GOAL_REBUILD_S = 1.0


def _attempt_lines(journal: Path) -> list[dict[str, Any]]:
    if not journal.exists():
        return []
    out = []
    for raw in journal.read_bytes().splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            continue  # a torn last line
        if rec.get("type") == "attempt":
            out.append(rec)
    return out


def _hbench(*args: str) -> list[str]:
    return [sys.executable, "-m", "hbench", "run", *args]


def kill_and_resume(tmp: Path, runs: int) -> dict[str, Any]:
    from hbench.testing import ScriptedServer

    out = tmp / "results"
    journal = out / "journal.jsonl"
    with ScriptedServer({s["match"]: s.get("turns") or {"attempts": s["attempts"]} for s in bundled_scripts()},
                        latency_s=0.03) as srv:
        args = ["--lane-url", srv.url, "--model", "scripted-model", "--runs", str(runs), "--out", str(out),
                "--report", "json", "--no-progress"]
        planned = 8 * runs  # the bundled suite's 8 prompts the builtin agent runs
        proc = subprocess.Popen(_hbench(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 120
        while len(_attempt_lines(journal)) < planned // 2:
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError("the run ended before it could be killed at 50%")
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        journaled = {(r["prompt_id"], r["n"]) for r in _attempt_lines(journal)}
        started_before = sum(1 for r in srv.chat_requests if r.starts_attempt and (r.body or {}).get("tools"))
        rc = subprocess.run(_hbench(*args, "--resume"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, timeout=300)
        if rc.returncode:
            raise RuntimeError(f"--resume failed (exit {rc.returncode}): {rc.stderr[-500:]}")
        started_after = sum(1 for r in srv.chat_requests if r.starts_attempt and (r.body or {}).get("tools"))
    final = Counter((r["prompt_id"], r["n"]) for r in _attempt_lines(journal))
    resumed = started_after - started_before
    return {"planned": planned, "journaled_at_kill": len(journaled), "started_before": started_before,
            "resumed_started": resumed, "repeated": resumed - (planned - len(journaled)),
            "final_attempts": sum(final.values()), "duplicates": sum(c - 1 for c in final.values() if c > 1),
            "complete": set(final) == {(p, n) for p, n in final} and len(final) == planned,
            "journal": journal}


def big_journal(src: Path, dest: Path, lanes: int, prompts: int, runs: int) -> tuple[int, int]:
    """A journal of lanes x prompts x runs attempts, made from ``src``'s real attempt records."""
    recs = [json.loads(x) for x in src.read_bytes().splitlines() if x.strip()]
    header = next(r for r in recs if r["type"] == "header")
    samples = [r for r in recs if r["type"] == "attempt"]
    n = 0
    with open(dest, "w", encoding="utf-8") as f:
        f.write(json.dumps(header, separators=(",", ":")) + "\n")
        for li in range(lanes):
            lane = f"lane-{li:02d}"
            f.write(json.dumps({"type": "lane", "lane": lane, "fingerprint": "f" * 64, "at": "x"}) + "\n")
            for pi in range(prompts):
                for k in range(1, runs + 1):
                    rec = json.loads(json.dumps(samples[n % len(samples)]))
                    rec.update(lane=lane, prompt_id=f"p{pi:03d}", n=k)
                    rec["attempt"].update(lane=lane, prompt_id=f"p{pi:03d}", n=k)
                    f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
                    n += 1
            f.write(json.dumps({"type": "lane_finished", "lane": lane, "throughput": {}, "telemetry": {},
                                "at": "x"}) + "\n")
    return n, dest.stat().st_size


def rebuild(path: Path, lanes: int) -> tuple[float, int]:
    """What ``hbench run --resume`` reads before it runs anything; returns (seconds, attempts)."""
    from hbench.journal import Journal

    header = json.loads(path.open("rb").readline())
    t0 = time.perf_counter()
    j = Journal.open(path, suite=header["suite"], resume=True)
    total = 0
    try:
        for li in range(lanes):
            lane = f"lane-{li:02d}"
            j.begin_lane(lane, "f" * 64)
            total += len(j.completed(lane))
            j.finished_record(lane)
    finally:
        j.close()
    return time.perf_counter() - t0, total


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.resume", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smallest configuration (seconds; for the smoke test)")
    args = ap.parse_args(argv)
    runs, (lanes, prompts, per) = (2, (2, 10, 5)) if args.quick else (4, (10, 100, 10))
    with tempfile.TemporaryDirectory(prefix="hbench-bench-") as d:
        tmp = Path(d)
        k = kill_and_resume(tmp, runs)
        n, size = big_journal(k["journal"], tmp / "big.jsonl", lanes, prompts, per)
        secs, got = rebuild(tmp / "big.jsonl", lanes)
        if got != n:
            raise RuntimeError(f"rebuilt {got} attempts from a journal of {n}")
    print(f"bundled suite, --runs {runs}: {k['planned']} attempts planned; SIGKILL with {k['journaled_at_kill']} "
          f"journaled ({k['started_before']} started)")
    print(f"  --resume started {k['resumed_started']} attempts for the {k['planned'] - k['journaled_at_kill']} "
          f"missing; journal now holds {k['final_attempts']} attempts, {k['duplicates']} duplicated, "
          f"{'every planned one' if k['complete'] else 'NOT every planned one'}")
    print(f"journal of {n} attempts ({size / 2**20:.1f} MiB, {lanes} lanes): state rebuilt in {secs:.3f} s "
          f"{verdict(secs < GOAL_REBUILD_S)}")
    ok = k["repeated"] <= GOAL_REPEATS and k["duplicates"] == 0 and k["complete"]
    print(f"repeated attempts {verdict(ok)}")
    print(figure("resume_rebuild", secs, f"s to rebuild state from a {n}-attempt journal", f"< {GOAL_REBUILD_S:g} s",
                 "{:.3f}"))
    print(figure("resume_repeated", k["repeated"], "repeated attempts after kill -9 at 50% and --resume",
                 f"{GOAL_REPEATS}", "{:d}"))


if __name__ == "__main__":
    main()
