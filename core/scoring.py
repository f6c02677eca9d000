"""Pure scoring: from attempts to numbers. No I/O, no clock, no randomness.

DESIGN.md, section Scoring, is the contract:

* an attempt passes when the expected tool was called (when ``expect_tool_any`` is
  non-empty), the check passed, and there was no runaway and no error;
* per prompt: ``pass_rate``, ``pass_hat_k`` (``C(c,k)/C(n,k)``), ``agreement``,
  ``correct_tool_rate``, ``runaway_rate``, ``format_errors``, wall times;
* per lane, over the core prompts that ran: ``core_pass``/``core_n`` (strict majority),
  mean ``pass_rate`` with a 95% Wilson interval, ``consistency`` (mean agreement),
  ``runaway_rate``, ``correct_tool_rate``, latency percentiles;
* honesty is a gate: a lane that fails any gate prompt by majority is unrankable;
* rank key: gate, core_pass, pass_rate, consistency, fewer runaways, tok/s; lanes whose
  intervals overlap are marked statistically tied.

Skipped prompts (conditional, ``--core-only``) count nowhere, never as failures.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import attrs

from hbench.checks import normalise
from hbench.models import AttemptSummary, Latency, PromptScore, Scorecard

if TYPE_CHECKING:  # pragma: no cover
    from hbench.models import Attempt, Prompt

#: z for a two-sided 95% interval
Z95 = 1.959963984540054


# --------------------------------------------------------------------------- attempts


def tool_satisfied(
    expect_tool_any: Iterable[str],
    called_names: Iterable[str],
    aliases: Mapping[str, Iterable[str]] | None = None,
) -> bool:
    """True when some token of ``expect_tool_any`` matches some called tool.

    A token matches a called name when it equals it or is a substring of it,
    case-insensitively. ``aliases`` maps a called tool name to extra tokens it satisfies
    (Hermes' ``search_files`` -> ``list``, ``glob``, ``grep``); alias tokens match the
    same way. An empty ``expect_tool_any`` needs no tool: always True.
    """
    tokens = [t.casefold() for t in expect_tool_any if t and t.strip()]
    if not tokens:
        return True
    aliases = aliases or {}
    alias_cf = {k.casefold(): v for k, v in aliases.items()}
    candidates: list[str] = []
    for name in called_names:
        if not name:
            continue
        candidates.append(name.casefold())
        extra = aliases.get(name)
        if extra is None:
            extra = alias_cf.get(name.casefold(), ())
        candidates.extend(e.casefold() for e in extra)
    return any(tok in cand for tok in tokens for cand in candidates)


def attempt_outcome(
    attempt: Attempt, prompt: Prompt, aliases: Mapping[str, Iterable[str]] | None = None
) -> tuple[bool, bool]:
    """``(tool_ok, passed)`` for one attempt whose ``check`` result is already set."""
    # A hallucinated tool (one the agent does not offer) did nothing: it cannot satisfy
    # expect_tool_any just because its invented name contains the token.
    called = [tc.name for tc in attempt.tool_calls if not (tc.error or "").startswith("unknown tool")]
    tool_ok = tool_satisfied(prompt.expect_tool_any, called, aliases)
    check_ok = attempt.check is not None and bool(attempt.check.passed)
    passed = tool_ok and check_ok and attempt.runaway is None and attempt.error is None
    return tool_ok, passed


def _attempt_passed(a: Attempt) -> bool:
    # The runner sets ``passed`` with attempt_outcome; re-assert the hard rules here so a
    # driver that forgot to clear it cannot count a runaway or an error as a pass.
    return bool(a.passed) and a.runaway is None and a.error is None


# --------------------------------------------------------------------------- numbers


def pass_hat_k(c: int, n: int, k: int) -> float:
    """Probability that k attempts drawn without replacement from n (c passing) all pass."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_hat_k needs 0 <= c <= n and 1 <= k <= n (got c={c}, n={n}, k={k})")
    return math.comb(c, k) / math.comb(n, k)


