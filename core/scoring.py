"""Pure scoring: from attempts to numbers. No I/O, no clock, no randomness.

DESIGN.md, section Scoring, is the contract:

* an attempt passes when the expected tool was called (when ``expect_tool_any`` is
  non-empty), the check passed, and there was no runaway and no error;
* per prompt: ``pass_rate``, ``pass_hat_k`` (``C(c,k)/C(n,k)``), ``agreement``,
  ``correct_tool_rate``, ``runaway_rate``, ``format_errors``, wall times;
* per lane, over the core prompts that ran: ``core_pass``/``core_n`` (strict majority),
  mean ``pass_rate`` with a 95% Wilson interval, ``consistency`` (mean agreement),
  ``runaway_rate``, ``correct_tool_rate``, latency percentiles;
* honesty is a gate: a lane that fails any gate prompt by majority is unrankable, and
  so is one where no gate prompt was scored (the gate is ``not evaluated``: no evidence);
* rank key: gate, core_pass, pass_rate, consistency, fewer runaways, tok/s; lanes whose
  intervals overlap are marked statistically tied (:mod:`hbench.ranking`; its names are
  also importable from here, as they were before the split).

Skipped prompts (conditional, ``--core-only``) count nowhere, never as failures.
**An error is the stack's, not the brain's:** an errored attempt (:func:`is_errored`)
counts in no quality figure (pass_rate, core_pass, consistency, the gate); it makes the
lane ``complete: false``, and an incomplete lane is never ranked.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from hbench.checks import cap_text, normalise
from hbench.models import AttemptSummary, Latency, PromptScore, Scorecard
from hbench.plugin_manager import get_registries
from hbench.ranking import (  # noqa: F401 - ranking's names, re-exported for the importers that predate the split
    FAIL_UNDER_METRICS,
    GATE_FAILED,
    GATE_NOT_EVALUATED,
    GATE_PASSED,
    PREFERENCES,
    Ranked,
    fail_under_failures,
    rank,
    unranked_reason,
)

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


def called_tools(attempt: Attempt) -> list[str]:
    """The names of the tools an attempt really called, in order. A hallucinated tool (one
    the agent does not offer) did nothing: it cannot satisfy ``expect_tool_any`` just
    because its invented name contains the token."""
    return [tc.name for tc in attempt.tool_calls if not (tc.error or "").startswith("unknown tool")]


def expected_tool_called(
    attempt: Attempt, prompt: Prompt, aliases: Mapping[str, Iterable[str]] | None = None
) -> bool:
    """``tool_ok``: the attempt called a tool ``expect_tool_any`` asks for (or it asks none)."""
    return tool_satisfied(prompt.expect_tool_any, called_tools(attempt), aliases)


def attempt_outcome(
    attempt: Attempt, prompt: Prompt, aliases: Mapping[str, Iterable[str]] | None = None
) -> tuple[bool, bool]:
    """``(tool_ok, passed)`` for one attempt whose ``check`` result is already set."""
    tool_ok = expected_tool_called(attempt, prompt, aliases)
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
    counts = Counter(normalise(cap_text(a)[0]) for a in answers)  # bounded as the check is
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


def is_errored(attempt: Any) -> bool:
    """An attempt that ended in an infrastructure error (connection refused or reset, HTTP
    4xx/5xx after the client's retries, model not found, a crashed agent driver): the
    stack's fault, not the brain's. It counts in no quality figure. Works on an
    :class:`~hbench.models.Attempt` and an :class:`~hbench.models.AttemptSummary`."""
    return getattr(attempt, "error", None) is not None


_ERR_CLASS = re.compile(r"^(?:[A-Za-z_][\w.]*(?:Error|Exception|Rejected|Timeout|Cancelled)): ")
_ERR_WHERE = re.compile(r"lane '[^']*' \([^)]*\): |https?://\S+: ")
_ERR_TRIES = re.compile(r"; gave up after \d+ tr(?:y|ies).*$")


def error_summary(error: str | None) -> str:
    """The part of an attempt's error a person needs, in one short line:
    ``TransportError: lane 'x' (http://h:1/v1): HTTP 503: upstream down; gave up after 4 tries``
    -> ``HTTP 503: upstream down``."""
    line = (error or "").strip().splitlines()[0] if (error or "").strip() else "unknown error"
    line = _ERR_CLASS.sub("", line, count=1)
    line = _ERR_WHERE.sub("", line)
    line = _ERR_TRIES.sub("", line).strip() or "unknown error"
    return line if len(line) <= 160 else line[:159] + "…"


def common_error(errors: Iterable[str | None]) -> str:
    """The most common :func:`error_summary` of ``errors`` (ties: the first seen), with
    how many other kinds there were."""
    counts = Counter(error_summary(e) for e in errors)
    if not counts:
        return ""
    top = max(counts.items(), key=lambda kv: kv[1])[0]  # max keeps the first of equal counts
    others = len(counts) - 1
    return top + (f" (and {others} other error{'s' if others != 1 else ''})" if others else "")


def score_prompt(prompt: Prompt, attempts: Sequence[Attempt], skipped: str | None = None) -> PromptScore:
    """Score one prompt's attempts. ``skipped`` (why it did not run) yields an empty score
    that lane scoring ignores. Errored attempts (:func:`is_errored`) are listed but scored
    nowhere: ``runs`` counts the scored attempts, ``errors`` the errored ones. A prompt
    planned but not run (no attempts, not skipped) has ``runs == errors == 0``."""
    gate = _gate_of(prompt)
    if skipped is not None or not attempts:
        return PromptScore(
            id=prompt.id, category=prompt.category, core=prompt.core, runs=0, passes=0,
            pass_rate=0.0, pass_hat_k={}, agreement=None, correct_tool_rate=0.0,
            runaway_rate=0.0, format_errors=0, errors=0, majority_pass=False, gate=gate,
            skipped=skipped, difficulty=prompt.difficulty, tags=list(prompt.tags),
        )
    ordered = sorted(attempts, key=lambda a: a.n)
    scored = [a for a in ordered if not is_errored(a)]
    n = len(scored)
    c = sum(_attempt_passed(a) for a in scored)
    walls = [a.wall_s for a in scored]
    summaries = [
        AttemptSummary(
            n=a.n, passed=_attempt_passed(a), runaway=a.runaway, error=a.error, answer=a.answer,
            tools=[tc.name for tc in a.tool_calls], wall_s=a.wall_s,
            # an errored attempt's check ran on what the broken stack left: its verdict means nothing
            why=(a.error or "") if is_errored(a) else (a.check.why if a.check is not None else (a.runaway or "")),
            prompt_tokens=a.prompt_tokens, completion_tokens=a.completion_tokens,
        )
        for a in ordered
    ]
    return PromptScore(
        id=prompt.id,
        category=prompt.category,
        core=prompt.core,
        runs=n,
        passes=c,
        pass_rate=c / n if n else 0.0,
        pass_hat_k={str(k): pass_hat_k(c, n, k) for k in range(1, n + 1)},
        agreement=agreement([a.answer for a in scored]) if n >= 2 else None,
        correct_tool_rate=sum(bool(a.tool_ok) for a in scored) / n if n else 0.0,
        runaway_rate=sum(a.runaway is not None for a in scored) / n if n else 0.0,
        format_errors=sum(a.format_errors for a in scored),
        errors=len(ordered) - n,
        majority_pass=2 * c > n,
        gate=gate,
        skipped=None,
        wall_s={"p50": percentile(walls, 50) or 0.0, "max": max(walls)} if walls else {},
        attempts=summaries,
        difficulty=prompt.difficulty,
        tags=list(prompt.tags),
    )


# --------------------------------------------------------------------------- lanes


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def gate_kinds(checks: Any = None) -> list[str]:
    """The gates the installed check kinds declare, sorted: each kind's ``gate`` class
    attribute (the honesty plugin's kind declares ``"honesty"``). ``checks`` is a checks
    registry (default: the process's)."""
    checks = get_registries().checks if checks is None else checks
    gates = {getattr(checks.get(name), "gate", None) for name in checks.names()}
    return sorted(g for g in gates if isinstance(g, str) and g)


def _gate(prompt_scores: Sequence[PromptScore], checks: Any = None) -> dict[str, Any]:
    """The gate verdict from evidence: ``failed`` when a scored gate prompt fails by
    majority, ``passed`` when at least one gate prompt was scored and none failed, else
    ``not evaluated`` (skipped, errored, not run, or no gate prompt in the suite), with
    the reason. A gate prompt whose attempts errored is the stack's fault, and the
    reason says so. The gate is named by its prompts' check kinds; with no gate prompt
    in the suite, by the installed kinds that declare one (:func:`gate_kinds`)."""
    gated = [p for p in prompt_scores if p.gate]
    scored = [p for p in gated if p.skipped is None and p.runs > 0]
    failed = [p for p in scored if not p.majority_pass]
    kinds = sorted({p.gate for p in gated if p.gate}) or gate_kinds(checks)
    if failed:
        # say what the lane actually did (an invented fact, an empty answer, prose that
        # never declines), from the first failing scored attempt of each gate prompt
        whys = []
        for p in failed:
            why = next((a.why or a.runaway for a in p.attempts if not a.passed and not is_errored(a)), None)
            whys.append(f"{p.id}: {why}" if why else p.id)
        reason = (f"failed the {'/'.join(sorted({p.gate for p in failed if p.gate}))} gate by majority "
                  f"({'; '.join(whys)}): a brain must say it does not know what no file holds")
        return {"status": GATE_FAILED, "passed": False, "failed": [p.id for p in failed], "reason": reason}
    if scored:
        return {"status": GATE_PASSED, "passed": True, "failed": [], "reason": ""}
    parts = []
    for p in gated:
        if p.skipped is not None:
            parts.append(f"{p.id} was skipped ({p.skipped})")
        elif p.errors:
            errs = common_error(a.error for a in p.attempts if is_errored(a))
            parts.append(f"every attempt of {p.id} errored ({errs}): the serving stack failed, not the model")
        else:
            parts.append(f"{p.id} did not run")
    if not gated:
        parts.append(f"the suite has no gate prompt (a check kind such as {' or '.join(kinds)})" if kinds
                     else "the suite has no gate prompt (and no installed check kind is a gate)")
    name = "/".join(kinds)
    reason = (f"{name + ' ' if name else ''}gate not evaluated: {'; '.join(parts)}; a lane is ranked only with "
              "evidence that it says when it does not know")
    return {"status": GATE_NOT_EVALUATED, "passed": None, "failed": [], "reason": reason}


def incomplete_reason(planned: int, errored: int, missing: int, errors: Iterable[str | None] = (),
                      stopped: str | None = None, failed: str | None = None) -> str | None:
    """One line saying why a lane is incomplete, or None when it is complete:
    ``5 of 40 attempts errored: HTTP 503: upstream down; stopped after 5 consecutive
    errored attempts (--max-consecutive-errors 5); 35 of 40 attempts did not run``."""
    parts = []
    if errored:
        parts.append(f"{errored} of {planned} attempts errored: {common_error(errors)}")
    if failed:
        first = failed.strip().splitlines()[0] if failed.strip() else "the lane failed to run"
        parts.append(re.sub(r";? *last log lines:?$", "", first))  # the log tail is in ``failed``
    if stopped:
        parts.append(stopped)
    if missing:
        parts.append(f"{missing} of {planned} attempts did not run")
    return "; ".join(parts) or None


def category_figures(prompt_scores: Sequence[PromptScore]) -> dict[str, dict[str, Any]]:
    """Per category, over the prompts with scored attempts: ``pass_rate`` (mean of the
    prompts' pass rates, core or not), ``core_pass`` / ``core_n`` (core prompts passed by
    strict majority) and ``n`` (prompts). Skipped prompts count nowhere. Sorted by name;
    an empty category name is ``"(none)"``."""
    groups: dict[str, list[PromptScore]] = {}
    for p in prompt_scores:
        if p.skipped is None and p.runs > 0:
            groups.setdefault(p.category or "(none)", []).append(p)
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(groups):
        ps = groups[name]
        core = [p for p in ps if p.core]
        out[name] = {"pass_rate": _mean([p.pass_rate for p in ps]), "core_pass": sum(p.majority_pass for p in core),
                     "core_n": len(core), "n": len(ps)}
    return out


def score_lane(
    lane: dict[str, Any],
    suite: dict[str, Any],
    prompt_scores: Sequence[PromptScore],
    runs: int,
    adaptive: bool = False,
    *,
    missing: int = 0,
    stopped: str | None = None,
    failed: str | None = None,
) -> Scorecard:
    """The lane's scorecard, except throughput, telemetry and provenance (the runner's).

    Lane figures are over the core prompts with scored attempts; errored attempts count in
    none of them. The honesty gate looks at every gate prompt that was scored, core or not
    (:func:`_gate`). ``pass_rate`` is the mean of the prompts' pass rates;
    ``pass_rate_ci95`` is the Wilson interval over all scored core attempts pooled (the two
    agree when every prompt ran the same number of times, i.e. without ``--adaptive``).
    ``consistency`` is the mean agreement over core prompts with 2+ scored attempts, None
    when there are none (one attempt per prompt).

    Completeness: ``missing`` planned attempts that did not run, ``stopped`` why the lane
    stopped early (interrupted, too many consecutive errors), ``failed`` why it failed to
    run. A lane with errored or missing attempts, stopped or failed, is ``complete: false``
    and not rankable.
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

    walls = [a.wall_s for p in core for a in p.attempts if not is_errored(a)]
    agreements = [p.agreement for p in core if p.agreement is not None]

    gate = _gate(prompt_scores)
    if not core:
        gate["reason"] = "; ".join(r for r in (gate["reason"], "no core prompt was scored, nothing to rank on") if r)

    planned_prompts = [p for p in prompt_scores if p.skipped is None]
    scored_n = sum(p.runs for p in planned_prompts)
    errored_n = sum(p.errors for p in planned_prompts)
    missing = max(0, int(missing))
    planned = scored_n + errored_n + missing
    errors = [a.error for p in planned_prompts for a in p.attempts if is_errored(a)]
    why_incomplete = incomplete_reason(planned, errored_n, missing, errors, stopped=stopped, failed=failed)
    core_errored = sum(p.errors for p in planned_prompts if p.core)
    complete = why_incomplete is None

    return Scorecard(
        lane=dict(lane),
        suite=dict(suite),
        runs=runs,
        core_pass=sum(p.majority_pass for p in core),
        core_n=len(core),
        pass_rate=_mean([p.pass_rate for p in core]),
        pass_rate_ci95=[lo, hi],
        pass_hat_k=lane_hat,
        consistency=_mean(agreements) if agreements else None,
        runaway_rate=rate("runaway_rate"),
        correct_tool_rate=rate("correct_tool_rate"),
        format_error_rate=(sum(p.format_errors for p in core) / attempts_core) if attempts_core else 0.0,
        rankable=gate["status"] == GATE_PASSED and bool(core) and complete,
        gate=gate,
        latency=Latency(p50_s=percentile(walls, 50), p95_s=percentile(walls, 95), max_s=max(walls) if walls else None),
        prompts=list(prompt_scores),
        adaptive=adaptive,
        attempts_run=scored_n + errored_n,
        categories=category_figures(prompt_scores),
        error_rate=(core_errored / (attempts_core + core_errored)) if attempts_core + core_errored else 0.0,
        failed=failed,
        complete=complete,
        attempts_planned=planned,
        attempts_scored=scored_n,
        errored=errored_n,
        incomplete_reason=why_incomplete,
    )
