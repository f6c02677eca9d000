"""2. Concurrency: the bundled suite at N=5 with ``--concurrency 1`` and ``--concurrency 8``.

The scripted server (its own process) answers every request after a flat 0.15 s, however
many are in flight, as a batching server does up to its batch size. Both runs use the
same lane script (right, wrong and flaky prompts), so their scores must be identical.
The speed-up is the whole ``hbench run`` wall time (suite, lane check, attempts,
throughput probe, reports), side by side; the attempts' own span (first request in to
last answer out, from the server's record) and the most requests the server saw in
flight are printed too.

Then high concurrency (issue 19): a synthetic suite (half the prompts read a file, then
answer: 1.5 model turns an attempt) against a scripted server answering every request
after a flat 0.5 s, at ``--concurrency`` 1, 32, 64 and 128 (4 waves of attempts each;
8 attempts at 1). Speed-up is attempts per second over the attempts' span (the server's
record) against concurrency 1; harness CPU per turn is this process's CPU for the run
(every thread: agent loop, client, checks, journal fsyncs, scratch copies) over the model
turns the server answered, marginal over the concurrency-1 run (so the fixed costs of a
run, suite load, lane check and throughput probe, cancel out).

    .venv/bin/python -m benchmarks.concurrency [--quick] [--high-only]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import ServerProcess, bundled_scripts, chat_requests, figure, max_in_flight, verdict, write_json

GOAL_X = 6.0
#: concurrency 64 against a 0.5 s lane: at least this many times the attempts/s of concurrency 1
GOAL_C64_X = 40.0
#: harness CPU per model turn at high concurrency (ms)
GOAL_CPU_MS = 2.0


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
    ap.add_argument("--high-only", action="store_true", help="only the high-concurrency part (32, 64, 128)")
    args = ap.parse_args(argv)
    if args.high_only:
        with tempfile.TemporaryDirectory(prefix="hbench-bench-") as d:
            for line in high(Path(d), args.quick):
                print(line)
        return
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
    with tempfile.TemporaryDirectory(prefix="hbench-bench-") as d:
        for line in high(Path(d), args.quick):
            print(line)


def _high_suite(dest: Path, n: int) -> Path:
    from benchmarks._common import synthetic_suite

    prompts = [{"id": f"p{i:02d}", "prompt": f"Item {i:02d}: what is the code word?",
                "expect_tool_any": ["read"] if i % 2 == 0 else [],
                "check": {"kind": "substring", "all": ["heron-42"]}} for i in range(n)]
    return synthetic_suite(dest, prompts, name="concurrency-bench", runs=1)


def _high_script(n: int) -> dict[str, Any]:
    scripts = []
    for i in range(n):
        turns: list[dict[str, Any]] = [{"content": "The code word is heron-42."}]
        if i % 2 == 0:
            turns.insert(0, {"tool_calls": [{"name": "read_file", "arguments": {"path": "notes.md"}}]})
        scripts.append({"match": f"Item {i:02d}:", "turns": turns})
    return {"scripts": scripts}


def high_one(tmp: Path, suite: Path, url_srv: Any, concurrency: int, attempts: int, prompts: int) -> dict[str, Any]:
    from benchmarks._common import cpu_s
    from hbench.runner import RunOptions, run

    runs = max(1, attempts // prompts)
    n0 = len(chat_requests(url_srv.requests()))
    opts = RunOptions(lane_url=url_srv.url, model="scripted-model", suite=str(suite), runs=runs,
                      concurrency=concurrency, out=str(tmp / f"high-c{concurrency}"), report="json", progress=False)
    c0, w0 = cpu_s(), time.monotonic()
    result = run(opts)
    cpu, wall = cpu_s() - c0, time.monotonic() - w0
    reqs = chat_requests(url_srv.requests())[n0:]
    (sc,) = result.scorecards
    if sc.failed or result.exit_code or sc.attempts_run != runs * prompts or sc.pass_rate != 1.0:
        raise RuntimeError(f"benchmark run at --concurrency {concurrency} failed: {sc.failed or result.verdict}")
    span = max(q["t_end"] for q in reqs) - min(q["t_start"] for q in reqs)
    return {"c": concurrency, "attempts": sc.attempts_run, "turns": len(reqs), "wall_s": wall, "span_s": span,
            "rate": sc.attempts_run / span, "cpu_s": cpu, "in_flight": max_in_flight(reqs)}


def high(tmp: Path, quick: bool) -> list[str]:
    """Concurrency 1, 32, 64, 128 against a 0.5 s lane (quick: 1 and 16 against 0.05 s)."""
    from benchmarks._common import quiet_logs

    quiet_logs()
    latency, levels, prompts = (0.05, (1, 16), 8) if quick else (0.5, (1, 32, 64, 128), 16)
    suite = _high_suite(tmp / "high-suite", prompts)
    script = write_json(tmp / "high.json", _high_script(prompts))
    rows = []
    with ServerProcess(script, tmp, latency_s=latency, name="high") as srv:
        high_one(tmp / "warm", suite, srv, 1, prompts, prompts)  # imports, plugins, first-run costs: once
        for c in levels:
            rows.append(high_one(tmp, suite, srv, c, 8 if c == 1 else 4 * c, prompts))
    base = rows[0]
    print(f"synthetic suite ({prompts} prompts, half read a file first), server: flat {latency:g} s a request")
    print(f"  {'conc':>5} {'attempts':>8} {'turns':>6} {'in flight':>9} {'span s':>7} {'att/s':>7} {'speed-up':>8} "
          f"{'wall s':>7} {'CPU ms/turn':>11} {'marginal':>8}")
    for r in rows:
        marginal = ((r["cpu_s"] - base["cpu_s"]) / (r["turns"] - base["turns"]) * 1000
                    if r is not base and r["turns"] > base["turns"] else float("nan"))
        r["marginal_ms"] = marginal
        r["x"] = r["rate"] / base["rate"]
        print(f"  {r['c']:>5} {r['attempts']:>8} {r['turns']:>6} {r['in_flight']:>9} {r['span_s']:>7.2f} "
              f"{r['rate']:>7.2f} {r['x']:>7.1f}x {r['wall_s']:>7.2f} {r['cpu_s'] / r['turns'] * 1000:>11.2f} "
              f"{marginal:>8.2f}")
    key = next((r for r in rows if r["c"] == 64), rows[-1])
    ok_x = key["x"] >= (GOAL_C64_X if key["c"] == 64 else 1.0)
    print(verdict(ok_x and key["marginal_ms"] <= GOAL_CPU_MS))
    return [figure("concurrency_c64_speedup", key["x"], f"x attempts/s, --concurrency {key['c']} vs 1",
                   f">= {GOAL_C64_X:g}x at 64"),
            figure("concurrency_cpu_per_turn", key["marginal_ms"], f"ms hbench CPU per model turn at --concurrency "
                   f"{key['c']} (marginal)", f"<= {GOAL_CPU_MS:g} ms")]


if __name__ == "__main__":
    main()
