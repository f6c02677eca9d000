"""10. Parallel lanes: ``--parallel-lanes 3`` on three unmanaged lanes against each lane alone.

Three scripted servers (each its own process), every request answered after a flat 0.5 s.
The bundled suite's 8 core prompts, ``--runs 2``, ``--concurrency 4``, builtin agent. Each
lane runs alone first (``hbench run --lanes X``: the whole command's wall time, lane check,
attempts, throughput probe and reports), then all three with ``--parallel-lanes 3`` in one
run. Goal: the parallel run's wall time is at most 1.15x the slowest lane alone, with
scorecards identical to the lanes run alone.

    .venv/bin/python -m benchmarks.parallel_lanes [--quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import ServerProcess, bundled_scripts, figure, lanes_toml, quiet_logs, verdict, write_json

GOAL = 1.15
LANES = ("lane-a", "lane-b", "lane-c")


def _scores(out: Path, lane: str) -> Any:
    card = json.loads((out / f"{lane}.json").read_text())
    return {"core_pass": card["core_pass"], "pass_rate": card["pass_rate"],
            "prompts": {p["id"]: [a["passed"] for a in p["attempts"]] for p in card["prompts"]}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.parallel_lanes", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smallest configuration (seconds; for the smoke test)")
    args = ap.parse_args(argv)
    latency, runs = (0.05, 1) if args.quick else (0.5, 2)
    quiet_logs()
    from hbench.runner import RunOptions, run

    with tempfile.TemporaryDirectory(prefix="hbench-bench-") as d:
        tmp = Path(d)
        # the same outcome every attempt (a flaky prompt's cycle would depend on what ran before)
        steady = [{"match": s["match"], "turns": s["attempts"][0]} if "attempts" in s else s for s in bundled_scripts()]
        script = write_json(tmp / "bundled.json", {"scripts": steady})
        servers = [ServerProcess(script, tmp, latency_s=latency, record=False, name=n) for n in LANES]
        try:
            toml = lanes_toml(tmp / "hbench.toml", {n: s.url for n, s in zip(LANES, servers)})

            def one(lanes: str, out: str, parallel: int | None = None) -> float:
                t0 = time.monotonic()
                r = run(RunOptions(lanes=lanes, config=str(toml), suite="hermes-brain-v1", runs=runs,
                                   core_only=True, concurrency=4, max_turns=4, out=str(tmp / out), report="json",
                                   progress=False, parallel_lanes=parallel))
                if any(sc.failed for sc in r.scorecards):
                    raise RuntimeError(f"benchmark run failed: {r.verdict}")
                return time.monotonic() - t0

            one("lane-a", "warm")  # imports, plugins, first-run costs: once
            alone = {n: one(n, f"alone-{n}") for n in LANES}
            together = one(",".join(LANES), "together", parallel=3)
            same = all(_scores(tmp / f"alone-{n}", n) == _scores(tmp / "together", n) for n in LANES)
        finally:
            for s in servers:
                s.close()
    slowest = max(alone.values())
    ratio = together / slowest
    print(f"bundled suite core prompts, --runs {runs}, --concurrency 4; each lane its own server, flat {latency:g} s "
          "a request")
    for n, w in alone.items():
        print(f"  {n} alone: {w:.2f} s wall")
    print(f"  serial sum {sum(alone.values()):.2f} s; --parallel-lanes 3: {together:.2f} s wall "
          f"({ratio:.2f}x the slowest lane alone); scores identical: {'yes' if same else 'NO'}")
    print(verdict(ratio <= GOAL and same))
    print(figure("parallel_lanes_wall", ratio, "x the slowest lane alone, --parallel-lanes 3 on 3 lanes "
                 f"(scores identical: {'yes' if same else 'NO'})", f"<= {GOAL:g}x"))


if __name__ == "__main__":
    main()
