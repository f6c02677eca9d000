"""3. Adaptive N: attempts saved by ``--adaptive``, with core_pass and the rank unchanged.

Three scripted lanes (a strong, a middling and a weak one) on a 20-prompt suite at the
suite default N=5. Each lane has a realistic mix: most prompts pass every attempt or fail
every attempt, three are flaky (3 of 5, 2 of 5, 4 of 5 passes, in a fixed order). The
same lanes run without and with ``--adaptive`` (fresh servers, so both see the same
attempt order); the saving is 1 - attempts(adaptive) / attempts(full), over all lanes.
With strict majority at N=5 a decided prompt stops after 3 attempts, so 40% is the
ceiling.

    .venv/bin/python -m benchmarks.adaptive [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._common import figure, lanes_toml, synthetic_suite, verdict

GOAL_PCT = 35.0
#: flaky prompts' outcomes per attempt (True = pass), cycled
FLAKY = ([True, False, True, False, True], [False, True, False, False, True], [True, True, False, True, True])
#: lane -> (all-pass prompts, all-fail prompts); the rest of the 20 are the 3 flaky ones
LANES = {"strong": (13, 4), "middling": (9, 8), "weak": (5, 12)}


def _prompts(n: int) -> list[dict[str, Any]]:
    return [{"id": f"p{i:02d}", "prompt": f"Question {i:02d}: what is the code word?",
             "check": {"kind": "substring", "all": ["heron-42"]}} for i in range(n)]


def _scripts(n_pass: int, n_fail: int, n: int) -> dict[str, Any]:
    from hbench.testing import answer

    right, wrong = [answer("The code word is heron-42.")], [answer("I think it is egret-7.")]
    out: dict[str, Any] = {}
    for i in range(n):
        key = f"Question {i:02d}:"
        if i < n_pass:
            out[key] = right
        elif i < n_pass + n_fail:
            out[key] = wrong
        else:
            out[key] = {"attempts": [right if ok else wrong for ok in FLAKY[(i - n_pass - n_fail) % len(FLAKY)]]}
    return out


def _run(tmp: Path, suite: Path, n: int, runs: int, adaptive: bool, lanes: dict[str, tuple[int, int]]) -> list[Any]:
    from hbench.runner import RunOptions, run
    from hbench.testing import ScriptedServer

    servers = {name: ScriptedServer(_scripts(p, f, n)).start() for name, (p, f) in lanes.items()}
    try:
        cfg = lanes_toml(tmp / f"hbench-{adaptive}.toml", {k: s.url for k, s in servers.items()})
        result = run(RunOptions(config=str(cfg), lanes=",".join(lanes), suite=str(suite), runs=runs, adaptive=adaptive,
                                out=str(tmp / f"out-{adaptive}"), report="json", progress=False))
    finally:
        for s in servers.values():
            s.stop()
    if result.exit_code:
        raise RuntimeError(f"benchmark run failed: exit {result.exit_code}")
    return result.scorecards


def main(argv: list[str] | None = None) -> None:
    from hbench.scoring import rank

    ap = argparse.ArgumentParser(prog="python -m benchmarks.adaptive", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smallest configuration (seconds; for the smoke test)")
    args = ap.parse_args(argv)
    n, runs = 20, 5
    lanes = dict(LANES)
    if args.quick:
        n, lanes = 6, {"strong": (3, 1), "weak": (1, 3)}
    with tempfile.TemporaryDirectory(prefix="hbench-bench-") as d:
        tmp = Path(d)
        suite = synthetic_suite(tmp / "suite", _prompts(n), name="adaptive-bench", runs=runs)
        full = _run(tmp, suite, n, runs, False, lanes)
        fast = _run(tmp, suite, n, runs, True, lanes)

    def ranking(cards: list[Any]) -> list[tuple[Any, str]]:
        return [(r.rank, r.scorecard.lane["name"]) for r in rank(cards)]

    a_full = sum(c.attempts_run for c in full)
    a_fast = sum(c.attempts_run for c in fast)
    saved = 100 * (1 - a_fast / a_full)
    core_same = [c.core_pass for c in full] == [c.core_pass for c in fast]
    rank_same = ranking(full) == ranking(fast)
    print(f"{len(lanes)} lanes x {n} prompts x N={runs}; flaky prompts per lane: {len(FLAKY) if n > 6 else 2}")
    for f, a in zip(full, fast):
        print(f"  {f.lane['name']}: attempts {f.attempts_run} -> {a.attempts_run}; core_pass {f.core_pass}/{f.core_n}"
              f" -> {a.core_pass}/{a.core_n}; pass_rate {f.pass_rate:.3f} -> {a.pass_rate:.3f}")
    print(f"  rank without --adaptive: {ranking(full)}")
    print(f"  rank with --adaptive:    {ranking(fast)}")
    print(f"  core_pass unchanged: {'yes' if core_same else 'NO'}; rank unchanged: {'yes' if rank_same else 'NO'}")
    print(verdict(saved >= GOAL_PCT and core_same and rank_same))
    print(figure("adaptive_saved", saved, f"% fewer attempts ({a_full} -> {a_fast}; core_pass and rank "
                 f"{'unchanged' if core_same and rank_same else 'CHANGED'})", f">= {GOAL_PCT:g}%, same verdicts",
                 "{:.1f}"))


if __name__ == "__main__":
    main()
