"""Ranking lanes from their scorecards: which lanes are candidates, in what order, which are
statistically tied, what orders lanes tied on quality (``--prefer``), and which lanes miss
a CI threshold (``--fail-under``).

DESIGN.md, section Scoring: rank key: gate, core_pass, pass_rate, consistency, fewer
runaways, tok/s; lanes whose 95% pass-rate intervals overlap are marked statistically
tied. Only complete lanes that passed the gate are ranked. The per-prompt and per-lane
figures, and the gate verdict, are :mod:`hbench.scoring`'s.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import attrs

from hbench.models import Scorecard

#: the gate's statuses (``Scorecard.gate["status"]``, set by :func:`hbench.scoring.score_lane`):
#: a lane is ranked only when it passed
GATE_PASSED, GATE_FAILED, GATE_NOT_EVALUATED = "passed", "failed", "not evaluated"


@attrs.define
class Ranked:
    """One lane's place. ``rank`` is None when the lane is unrankable (``reason`` says why)."""

    rank: int | None
    scorecard: Scorecard
    tied_with: list[str] = attrs.field(factory=list)
    reason: str = ""
    #: set on the first lane of a group tied on quality: which preference ordered the
    #: group and by how much ("tied on quality; a ranks first: 31.8 GB vs 97.8 GB peak")
    decided_by: str = ""


def _lane_name(sc: Scorecard) -> str:
    return str(sc.lane.get("name", ""))


def _is_rankable(sc: Scorecard) -> bool:
    return bool(sc.rankable) and sc.failed is None and sc.core_n > 0 and bool(sc.complete)


def _key(sc: Scorecard) -> tuple[float, ...]:
    """Sort key, best first. core_pass is compared as a share of core_n, so a lane that
    ran fewer core prompts (a mixed comparison) is not punished for the count alone.
    Unknown consistency (one attempt per prompt) sorts as 0."""
    tok_s = sc.throughput.tok_s if sc.throughput is not None and sc.throughput.tok_s is not None else 0.0
    core_share = _core_share(sc)
    consistency = sc.consistency if sc.consistency is not None else 0.0
    return (-core_share, -sc.pass_rate, -consistency, sc.runaway_rate, -tok_s)


def _core_share(sc: Scorecard) -> float:
    return sc.core_pass / sc.core_n if sc.core_n else 0.0


def _overlap(a: Scorecard, b: Scorecard) -> bool:
    (alo, ahi), (blo, bhi) = a.pass_rate_ci95, b.pass_rate_ci95
    return alo <= bhi and blo <= ahi


def unranked_reason(sc: Scorecard) -> str:
    """Why a lane is not ranked, one line: failed to run, incomplete, or the gate."""
    if sc.failed:
        return f"lane failed to run: {sc.failed}"
    if not sc.complete:
        out = f"incomplete: {sc.incomplete_reason or 'not every planned attempt was scored'}"
        if sc.gate.get("status") == GATE_FAILED:  # evidence from the scored attempts: say it too
            out += f"; also {sc.gate.get('reason')}"
        return out
    return sc.gate.get("reason") or "unrankable"


#: --prefer: what orders lanes tied on quality
PREFERENCES = ("memory", "speed", "latency")


def _preference_value(sc: Scorecard, prefer: str, field: str) -> float | None:
    if prefer == "memory":
        v = getattr(sc.telemetry, field, None)
    elif prefer == "speed":
        v = sc.throughput.tok_s if sc.throughput is not None else None
        v = -v if v is not None else None  # higher is better
    else:
        v = sc.latency.p50_s if sc.latency is not None else None
    return float(v) if v is not None else None


#: memory in use, best measure first: unified (DGX Spark, Apple), dedicated GPU, the
#: lane server's RSS (CPU lanes)
_MEMORY_FIELDS = ("unified_used_gb_max", "gpu_mem_used_gb_max", "rss_gb_max")


def _preference_key(sc: Scorecard, prefer: str) -> tuple[float | None, ...]:
    fields = _MEMORY_FIELDS if prefer == "memory" else ("",)
    return tuple(_preference_value(sc, prefer, f) for f in fields)