def agreement(answers: Sequence[str]) -> float:
    """Share of answers equal (after normalising) to the most common one; 0.0 when none."""
    if not answers:
        return 0.0
    counts = Counter(normalise(a) for a in answers)
    return max(counts.values()) / len(answers)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for k successes in n trials (95% by default).

    ``n == 0`` gives ``(0.0, 1.0)``: no data, no information.
    """
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"wilson needs 0 <= k <= n (got k={k}, n={n})")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = (z / denom) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    # Guard rounding at the edges so the interval always holds the point estimate.
    return min(lo, p), max(hi, p)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return float(xs[0])
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


# --------------------------------------------------------------------------- prompts


def _gate_of(prompt: Prompt) -> str | None:
    gate = getattr(type(prompt.check), "gate", None)
    return gate if isinstance(gate, str) and gate else None


def score_prompt(prompt: Prompt, attempts: Sequence[Attempt], skipped: str | None = None) -> PromptScore:
    """Score one prompt's attempts. ``skipped`` (why it did not run) yields an empty score
    that lane scoring ignores."""
    gate = _gate_of(prompt)
    if skipped is not None or not attempts:
        return PromptScore(
            id=prompt.id, category=prompt.category, core=prompt.core, runs=0, passes=0,
            pass_rate=0.0, pass_hat_k={}, agreement=0.0, correct_tool_rate=0.0,
            runaway_rate=0.0, format_errors=0, errors=0, majority_pass=False, gate=gate,
            skipped=skipped if skipped is not None else "no attempts ran",
        )
    ordered = sorted(attempts, key=lambda a: a.n)
    n = len(ordered)
    c = sum(_attempt_passed(a) for a in ordered)
    walls = [a.wall_s for a in ordered]
    summaries = [
        AttemptSummary(
            n=a.n, passed=_attempt_passed(a), runaway=a.runaway, error=a.error, answer=a.answer,
            tools=[tc.name for tc in a.tool_calls], wall_s=a.wall_s,
            why=a.check.why if a.check is not None else (a.error or a.runaway or ""),
        )
        for a in ordered
    ]
    return PromptScore(
        id=prompt.id,
        category=prompt.category,
        core=prompt.core,
        runs=n,
        passes=c,
        pass_rate=c / n,
        pass_hat_k={str(k): pass_hat_k(c, n, k) for k in range(1, n + 1)},
        agreement=agreement([a.answer for a in ordered]),
        correct_tool_rate=sum(bool(a.tool_ok) for a in ordered) / n,
        runaway_rate=sum(a.runaway is not None for a in ordered) / n,
        format_errors=sum(a.format_errors for a in ordered),
        errors=sum(a.error is not None for a in ordered),
        majority_pass=2 * c > n,
        gate=gate,
        skipped=None,
        wall_s={"p50": percentile(walls, 50) or 0.0, "max": max(walls)},
        attempts=summaries,
    )


# --------------------------------------------------------------------------- lanes


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def score_lane(
    lane: dict[str, Any],
    suite: dict[str, Any],
    prompt_scores: Sequence[PromptScore],
    runs: int,
    adaptive: bool = False,
) -> Scorecard:
    """The lane's scorecard, except throughput, telemetry and provenance (the runner's).

    Lane figures are over the core prompts that ran. The honesty gate looks at every gate
    prompt that ran, core or not. ``pass_rate`` is the mean of the prompts' pass rates;
    ``pass_rate_ci95`` is the Wilson interval over all core attempts pooled (the two agree
    when every prompt ran the same number of times, i.e. without ``--adaptive``).
    """
    ran = [p for p in prompt_scores if p.skipped is None and p.runs > 0]
    core = [p for p in ran if p.core]
    attempts_core = sum(p.runs for p in core)
    passes_core = sum(p.passes for p in core)
    lo, hi = wilson(passes_core, attempts_core)

    k_max = min((p.runs for p in core), default=0)
    lane_hat = {str(k): _mean([p.pass_hat_k[str(k)] for p in core]) for k in range(1, k_max + 1)}

    def rate(attr: str) -> float:
        if not attempts_core:
            return 0.0
        return sum(getattr(p, attr) * p.runs for p in core) / attempts_core

    walls = [a.wall_s for p in core for a in p.attempts]

    gate_failed = [p.id for p in ran if p.gate and not p.majority_pass]
    reasons = []
    if gate_failed:
        kinds = sorted({p.gate for p in ran if p.id in gate_failed})
        # say what the lane actually did (an invented fact, an empty answer, prose that
        # never declines), from the first failing attempt of each gate prompt
        whys = []
        for p in ran:
            if p.id in gate_failed:
                why = next((a.why or a.error or a.runaway for a in p.attempts if not a.passed), None)
                whys.append(f"{p.id}: {why}" if why else p.id)
        reasons.append(
            f"failed the {'/'.join(kinds)} gate by majority ({'; '.join(whys)}): a brain must say "
            "it does not know what no file holds"
        )
    if not core:
        reasons.append("no core prompt ran, nothing to rank on")
    gate = {"passed": not gate_failed, "failed": gate_failed, "reason": "; ".join(reasons)}

    return Scorecard(
        lane=dict(lane),
        suite=dict(suite),
        runs=runs,
        core_pass=sum(p.majority_pass for p in core),
        core_n=len(core),
        pass_rate=_mean([p.pass_rate for p in core]),
        pass_rate_ci95=[lo, hi],
        pass_hat_k=lane_hat,
        consistency=_mean([p.agreement for p in core]),
        runaway_rate=rate("runaway_rate"),
        correct_tool_rate=rate("correct_tool_rate"),
        format_error_rate=(sum(p.format_errors for p in core) / attempts_core) if attempts_core else 0.0,
        rankable=not gate_failed and bool(core),
        gate=gate,
        latency=Latency(p50_s=percentile(walls, 50), p95_s=percentile(walls, 95), max_s=max(walls) if walls else None),
        prompts=list(prompt_scores),
        adaptive=adaptive,
        attempts_run=sum(p.runs for p in ran),
        error_rate=(sum(p.errors for p in core) / attempts_core) if attempts_core else 0.0,
    )


# --------------------------------------------------------------------------- ranking


@attrs.define
class Ranked:
    """One lane's place. ``rank`` is None when the lane is unrankable (``reason`` says why)."""

    rank: int | None
    scorecard: Scorecard
    tied_with: list[str] = attrs.field(factory=list)
    reason: str = ""


