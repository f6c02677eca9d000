"""``python -m benchmarks [--quick] [NAME ...]``: run every benchmark (or the named ones)
in one process run, in order, each printing its figure as its last line
``NAME: VALUE UNIT (goal ...)``. ``--quick`` runs each one's smallest configuration
(seconds; what tests/test_benchmarks_smoke.py checks). A summary of the figure lines
ends the output.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import subprocess
import sys
import time

#: module -> how --quick runs it (None = main(["--quick"]); a list = that argv as a subprocess)
BENCHMARKS: dict[str, list[str] | None] = {
    "overhead": None,
    "concurrency": None,
    "adaptive": None,
    "resume": None,
    "startup": None,
    "sampler": ["1"],  # its own main() reads seconds from argv when run as a script
    "scale": None,
    "hermes_overhead": ["1"],
    "power": None,
    "history": None,
    "mcp": None,
    "parallel_lanes": None,
    "checks": None,
}


class _Tee(io.TextIOBase):
    def __init__(self, *streams: io.TextIOBase):
        self.streams = streams

    def write(self, s: str) -> int:
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self) -> None:
        for st in self.streams:
            st.flush()


def run_one(name: str, quick: bool) -> str:
    """Run one benchmark; returns its last output line."""
    quick_argv = BENCHMARKS[name]
    if quick and quick_argv is not None:
        r = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *quick_argv], capture_output=True, text=True)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr[-2000:])
        lines = [x for x in r.stdout.splitlines() if x.strip()]
        return lines[-1] if lines else f"{name}: failed (exit {r.returncode})"
    mod = importlib.import_module(f"benchmarks.{name}")
    buf = io.StringIO()
    with contextlib.redirect_stdout(_Tee(sys.stdout, buf)):
        if quick:
            mod.main(["--quick"])
        elif BENCHMARKS[name] is None:
            mod.main([])
        else:
            mod.main()
    lines = [x for x in buf.getvalue().splitlines() if x.strip()]
    return lines[-1] if lines else f"{name}: no output"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {', '.join(BENCHMARKS)})")
    ap.add_argument("--quick", action="store_true", help="each benchmark's smallest configuration")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    names = args.names or list(BENCHMARKS)
    figures, failed = [], 0
    t0 = time.monotonic()
    for name in names:
        print(f"== {name}", flush=True)
        t = time.monotonic()
        try:
            figures.append(run_one(name, args.quick))
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            failed += 1
            figures.append(f"{name}: FAILED ({type(exc).__name__}: {exc})")
            print(figures[-1])
        print(f"   ({time.monotonic() - t:.1f} s)", flush=True)
    print(f"== summary ({time.monotonic() - t0:.0f} s)")
    for f in figures:
        print(f)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
