"""Discriminating power: how often hbench's rank puts the truly better of two lanes first.

No real model. Two simulated lanes whose *true* pass rates (the mean over the suite's
core prompts of each prompt's success probability) differ by 10 or by 5 points run the
bundled suites (hermes-brain v1: 8 core prompts; v2: 41) at N = 3, 5 and 10 attempts a
prompt and with ``--adaptive`` (N = 5, a prompt stops once its strict-majority verdict
is decided). Per configuration, ``REPS`` independent runs; reported: the share of runs
where the better lane ranks strictly first (a shared rank counts as a miss), the share
where it also is not marked statistically tied, and the attempts spent per lane.

The lane model (item response theory, the usual model of "skill vs difficulty"): prompt j
has a difficulty ``b_j ~ N(0, 1)``, lane i a skill ``theta_i``, and each lane-prompt pair a
personal twist ``e_ij ~ N(0, 0.5)`` (lanes are not better at everything); one attempt
passes with probability ``sigmoid(theta_i - b_j + e_ij)``, independently. ``theta_i`` is
solved so the lane's true pass rate is exactly its target (0.75 for the better lane, 0.65
or 0.70 for the other). Both lanes are honest: honesty (gate) prompts pass with
probability 1, so the figure measures the quality ranking, not the gate. The same model
and the same targets are used for v1 and v2; only the prompts differ.

Attempt outcomes are drawn here, and scored by hbench's own functions (``score_prompt``,
``score_lane``, ``rank`` from ``hbench.scoring``), so a simulated run is ranked exactly as
a real one. That this is so is checked, not assumed: one configuration (v2, two lanes,
N = 3, with and without ``--adaptive``) is also run through the real runner against two
scripted servers whose every attempt is the right or the wrong scripted answer
(``benchmarks/_brain_scripts.py``) as drawn; per lane, core_pass, pass_rate, its interval,
attempts and the rank must equal the simulation's.

    .venv/bin/python -m benchmarks power [--quick] [--reps N] [--seed S]
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import figure, lanes_toml, quiet_logs, verdict

GOAL_PCT = 90.0
BETTER = 0.75
GAPS = (0.10, 0.05)
NS = (3, 5, 10)
ADAPTIVE_N = 5
REPS = 1000
QUICK_REPS = 60
TWIST_SD = 0.5


# --------------------------------------------------------------------------- lanes


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _solve_theta(offsets: list[float], n_gate: int, target: float) -> float:
    """theta such that mean(sigmoid(theta + offsets)) over all core prompts, the gate
    prompts counting 1.0, equals ``target`` (bisection; the mean is increasing in theta)."""
    n = len(offsets) + n_gate
    lo, hi = -20.0, 20.0
    for _ in range(80):
        mid = (lo + hi) / 2
        mean = (sum(_sigmoid(mid + o) for o in offsets) + n_gate) / n
        lo, hi = (mid, hi) if mean < target else (lo, mid)
    return (lo + hi) / 2


def lane_probs(rng: random.Random, prompts: list[Any], difficulty: dict[str, float], target: float) -> dict[str, float]:
    """Per-prompt success probabilities of one lane with true pass rate ``target``."""
    gates = [p for p in prompts if _is_gate(p)]
    rest = [p for p in prompts if not _is_gate(p)]
    offsets = [-difficulty[p.id] + rng.gauss(0.0, TWIST_SD) for p in rest]
    theta = _solve_theta(offsets, len(gates), target)
    probs = {p.id: _sigmoid(theta + o) for p, o in zip(rest, offsets)}
    probs.update({p.id: 1.0 for p in gates})
    return probs


def _is_gate(prompt: Any) -> bool:
    return bool(getattr(type(prompt.check), "gate", None))


def draw(rng: random.Random, probs: dict[str, float], n: int) -> dict[str, list[bool]]:
    """n attempt outcomes per prompt."""
    return {pid: [rng.random() < p for _ in range(n)] for pid, p in probs.items()}


def adaptive_prefix(outcomes: list[bool], runs: int) -> list[bool]:
    """The attempts ``--adaptive`` runs at concurrency 1: in order, until the strict-majority
    verdict of ``runs`` attempts can no longer change (hbench.runner's rule)."""
    done: list[bool] = []
    for o in outcomes[:runs]:
        done.append(o)
        passes, left = sum(done), runs - len(done)
        if 2 * passes > runs or 2 * (passes + left) <= runs:
            break
    return done


# --------------------------------------------------------------------------- scoring


class Scorer:
    """hbench's scoring on drawn outcomes. ``score_prompt`` depends only on how many
    attempts ran and which passed (answers are "right"/"wrong"), so prompt scores are
    cached per (prompt, outcomes)."""

    def __init__(self, suite: Any):
        self.suite = suite
        self.core = [p for p in suite.prompts if p.core and not p.conditional]
        self._cache: dict[tuple[str, tuple[bool, ...]], Any] = {}
        self.suite_info = {"name": suite.name, "version": suite.version, "sha256": suite.sha256,
                           "fixtures_sha256": suite.fixtures_sha256}

    def prompt_score(self, prompt: Any, outcomes: tuple[bool, ...]) -> Any:
        from hbench.models import Attempt, CheckResult
        from hbench.scoring import score_prompt

        key = (prompt.id, outcomes)
        hit = self._cache.get(key)
        if hit is None:
            attempts = [Attempt(lane="sim", prompt_id=prompt.id, n=i + 1, answer="right" if ok else "wrong",
                                check=CheckResult(ok, "simulated"), passed=ok, wall_s=1.0)
                        for i, ok in enumerate(outcomes)]
            hit = self._cache[key] = score_prompt(prompt, attempts)
        return hit

    def scorecard(self, name: str, outcomes: dict[str, list[bool]], runs: int, adaptive: bool) -> Any:
        from hbench.scoring import score_lane

        scores = [self.prompt_score(p, tuple(outcomes[p.id])) for p in self.core]
        return score_lane({"name": name, "kind": "openai", "model": "simulated", "base_url": ""}, self.suite_info,
                          scores, runs, adaptive=adaptive)


def ranked_first(cards: list[Any], better: str) -> tuple[bool, bool]:
    """(the better lane ranks strictly first, and is not statistically tied)."""
    from hbench.scoring import rank

    ranked = rank(cards)
    mine = next(r for r in ranked if r.scorecard.lane["name"] == better)
    others = [r for r in ranked if r is not mine]
    first = mine.rank is not None and all(o.rank is None or o.rank > mine.rank for o in others)
    return first, first and not mine.tied_with


# --------------------------------------------------------------------------- one config


def simulate(scorer: Scorer, rng: random.Random, gap: float, runs: int, adaptive: bool, reps: int) -> dict[str, float]:
    difficulty_rng = rng
    first = separated = 0
    attempts = 0
    for _ in range(reps):
        difficulty = {p.id: difficulty_rng.gauss(0.0, 1.0) for p in scorer.core}
        pa = lane_probs(rng, scorer.core, difficulty, BETTER)
        pb = lane_probs(rng, scorer.core, difficulty, BETTER - gap)
        cards = []
        for name, probs in (("better", pa), ("worse", pb)):
            out = draw(rng, probs, runs)
            if adaptive:
                out = {k: adaptive_prefix(v, runs) for k, v in out.items()}
            attempts += sum(len(v) for v in out.values())
            cards.append(scorer.scorecard(name, out, runs, adaptive))
        f, s = ranked_first(cards, "better")
        first += f
        separated += s
    return {"first": 100.0 * first / reps, "separated": 100.0 * separated / reps, "attempts": attempts / (2 * reps)}


# --------------------------------------------------------------------------- the real runner


def real_check(scorer: Scorer, rng: random.Random, runs: int, adaptive: bool, tmp: Path) -> tuple[bool, str]:
    """Run two lanes through hbench's runner against scripted servers with drawn outcomes;
    compare with the simulation's scoring of the same draws."""
    import attrs

    from benchmarks._brain_scripts import CASES, scripts
    from hbench.models import Telemetry
    from hbench.runner import RunOptions, run
    from hbench.scoring import rank
    from hbench.testing import ScriptedServer

    known = {c.id for c in CASES}
    missing = [p.id for p in scorer.core if p.id not in known]
    if missing:
        return False, f"no scripted answers for {', '.join(missing)}"
    difficulty = {p.id: rng.gauss(0.0, 1.0) for p in scorer.core}
    plans = {"better": draw(rng, lane_probs(rng, scorer.core, difficulty, BETTER), runs),
             "worse": draw(rng, lane_probs(rng, scorer.core, difficulty, BETTER - GAPS[0]), runs)}
    servers = {name: ScriptedServer(scripts(plan)).start() for name, plan in plans.items()}
    try:
        cfg = lanes_toml(tmp / f"hbench-{adaptive}.toml", {k: s.url for k, s in servers.items()})
        result = run(RunOptions(config=str(cfg), lanes="better,worse", suite=str(scorer.suite.path), runs=runs,
                                adaptive=adaptive, concurrency=1, out=str(tmp / f"out-{adaptive}"), report="json",
                                progress=False, core_only=True))
    finally:
        for s in servers.values():
            s.stop()
    real = {c.lane["name"]: c for c in result.scorecards}
    sim = {}
    for name, plan in plans.items():
        out = {k: adaptive_prefix(v, runs) for k, v in plan.items()} if adaptive else plan
        sim[name] = scorer.scorecard(name, out, runs, adaptive)
    lines, ok = [], True
    for name in plans:
        r, s = real.get(name), sim[name]
        if r is None:
            return False, f"lane {name} has no scorecard (exit {result.exit_code})"
        fields = ("core_pass", "core_n", "attempts_run")
        same = all(getattr(r, f) == getattr(s, f) for f in fields)
        same = same and math.isclose(r.pass_rate, s.pass_rate, abs_tol=1e-9)
        same = same and all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(r.pass_rate_ci95, s.pass_rate_ci95))
        ok &= same
        lines.append(f"{name}: real core_pass {r.core_pass}/{r.core_n} pass_rate {r.pass_rate:.4f} attempts {r.attempts_run}"
                     f" | simulated {s.core_pass}/{s.core_n} {s.pass_rate:.4f} {s.attempts_run}"
                     f" {'same' if same else 'DIFFERENT'}")
        if not same:
            bad = [(p.id, p.passes, p.runs, [a.why for a in p.attempts if not a.passed][:1])
                   for p in r.prompts if p.skipped is None and p.passes != sum(plan_of(plans[name], p.id, runs, adaptive))]
            lines.append(f"   prompts that differ: {bad[:5]}")
    # Simulated lanes have no memory figures, so lanes tied on quality keep the quality
    # order; the two scripted servers' memory readings (one process, noise) would decide
    # such a tie in the real run (--prefer memory). Compare the quality ranking.
    quality = [attrs.evolve(c, telemetry=Telemetry()) for c in result.scorecards]
    order_real = [(x.rank, x.scorecard.lane["name"]) for x in rank(quality)]
    order_sim = [(x.rank, x.scorecard.lane["name"]) for x in rank(list(sim.values()))]
    ok &= order_real == order_sim
    lines.append(f"rank real {order_real} | simulated {order_sim}")
    return ok, "\n".join("   " + x for x in lines)