def _lane_name(sc: Scorecard) -> str:
    return str(sc.lane.get("name", ""))


def _is_rankable(sc: Scorecard) -> bool:
    return bool(sc.rankable) and sc.failed is None and sc.core_n > 0


def _key(sc: Scorecard) -> tuple[float, ...]:
    """Sort key, best first. core_pass is compared as a share of core_n, so a lane that
    ran fewer core prompts (a mixed comparison) is not punished for the count alone."""
    tok_s = sc.throughput.tok_s if sc.throughput is not None and sc.throughput.tok_s is not None else 0.0
    core_share = sc.core_pass / sc.core_n if sc.core_n else 0.0
    return (-core_share, -sc.pass_rate, -sc.consistency, sc.runaway_rate, -tok_s)


def _overlap(a: Scorecard, b: Scorecard) -> bool:
    (alo, ahi), (blo, bhi) = a.pass_rate_ci95, b.pass_rate_ci95
    return alo <= bhi and blo <= ahi


def rank(scorecards: Iterable[Scorecard]) -> list[Ranked]:
    """Rank lanes: rankable ones first (1 = best), then unrankable ones with ``rank=None``.

    The result does not depend on the input order (ties on every key fall back to the
    lane name and share a rank). ``tied_with`` lists the other rankable lanes whose 95%
    pass-rate intervals overlap this lane's: the data cannot tell them apart.
    """
    cards = list(scorecards)
    good = sorted((c for c in cards if _is_rankable(c)), key=lambda c: (_key(c), _lane_name(c)))
    bad = sorted((c for c in cards if not _is_rankable(c)), key=lambda c: (_key(c), _lane_name(c)))

    out: list[Ranked] = []
    prev_key: tuple[float, ...] | None = None
    prev_rank = 0
    for i, sc in enumerate(good, start=1):
        k = _key(sc)
        r = prev_rank if k == prev_key else i
        prev_key, prev_rank = k, r
        tied = sorted(_lane_name(o) for o in good if o is not sc and _overlap(sc, o))
        reason = ""
        if tied:
            reason = f"statistically tied with {', '.join(tied)} (95% pass-rate intervals overlap)"
        out.append(Ranked(rank=r, scorecard=sc, tied_with=tied, reason=reason))
    for sc in bad:
        if sc.failed:
            reason = f"lane failed to run: {sc.failed}"
        else:
            reason = sc.gate.get("reason") or "unrankable"
        out.append(Ranked(rank=None, scorecard=sc, tied_with=[], reason=reason))
    return out
