"""Per-attempt overhead of the ``hermes`` agent driver against the built-in loop.

Both drivers run the same attempt against the same ``hbench.testing.ScriptedServer``
answering instantly: the bundled suite's ``ground-freight-account`` prompt, scripted as
one ``read_file`` call and a final answer (two model turns), on a fresh scratch copy
each time. The model costs nothing here, so each attempt's wall time is the harness
alone; the overhead is hermes' median minus builtin's median. Hermes' figure includes
its start-up (~2 s of Python imports), the session export (a second ``hermes`` process)
and the process-tree sweep; it is paid once per attempt, whatever the lane.

    HBENCH_HERMES_BIN=.hermes-venv/bin/hermes .venv/bin/python -m benchmarks.hermes_overhead [N]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

#: the overhead should stay a small part of a real attempt (tens of seconds on a local lane)
GOAL_S = 5.0


def _cpu_s() -> float:
    """CPU seconds of this process (every thread) plus its waited-for children (hermes):
    unlike wall time, it does not grow when other work shares the machine."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def measure(n: int = 5) -> dict:
    from hbench.agents import AttemptContext
    from hbench.models import LaneSpec
    from hbench.plugin_manager import get_registries
    from hbench.suite import load_suite, render_fixtures
    from hbench.testing import ScriptedServer, answer, call

    reg = get_registries()
    suite = load_suite(Path(__file__).resolve().parent.parent / "suites" / "hermes-brain-v1")
    prompt = next(p for p in suite.prompts if p.id == "ground-freight-account")
    tools = {e.name: e.obj for e in reg.tools.entries()}
    freight = suite.ground_truth["freight_account"]
    script = {"freight carrier": [call("read_file", path="ops/shipping.md"), answer(freight)]}
    out: dict = {"n": n}
    with ScriptedServer(script, model="m") as srv, tempfile.TemporaryDirectory() as tmp:
        lane = LaneSpec(name="bench", base_url=srv.url, model="m")
        for name in ("builtin", "hermes"):
            agent = reg.agents.get(name)
            ok, why = agent.usable()
            if not ok:
                out[name] = {"error": why}
                continue
            walls, cpus, bad = [], [], []
            for i in range(n + 1):  # the first one warms caches (imports, page cache): dropped
                scratch = Path(tmp) / name / str(i)
                render_fixtures(suite, scratch)
                ctx = AttemptContext(lane=lane, prompt=prompt, suite=suite, n=i + 1, scratch=scratch,
                                     timeout_s=120, max_turns=10, max_tokens=256, temperature=0.0,
                                     tools=tools, work_dir=Path(tmp) / "work" / name)
                t0, c0 = time.perf_counter(), _cpu_s()
                a = agent.run_attempt(ctx)
                wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
                if a.error or a.runaway or freight not in a.answer:
                    bad.append(a.error or a.runaway or f"answer {a.answer!r}")
                if i:
                    walls.append(wall)
                    cpus.append(cpu)
            out[name] = {"median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls),
                         "cpu_s": statistics.median(cpus), "failed": bad}
    if "median_s" in out.get("builtin", {}) and "median_s" in out.get("hermes", {}):
        out["overhead_s"] = out["hermes"]["median_s"] - out["builtin"]["median_s"]
        out["overhead_cpu_s"] = out["hermes"]["cpu_s"] - out["builtin"]["cpu_s"]
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and __name__ == "__main__" else 5
    os.environ.setdefault("HBENCH_HERMES_BIN", str(Path(__file__).resolve().parent.parent / ".hermes-venv/bin/hermes"))
    r = measure(n)
    print(f"attempts per driver: {n} (after one warm-up), instant scripted server, 2 model turns + 1 read_file")
    for name in ("builtin", "hermes"):
        d = r.get(name, {})
        if "error" in d:
            print(f"{name}: not usable: {d['error']}")
            continue
        print(f"{name}: median {d['median_s']:.3f} s wall (min {d['min_s']:.3f}, max {d['max_s']:.3f}), "
              f"{d['cpu_s']:.3f} s CPU"
              + (f"; FAILED attempts: {d['failed']}" if d["failed"] else ""))
    if "overhead_s" not in r:
        print("hermes_overhead: n/a s (goal < %g s)" % GOAL_S)
        return
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; hermes CPU overhead "
          f"{r['overhead_cpu_s']:.2f} s per attempt (wall tracks it on an idle machine)")
    verdict = "meets" if r["overhead_s"] < GOAL_S else "MISSES"
    print(f"({verdict} the goal)")
    print(f"hermes_overhead: {r['overhead_s']:.2f} s per attempt (goal < {GOAL_S:g} s)")


if __name__ == "__main__":
    main()
