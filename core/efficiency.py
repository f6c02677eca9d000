"""What a solve costs, from the suite's own attempts (pure; issue 21).

A tok/s figure says how fast a lane talks, not what one *solved* task costs. From the
scored attempts of a lane (errored ones are the stack's and count nowhere):

* ``s_per_solved``: all seconds the scored attempts took, over the number solved (the
  wall time one solve costs, failures included); ``solved_wall_s_mean`` is the mean of
  the solved attempts alone;
* ``completion_tokens_per_solved`` / ``solved_completion_tokens_mean``: the same for
  generated tokens;
* ``goodput``: the share of scored attempts solved within the SLO (``--slo-s``, default
  the attempt timeout), and ``slo_s`` itself;
* ``turn_p50_s`` / ``turn_p95_s``: per model turn (one request and its answer), beside
  the per-attempt latency percentiles.
"""

from __future__ import annotations

from typing import Any, Iterable

from hbench.scoring import percentile


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


def efficiency(attempts: Iterable[Any], slo_s: float | None) -> dict[str, Any]:
    """The figures above for ``attempts`` (objects with passed, error, wall_s,
    completion_tokens and turns[].wall_s)."""
    scored = [a for a in attempts if getattr(a, "error", None) is None]
    solved = [a for a in scored if a.passed]
    walls = [float(a.wall_s or 0.0) for a in scored]
    tokens = [int(a.completion_tokens or 0) for a in scored]
    turns = [float(t.wall_s) for a in scored for t in (a.turns or []) if getattr(t, "wall_s", None) is not None]
    n = len(solved)
    within = [a for a in solved if slo_s is None or float(a.wall_s or 0.0) <= slo_s]
    return {
        "scored": len(scored), "solved": n,
        "s_per_solved": _r(sum(walls) / n) if n else None,
        "solved_wall_s_mean": _r(sum(float(a.wall_s or 0.0) for a in solved) / n) if n else None,
        "completion_tokens_per_solved": _r(sum(tokens) / n, 1) if n else None,
        "solved_completion_tokens_mean": _r(sum(int(a.completion_tokens or 0) for a in solved) / n, 1) if n else None,
        "slo_s": slo_s, "goodput": _r(len(within) / len(scored), 4) if scored else None,
        "turn_p50_s": _r(percentile(turns, 50)), "turn_p95_s": _r(percentile(turns, 95)), "turns": len(turns),
    }
