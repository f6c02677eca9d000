"""7. Scale: 1, 10 and 100 lanes x 100 prompts against the instant server.

A 100-prompt suite (half the prompts read a file first, half answer at once), N=1, one
``hbench run --lanes all --concurrency 4 --report json`` process per size against the
scripted server (its own process, answering instantly; every lane points at it).
Reported: wall time, time per attempt, and the run's peak RSS (``wait4`` rusage of that
process). Linear cost = flat time per attempt; flat memory = peak RSS that does not grow
with the lanes (the journal is streamed, each lane's attempts are kept light).

    .venv/bin/python -m benchmarks.scale [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import ServerProcess, figure, lanes_toml, synthetic_suite, verdict, write_json

#: peak RSS at the largest size over the smallest: "flat" means within this
GOAL_RSS_GROWTH = 1.25
#: time per attempt at the largest size over the smallest: "linear" means within this
GOAL_TIME_GROWTH = 1.5


def _suite(dest: Path, n: int) -> Path:
    prompts = [{"id": f"p{i:03d}", "prompt": f"Item {i:03d}: what is the code word?",
                "expect_tool_any": ["read"] if i % 2 == 0 else [],
                "check": {"kind": "substring", "all": ["heron-42"]}} for i in range(n)]
    return synthetic_suite(dest, prompts, name="scale-bench", runs=1)


def _script(n: int) -> dict[str, Any]:
    scripts = []
    for i in range(n):
        turns: list[dict[str, Any]] = [{"content": "The code word is heron-42."}]
        if i % 2 == 0:
            turns.insert(0, {"tool_calls": [{"name": "read_file", "arguments": {"path": "notes.md"}}]})
        scripts.append({"match": f"Item {i:03d}:", "turns": turns})
    return {"scripts": scripts}


def one(tmp: Path, url: str, suite: Path, lanes: int) -> dict[str, Any]:
    names = {f"lane{i:03d}": url for i in range(lanes)}
    cfg = lanes_toml(tmp / f"hbench-{lanes}.toml", names)
    cmd = [sys.executable, "-m", "hbench", "--config", str(cfg), "run", "--lanes", ",".join(names), "--suite",
           str(suite), "--runs", "1", "--concurrency", "4", "--report", "json", "--out", str(tmp / f"out-{lanes}"),
           "--no-progress"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode:
        raise RuntimeError(f"hbench run with {lanes} lanes failed (exit {proc.returncode}): {err[-800:]}")
    return {"wall_s": wall, "rss_mib": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smallest configuration (seconds; for the smoke test)")
    args = ap.parse_args(argv)
    sizes, n = ((1, 2), 5) if args.quick else ((1, 10, 100), 100)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hbench-bench-") as d:
        tmp = Path(d)
        suite = _suite(tmp / "suite", n)
        script = write_json(tmp / "scale.json", _script(n))
        with ServerProcess(script, tmp, record=False, name="scale") as srv:
            for lanes in sizes:
                r = one(tmp, srv.url, suite, lanes)
                r.update(lanes=lanes, attempts=lanes * n)
                rows.append(r)
    print(f"{n} prompts (half with a read_file turn), N=1, --concurrency 4, instant server")
    print("  lanes  attempts   wall s   ms/attempt   CPU s   peak RSS MiB")
    for r in rows:
        print(f"  {r['lanes']:>5}  {r['attempts']:>8}  {r['wall_s']:>7.1f}  {1000 * r['wall_s'] / r['attempts']:>11.1f}"
              f"  {r['cpu_s']:>6.1f}  {r['rss_mib']:>13.1f}")
    first, last = rows[0], rows[-1]
    t_growth = (last["wall_s"] / last["attempts"]) / (first["wall_s"] / first["attempts"])
    m_growth = last["rss_mib"] / first["rss_mib"]
    print(f"  time per attempt x{t_growth:.2f} from {first['lanes']} to {last['lanes']} lanes "
          f"{verdict(t_growth <= GOAL_TIME_GROWTH)}")
    print(f"  peak RSS x{m_growth:.2f} from {first['lanes']} to {last['lanes']} lanes {verdict(m_growth <= GOAL_RSS_GROWTH)}")
    print(figure("scale_rss_growth", m_growth, f"x peak RSS from {first['lanes']} to {last['lanes']} lanes "
                 f"(time per attempt x{t_growth:.2f})",
                 f"flat: <= {GOAL_RSS_GROWTH:g}x memory, <= {GOAL_TIME_GROWTH:g}x time per attempt"))


if __name__ == "__main__":
    main()