def plan_of(plan: dict[str, list[bool]], pid: str, runs: int, adaptive: bool) -> list[bool]:
    return adaptive_prefix(plan[pid], runs) if adaptive else plan[pid]


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    from hbench.plugin_manager import get_registries
    from hbench.suite import load_suite

    ap = argparse.ArgumentParser(prog="python -m benchmarks.power", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smallest configuration (seconds; for the smoke test)")
    ap.add_argument("--reps", type=int, default=None, help=f"simulated runs per configuration (default {REPS})")
    ap.add_argument("--seed", type=int, default=17)
    args = ap.parse_args(argv)
    quiet_logs()
    reps = args.reps or (QUICK_REPS if args.quick else REPS)
    reg = get_registries()
    suites = {"v1": Scorer(load_suite("hermes-brain-v1", reg)), "v2": Scorer(load_suite("hermes-brain", reg))}
    t0 = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="hbench-power-") as d:
        tmp = Path(d)
        checks = [(3, False), (3, True)] if not args.quick else [(1, False)]
        matched = 0
        print("simulation vs the real runner (hermes-brain v2, two scripted lanes 10 points apart):")
        for i, (runs, adaptive) in enumerate(checks):
            ok, detail = real_check(suites["v2"], random.Random(args.seed + 1000 + i), runs, adaptive, tmp)
            matched += ok
            print(f"  N={runs}{' adaptive' if adaptive else ''}: {'identical' if ok else 'DIFFERENT'}\n{detail}")

    rows = []
    print(f"\n{reps} simulated runs per cell; better lane's true pass rate {BETTER:.2f}; "
          "cells: ranked first % (first and not tied %), attempts per lane")
    configs = [(n, False) for n in NS] + [(ADAPTIVE_N, True)]
    header = "| gap | suite (core prompts) | " + " | ".join(f"N={n}{' adaptive' if a else ''}" for n, a in configs) + " |"
    print(header)
    print("|" + "---|" * (2 + len(configs)))
    results: dict[tuple[str, float, int, bool], dict[str, float]] = {}
    for gap in GAPS:
        for name, scorer in suites.items():
            cells = []
            for n, adaptive in configs:
                rng = random.Random(f"{args.seed}-{name}-{gap}-{n}-{adaptive}")
                r = simulate(scorer, rng, gap, n, adaptive, reps)
                results[(name, gap, n, adaptive)] = r
                cells.append(f"{r['first']:.1f}% ({r['separated']:.1f}%), {r['attempts']:.0f}")
            rows.append(f"| {gap * 100:.0f} pts | {name} ({len(scorer.core)}) | " + " | ".join(cells) + " |")
            print(rows[-1], flush=True)
    v2 = results[("v2", GAPS[0], 5, False)]["first"]
    v1 = results[("v1", GAPS[0], 5, False)]["first"]
    print(f"({time.monotonic() - t0:.0f} s)")
    print(figure("power_sim_match", 100.0 * matched / len(checks), "% of real-runner checks identical to the simulation",
                 "100%", "{:.0f}"))
    print(verdict(v2 >= GOAL_PCT))
    print(figure("power_pick_rate", v2, f"% of runs rank the better lane first (v2, N=5, 10 points apart; v1: {v1:.1f}%)",
                 f">= {GOAL_PCT:g}%", "{:.1f}"))


if __name__ == "__main__":
    main()
