"""Checking and agreement time on hostile answers (issue 15: checks linear and bounded).

Every built-in check kind, loaded from a suite as a run loads it, through
``hbench.checks.run_check`` (1 MiB cap, ``CHECK_BUDGET_S`` budget) on answers a model
can send: a 274 KiB flood of unclosed ``<think>`` tags (87 s per attempt before the
linear ``strip_think``), 3 MiB of text (cut to 1 MiB), a 1 MiB flood of nested brackets,
and a plain answer; plus agreement over five such answers. Figure: the slowest single
check, against the budget.

    .venv/bin/python -m benchmarks.checks [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import ROOT

CHECKS = [
    {"kind": "substring", "any": ["ok"], "none": ["bad"]},
    {"kind": "regex", "any": ["o+k", "(a|b)*c$"]},
    {"kind": "number", "value": 42, "tolerance": 0.5},
    {"kind": "json_keys", "keys": ["a", "b"]},
    {"kind": "honesty", "forbid": ["42"]},
]


def answers(quick: bool) -> dict[str, str]:
    scale = 8 if quick else 1
    return {
        "think_flood_274KiB": "<think>" * (40_000 // scale) + " the answer is 42",
        "text_3MiB": ("lorem ipsum dolor sit amet " * (120_000 // scale)) + " ok 42",
        "bracket_flood_1MiB": '{"a":' * (200_000 // scale),
        "plain": 'I checked the files: {"a": 1, "b": 2}, so the answer is 42. ok',
    }


def load_checks() -> list:
    sys.path.insert(0, str(ROOT / "tests" / "reliability"))
    from relhelp import write_suite

    from hbench.suite import load_suite

    root = write_suite(Path(tempfile.mkdtemp(prefix="hbench-bench-checks-")) / "s",
                       [{"id": f"c{i}", "prompt": "p", "check": c} for i, c in enumerate(CHECKS)])
    return [p.check for p in load_suite(str(root)).prompts]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.checks", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="answers 8x smaller")
    args = ap.parse_args(argv)
    from hbench.checks import CHECK_BUDGET_S, run_check
    from hbench.scoring import agreement

    checks = load_checks()
    worst, worst_what = 0.0, ""
    for name, text in answers(args.quick).items():
        row = []
        for check in checks:
            result, took, note = run_check(check, text)
            row.append(f"{check.name} {took * 1000:.0f} ms")
            if took > worst:
                worst, worst_what = took, f"{check.name} on {name}"
            if "did not finish" in result.why:
                row[-1] += " (OVER BUDGET)"
        t0 = time.perf_counter()
        agreement([text] * 3 + [text + " x", "other"])
        row.append(f"agreement(5) {(time.perf_counter() - t0) * 1000:.0f} ms")
        print(f"{name} ({len(text.encode()):,} bytes): " + ", ".join(row))
    print(f"slowest: {worst_what}")
    print(f"checks_slowest: {worst:.2f} s (goal < {CHECK_BUDGET_S:g} s, the check budget)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