def _by_preference(good: list[Scorecard], prefer: str) -> tuple[list[Scorecard], dict[str, str]]:
    """Reorder lanes sorted on quality so that, inside each group statistically tied on
    quality (a run of lanes in quality order with the same core share whose 95% pass-rate
    intervals all overlap each other), the declared preference decides: ``memory`` (lower peak memory in use), ``speed`` (higher tok/s) or
    ``latency`` (lower p50 attempt wall time). A group where some lane lacks the figure
    keeps the quality order. Returns the order and, per group head, the line saying what
    decided."""
    if prefer not in PREFERENCES:
        raise ValueError(f"unknown preference {prefer!r} (choose one of {', '.join(PREFERENCES)})")
    groups: list[list[Scorecard]] = []
    for sc in good:
        # core_pass is the first rank key: a lane that passes more core prompts is never
        # reordered below one that passes fewer, whatever the preference
        if groups and all(_overlap(member, sc) and _core_share(member) == _core_share(sc)
                          for member in groups[-1]):
            groups[-1].append(sc)
        else:
            groups.append([sc])
    order: list[Scorecard] = []
    lines: dict[str, str] = {}
    for g in groups:
        if len(g) < 2:
            order += g
            continue
        fields = _MEMORY_FIELDS if prefer == "memory" else ("",)
        field = next((f for f in fields if all(_preference_value(sc, prefer, f) is not None for sc in g)), None)
        if field is None:
            order += g
            lines[_lane_name(g[0])] = (f"tied on quality; no {prefer} figure for every tied lane, "
                                       f"so {_lane_name(g[0])} ranks first on quality")
            continue
        g = sorted(g, key=lambda sc: _preference_value(sc, prefer, field))  # stable: quality order on equal
        a, b = g[0], g[1]
        va, vb = _preference_value(a, prefer, field), _preference_value(b, prefer, field)
        if prefer == "memory":
            what = {"unified_used_gb_max": "peak", "gpu_mem_used_gb_max": "peak GPU memory",
                    "rss_gb_max": "peak server RSS"}[field]
            by = f"{va:.1f} GB vs {vb:.1f} GB {what}"
        elif prefer == "speed":
            by = f"{-va:.1f} vs {-vb:.1f} tok/s"
        else:
            by = f"{va:.2f} s vs {vb:.2f} s p50 latency"
        lines[_lane_name(a)] = f"tied on quality; {_lane_name(a)} ranks first: {by} (--prefer {prefer})"
        order += g
    return order, lines


def rank(scorecards: Iterable[Scorecard], prefer: str = "memory") -> list[Ranked]:
    """Rank lanes: rankable ones first (1 = best), then unrankable ones with ``rank=None``.

    Only complete lanes that passed the gate are ranked. The result does not depend on the
    input order (ties on every key fall back to the lane name and share a rank). Among
    lanes statistically tied on quality, ``prefer`` (memory, speed or latency) decides the
    order (:func:`_by_preference`); ``decided_by`` on the group's first lane says how.
    ``tied_with`` lists the other rankable lanes whose 95% pass-rate intervals overlap this
    lane's: the data cannot tell them apart.
    """
    cards = list(scorecards)
    good = sorted((c for c in cards if _is_rankable(c)), key=lambda c: (_key(c), _lane_name(c)))
    bad = sorted((c for c in cards if not _is_rankable(c)), key=lambda c: (_key(c), _lane_name(c)))
    good, decided = _by_preference(good, prefer)

    out: list[Ranked] = []
    prev_key: tuple[Any, ...] | None = None
    prev_rank = 0
    for i, sc in enumerate(good, start=1):
        k = (_key(sc), _preference_key(sc, prefer))
        r = prev_rank if k == prev_key else i
        prev_key, prev_rank = k, r
        tied = sorted(_lane_name(o) for o in good if o is not sc and _overlap(sc, o))
        reason = ""
        if tied:
            reason = f"statistically tied with {', '.join(tied)} (95% pass-rate intervals overlap)"
        out.append(Ranked(rank=r, scorecard=sc, tied_with=tied, reason=reason,
                          decided_by=decided.get(_lane_name(sc), "")))
    for sc in bad:
        out.append(Ranked(rank=None, scorecard=sc, tied_with=[], reason=unranked_reason(sc)))
    return out


# --------------------------------------------------------------------------- CI gates (--fail-under)

#: metrics --fail-under knows, and how each is read off a scorecard
FAIL_UNDER_METRICS = ("core_pass", "pass_rate")


def fail_under_failures(ranked: Iterable[Ranked], thresholds: Mapping[str, float]) -> list[str]:
    """``--fail-under``: one line per lane that misses a threshold (``lane 'a': core_pass
    5 < 6``). Only complete lanes are judged here (incomplete and failed lanes have exit
    codes of their own); a complete lane that is not ranked (a gate failed or was not
    evaluated) misses every threshold, since it is not a candidate at all."""
    out = []
    for r in ranked:
        sc = r.scorecard
        if sc.failed or not sc.complete:
            continue
        name = _lane_name(sc)
        if r.rank is None:
            out.append(f"lane {name!r}: not ranked ({r.reason})")
            continue
        misses = []
        for metric, bar in thresholds.items():
            value = getattr(sc, metric)
            if value < bar:
                shown = f"{value}" if metric == "core_pass" else f"{value:.3f}"
                misses.append(f"{metric} {shown} < {bar:g}")
        if misses:
            out.append(f"lane {name!r}: {', '.join(misses)}")
    return out
