"""1. Harness overhead per model turn.

The bundled suite (hermes-brain, the 8 prompts the builtin agent runs) with the builtin
agent at ``--concurrency 1``, against the scripted server in its own process, so its work
is never counted as hbench's:

* **instant server**: no latency at all, so everything measured is hbench. A warm-up
  run, then ``--runs 1`` and ``--runs R`` side by side; the *marginal* cost per model
  turn is the CPU (this process, every thread) and wall time the extra turns added,
  which leaves out the once-per-run parts (suite loading, lane check, throughput probe,
  reports) reported on their own line. Goal: <= 2 ms of hbench CPU per turn.
* **realistic server**: 0.3 s to the first byte (prefill) and 20 ms per token
  (50 tok/s) with ~40 tokens of reasoning per turn. The share of wall time spent
  waiting on the server = the sum of the server's own request times (first byte of the
  request in to last byte out, from its record file) over the attempts' span (first
  request in to last answer out): every gap between requests (tools, scratch copies,
  checks, the journal) counts against hbench. Goal: >= 99%.

    .venv/bin/python -m benchmarks.overhead [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import ServerProcess, bundled_scripts, chat_requests, figure, verdict, write_json

GOAL_MS = 2.0
GOAL_SHARE = 99.0
REASONING = " ".join(["let me check the files for that"] * 6)  # ~40 tokens of reasoning per turn


def _run(url: str, out: Path, runs: int) -> dict[str, Any]:
    from hbench.runner import RunOptions, run

    opts = RunOptions(lane_url=url, model="scripted-model", suite="hermes-brain-v1", out=str(out), runs=runs,
                      concurrency=1, report="json", progress=False)
    c0, w0 = time.process_time(), time.monotonic()
    result = run(opts)
    c1, w1 = time.process_time(), time.monotonic()
    (sc,) = result.scorecards
    if sc.failed or result.exit_code:
        raise RuntimeError(f"benchmark run failed: {sc.failed or result.exit_code}")
    return {"cpu_s": c1 - c0, "wall_s": w1 - w0, "attempts": sc.attempts_run, "scorecard": sc}


def instant(tmp: Path, runs: int) -> dict[str, Any]:
    script = write_json(tmp / "instant.json", {"scripts": bundled_scripts()})
    with ServerProcess(script, tmp, name="instant") as srv:
        _run(srv.url, tmp / "warm", 1)  # imports, plugin loading, page cache
        n0 = len(chat_requests(srv.requests()))
        small = _run(srv.url, tmp / "small", 1)
        n1 = len(chat_requests(srv.requests()))
        big = _run(srv.url, tmp / "big", runs)
        n2 = len(chat_requests(srv.requests()))
    small["turns"], big["turns"] = n1 - n0, n2 - n1
    turns = big["turns"] - small["turns"]
    cpu_ms = 1000 * (big["cpu_s"] - small["cpu_s"]) / turns
    wall_ms = 1000 * (big["wall_s"] - small["wall_s"]) / turns
    return {"small": small, "big": big, "turns": turns, "cpu_ms_per_turn": cpu_ms, "wall_ms_per_turn": wall_ms,
            "turns_per_s": 1000 / wall_ms, "fixed_cpu_s": small["cpu_s"] - cpu_ms * small["turns"] / 1000,
            "fixed_wall_s": small["wall_s"] - wall_ms * small["turns"] / 1000}


def realistic(tmp: Path, runs: int, latency_s: float, token_latency_s: float) -> dict[str, Any]:
    scripts = bundled_scripts()
    for s in scripts:  # every turn thinks aloud for ~40 tokens first, as a reasoning model does
        for turns in (s.get("attempts") or [s["turns"]]):
            for t in turns:
                t["reasoning"] = REASONING
    script = write_json(tmp / "realistic.json", {"scripts": scripts})
    with ServerProcess(script, tmp, latency_s=latency_s, token_latency_s=token_latency_s, name="realistic") as srv:
        r = _run(srv.url, tmp / "realistic", runs)
        reqs = chat_requests(srv.requests())
    span = max(q["t_end"] for q in reqs) - min(q["t_start"] for q in reqs)
    server = sum(q["t_end"] - q["t_start"] for q in reqs)
    return {**r, "turns": len(reqs), "span_s": span, "server_s": server, "share_pct": 100 * server / span,
            "gap_ms_per_turn": 1000 * (span - server) / len(reqs)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smallest configuration (seconds; for the smoke test)")
    args = ap.parse_args(argv)
    runs, real_runs, lat, tok = (2, 1, 0.03, 0.002) if args.quick else (10, 1, 0.3, 0.02)
    with tempfile.TemporaryDirectory(prefix="hbench-bench-") as d:
        tmp = Path(d)
        i = instant(tmp, runs)
        r = realistic(tmp, real_runs, lat, tok)
    print(f"instant server, bundled suite, --runs 1 vs --runs {runs}: {i['turns']} extra model turns "
          f"({i['big']['attempts'] - i['small']['attempts']} attempts)")
    print(f"  per turn: {i['cpu_ms_per_turn']:.2f} ms hbench CPU, {i['wall_ms_per_turn']:.2f} ms wall "
          f"-> {i['turns_per_s']:.0f} turns/s at --concurrency 1")
    print(f"  once per run (suite, lane check, throughput probe, reports): {i['fixed_cpu_s'] * 1000:.0f} ms CPU, "
          f"{i['fixed_wall_s'] * 1000:.0f} ms wall")
    print(f"  whole --runs {runs} run: {i['big']['cpu_s']:.2f} s CPU, {i['big']['wall_s']:.2f} s wall "
          f"for {i['big']['turns']} turns")
    print(f"realistic server ({lat:g} s to first byte, {tok * 1000:g} ms/token, ~40 reasoning tokens a turn): "
          f"{r['turns']} turns over {r['span_s']:.1f} s, server busy {r['server_s']:.1f} s; "
          f"hbench between requests: {r['gap_ms_per_turn']:.1f} ms a turn")
    print(f"  share of wall time waiting on the server: {r['share_pct']:.2f}% {verdict(r['share_pct'] >= GOAL_SHARE)}")
    print(f"  hbench CPU per turn {verdict(i['cpu_ms_per_turn'] <= GOAL_MS)}")
    print(figure("overhead_wait_share", r["share_pct"], "% of wall time waiting on the server",
                 f">= {GOAL_SHARE:g}%"))
    print(figure("overhead_cpu_per_turn", i["cpu_ms_per_turn"], "ms hbench CPU per model turn",
                 f"<= {GOAL_MS:g} ms"))


if __name__ == "__main__":
    main()
