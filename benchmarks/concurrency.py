"""2. Concurrency: the bundled suite at N=5 with ``--concurrency 1`` and ``--concurrency 8``.

The scripted server (its own process) answers every request after a flat 0.15 s, however
many are in flight, as a batching server does up to its batch size. Both runs use the
same lane script (right, wrong and flaky prompts), so their scores must be identical.
The speed-up is the whole ``hbench run`` wall time (suite, lane check, attempts,
throughput probe, reports), side by side; the attempts' own span (first request in to
last answer out, from the server's record) and the most requests the server saw in
flight are printed too.

    .venv/bin/python -m benchmarks.concurrency [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import ServerProcess, bundled_scripts, chat_requests, figure, max_in_flight, verdict, write_json

GOAL_X = 6.0


def scores(sc: Any) -> dict[str, Any]:
    """What a person compares: the lane's figures and every prompt's passes."""
    return {"core_pass": sc.core_pass, "core_n": sc.core_n, "pass_rate": round(sc.pass_rate, 9),
            "consistency": round(sc.consistency, 9) if sc.consistency is not None else None, "runaway_rate": sc.runaway_rate,
            "correct_tool_rate": round(sc.correct_tool_rate, 9), "attempts_run": sc.attempts_run,
            "prompts": {p.id: (p.passes, len(p.attempts)) for p in sc.prompts}}


def one(tmp: Path, script: Path, latency_s: float, runs: int, concurrency: int) -> dict[str, Any]:
    from hbench.runner import RunOptions, run

    with ServerProcess(script, tmp, latency_s=latency_s, name=f"c{concurrency}") as srv:
        opts = RunOptions(lane_url=srv.url, model="scripted-model", suite="hermes-brain-v1", runs=runs,
                          concurrency=concurrency, out=str(tmp / f"c{concurrency}"), report="json", progress=False)
        w0 = time.monotonic()
        result = run(opts)
        wall = time.monotonic() - w0
        reqs = chat_requests(srv.requests())
    (sc,) = result.scorecards
    if sc.failed or result.exit_code:
        raise RuntimeError(f"benchmark run failed: {sc.failed or result.exit_code}")
    span = max(q["t_end"] for q in reqs) - min(q["t_start"] for q in reqs)
    return {"wall_s": wall, "span_s": span, "in_flight": max_in_flight(reqs), "turns": len(reqs), "scores": scores(sc)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.concurrency", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smallest configuration (seconds; for the smoke test)")
    args = ap.parse_args(argv)
    runs, latency = (1, 0.02) if args.quick else (5, 0.15)
    with tempfile.TemporaryDirectory(prefix="hbench-bench-") as d:
        tmp = Path(d)
        script = write_json(tmp / "bundled.json", {"scripts": bundled_scripts()})
        from hbench.runner import RunOptions, run

        with ServerProcess(script, tmp, name="warm") as srv:  # imports and plugin loading, once
            run(RunOptions(lane_url=srv.url, model="scripted-model", suite="hermes-brain-v1", runs=1,
                           out=str(tmp / "warm"), report="json", progress=False))
        c1 = one(tmp, script, latency, runs, 1)
        c8 = one(tmp, script, latency, runs, 8)
    same = c1["scores"] == c8["scores"]
    x = c1["wall_s"] / c8["wall_s"]
    print(f"bundled suite, --runs {runs}: {c1['scores']['attempts_run']} attempts, {c1['turns']} model turns; "
          f"server: flat {latency:g} s a request")
    for name, r in (("--concurrency 1", c1), ("--concurrency 8", c8)):
        print(f"  {name}: {r['wall_s']:.2f} s wall (attempts span {r['span_s']:.2f} s), "
              f"at most {r['in_flight']} requests in flight; core_pass {r['scores']['core_pass']}/"
              f"{r['scores']['core_n']}, pass_rate {r['scores']['pass_rate']:.3f}")
    print(f"  attempts-span speed-up {c1['span_s'] / c8['span_s']:.2f}x")
    print(f"  scores identical: {'yes' if same else 'NO'}")
    if not same:
        for k in c1["scores"]:
            if c1["scores"][k] != c8["scores"][k]:
                print(f"    {k}: {c1['scores'][k]} vs {c8['scores'][k]}")
    print(verdict(x >= GOAL_X and same))
    print(figure("concurrency_speedup", x, f"x wall time, --concurrency 8 vs 1 (scores identical: "
                 f"{'yes' if same else 'NO'})", f">= {GOAL_X:g}x, identical scores"))


if __name__ == "__main__":
    main()
