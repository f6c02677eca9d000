"""5. Start-up: ``hbench plugins`` and ``hbench --help``, a new process each time.

The two example plugins (examples/hermes-bench-lane-gptoss, -reporter-csv) are pip
installed into a throwaway venv that borrows this project's site-packages through a .pth
``import site; site.addsitedir(...)`` line (as tests/test_plugins.py does), so the project
venv is unchanged. Each command runs as the ``hbench`` console script does
(``sys.exit(hbench.cli.main())``), once to warm the page cache, then 7 times; the figure
is the slower command's median wall time.

    .venv/bin/python -m benchmarks.startup [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import ROOT, figure, verdict
from tests.venvs import borrowing_venv, pip_install  # our own helpers (tests/venvs.py)

GOAL_MS = 300.0
SCRIPT = "import sys; from hbench.cli import main; sys.exit(main())"


def time_cmd(py: Path, args: list[str], n: int) -> tuple[list[float], str]:
    out = ""
    walls = []
    for i in range(n + 1):
        t0 = time.perf_counter()
        r = subprocess.run([str(py), "-c", SCRIPT, *args], capture_output=True, text=True, timeout=60)
        wall = time.perf_counter() - t0
        if r.returncode:
            raise RuntimeError(f"hbench {' '.join(args)} failed: {r.stderr[-500:]}")
        out = r.stdout
        if i:  # the first run warms the page cache
            walls.append(wall * 1000)
    return walls, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smallest configuration (seconds; for the smoke test)")
    args = ap.parse_args(argv)
    n = 2 if args.quick else 7
    with tempfile.TemporaryDirectory(prefix="hbench-bench-") as d:
        py = borrowing_venv(Path(d) / "venv")
        for ex in ("hermes-bench-lane-gptoss", "hermes-bench-reporter-csv"):
            pip_install(py, ROOT / "examples" / ex)
        t0 = time.perf_counter()
        for _ in range(n):
            subprocess.run([str(py), "-c", "pass"], check=True)
        bare_ms = (time.perf_counter() - t0) * 1000 / n
        plugins, out = time_cmd(py, ["plugins"], n)
        helps, _ = time_cmd(py, ["--help"], n)
    found = [name for name in ("gptoss", "csv") if name in out]
    med_p, med_h = statistics.median(plugins), statistics.median(helps)
    worst = max(med_p, med_h)
    print(f"throwaway venv with the example plugins ({', '.join(found) or 'NOT LISTED'} listed by `hbench plugins`)")
    print(f"  bare interpreter start: {bare_ms:.0f} ms")
    print(f"  hbench plugins: median {med_p:.0f} ms (min {min(plugins):.0f}, max {max(plugins):.0f}; {n} runs)")
    print(f"  hbench --help:  median {med_h:.0f} ms (min {min(helps):.0f}, max {max(helps):.0f}; {n} runs)")
    print(verdict(worst < GOAL_MS and len(found) == 2))
    print(figure("startup", worst, "ms median cold start, slower of `hbench plugins` and `hbench --help`",
                 f"< {GOAL_MS:g} ms", "{:.0f}"))


if __name__ == "__main__":
    main()
