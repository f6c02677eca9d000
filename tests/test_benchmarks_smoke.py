"""Smoke test of benchmarks/: each benchmark's smallest configuration runs against the
scripted server on loopback and ends with its figure line, ``NAME: VALUE UNIT (goal ...)``.

Figures are not asserted here (speed goals live in the benchmarks, not in timed tests);
what is asserted is that every benchmark runs and reports in the agreed format, and that
``python -m benchmarks`` runs the ones named and sums them up.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*): (?P<value>-?\d+(?:\.\d+)?|n/a) (?P<unit>\S.*?) \(goal (?P<goal>.+)\)$")

sys.path.insert(0, str(ROOT))
from benchmarks.__main__ import BENCHMARKS  # noqa: E402

#: the figure names each module prints, in order (its last line is the last of them)
NAMES = {
    "overhead": ["overhead_wait_share", "overhead_cpu_per_turn"],
    "concurrency": ["concurrency_speedup", "concurrency_c64_speedup", "concurrency_cpu_per_turn"],
    "adaptive": ["adaptive_saved"],
    "resume": ["resume_rebuild", "resume_repeated"],
    "startup": ["startup"],
    "sampler": ["sampler_cpu"],
    "scale": ["scale_rss_growth"],
    "hermes_overhead": ["hermes_overhead"],
    "power": ["power_sim_match", "power_pick_rate"],
    "history": ["history_import", "history_list", "history_compare", "history_overhead"],
    "mcp": ["mcp_start_fresh", "mcp_start_pooled", "mcp_call_overhead"],
    "parallel_lanes": ["parallel_lanes_wall"],
    "checks": ["checks_slowest"],
}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def quick(name: str) -> subprocess.CompletedProcess:
    argv = BENCHMARKS[name] if BENCHMARKS[name] is not None else ["--quick"]
    return subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *argv], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=240)


def test_every_module_is_listed() -> None:
    # check_gold measures verdicts (accuracy on the gold sets), not speed: run on its own
    modules = {p.stem for p in (ROOT / "benchmarks").glob("*.py") if not p.stem.startswith("_")} - {"check_gold"}
    assert modules == set(BENCHMARKS) == set(NAMES)


def test_figure_pattern_rejects_malformed_lines() -> None:
    assert FIGURE.match("overhead_cpu_per_turn: 5.34 ms hbench CPU per model turn (goal <= 2 ms)")
    assert FIGURE.match("hermes_overhead: n/a s (goal < 5 s)")
    for bad in ("overhead: 5.3 ms", "Overhead: 5 ms (goal < 2)", "x: fast ms (goal < 2)", "x: 5 (goal < 2)", ""):
        assert not FIGURE.match(bad), bad


#: startup pip-installs two packages (~20 s); hermes_overhead starts Hermes (~2 s an attempt)
SLOW = {"startup", "hermes_overhead"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in NAMES])
def test_benchmark_prints_its_figure_last(name: str) -> None:
    r = quick(name)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    lines = [x for x in r.stdout.splitlines() if x.strip()]
    figures = [m for m in (FIGURE.match(x) for x in lines) if m]
    assert [m["name"] for m in figures] == NAMES[name], lines
    assert FIGURE.match(lines[-1]) and FIGURE.match(lines[-1])["name"] == NAMES[name][-1]
    if name != "hermes_overhead":  # hermes may be absent here: it then says n/a
        assert all(m["value"] != "n/a" for m in figures), lines


def test_runner_runs_the_named_ones_and_sums_up() -> None:
    r = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "adaptive"], cwd=ROOT, env=_env(),
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout.splitlines()
    assert out[0] == "== adaptive"
    summary = out[out.index(next(x for x in out if x.startswith("== summary"))) + 1:]
    assert len(summary) == 1 and FIGURE.match(summary[0])["name"] == "adaptive_saved"
    bad = subprocess.run([sys.executable, "-m", "benchmarks", "nosuch"], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown benchmark nosuch" in bad.stderr
