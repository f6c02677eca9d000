"""Judging an attempt against a prompt's scenario fields (suite format 2): pure.

DESIGN.md, "Scenario fields (suite format 2)": ``forbid_tools``, ``expect_args``,
``turns`` (and the decoys a prompt offered) decide an attempt together with its check.
:func:`judge` gives the one :class:`~hbench.models.CheckResult` the runner records; its
``why`` names what went wrong (the expected tool not called, first; the forbidden call,
the argument mismatch, the ignored follow-up, the missing retry, the decoy). No I/O, no
clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from hbench.matching import args_match, describe
from hbench.models import CheckResult
from hbench.scoring import expected_tool_called

if TYPE_CHECKING:  # pragma: no cover
    from hbench.models import Attempt, Prompt

__all__ = ["judge", "run_check"]


def run_check(check: Any, answer: str) -> CheckResult:
    """``check.check(answer)``; a check that raises fails the attempt, never the run."""
    try:
        return check.check(answer)
    except Exception as exc:  # noqa: BLE001
        return CheckResult(False, f"check {type(check).__name__} failed: {type(exc).__name__}: {exc}")


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def judge(
    prompt: Prompt,
    attempt: Attempt,
    decoys: Iterable[str] = (),
    fail_first: Mapping[str, int] | None = None,
    check: Callable[[Any, str], CheckResult] = run_check,
    aliases: Mapping[str, Iterable[str]] | None = None,
) -> CheckResult:
    """The check result of one attempt, scenario fields included.

    When the attempt called none of the tools ``expect_tool_any`` asks for (``aliases``:
    the agent's, as :func:`hbench.scoring.attempt_outcome` uses them), that is the primary
    cause and the ``why`` names it first: ``expected tool not called: warranty_lookup
    (its calls: stock_level)``, then what else went wrong (or that the answer alone
    passed its check). A ``fail_first`` tool the prompt did not want is then never
    blamed for a missing retry. Otherwise see :func:`_verdict`.
    """
    if expected_tool_called(attempt, prompt, aliases):
        return _verdict(prompt, attempt, decoys, fail_first, check)
    names = list(dict.fromkeys(
        tc.name + (" (unknown tool)" if (tc.error or "").startswith("unknown tool") else "")
        for tc in attempt.tool_calls))
    wanted = " or ".join(t for t in prompt.expect_tool_any if t and t.strip())
    missed = (f"expected tool not called: {wanted} "
              f"({'its calls: ' + ', '.join(names) if names else 'no tool was called'})")
    rest = _verdict(prompt, attempt, decoys, None, check)
    if rest.passed:
        return CheckResult(False, f"{missed}; the answer alone passed its check ({rest.why})")
    return CheckResult(False, f"{missed}; {rest.why}")


def _verdict(
    prompt: Prompt,
    attempt: Attempt,
    decoys: Iterable[str],
    fail_first: Mapping[str, int] | None,
    check: Callable[[Any, str], CheckResult],
) -> CheckResult:
    """The scenario fields and the check. In order, the first failure is the ``why``:

    1. ``forbid_tools``: any call of a forbidden tool (``"*"``: any call) fails, whatever
       the answer;
    2. a call of a decoy tool (``decoys``: the decoys this prompt offered) fails: a decoy
       never holds the answer, so calling one is picking the wrong tool;
    3. ``expect_args``: some call of each named tool must carry matching arguments
       (:func:`hbench.matching.args_match`);
    4. ``turns``: the agent answered every follow-up, and each follow-up's own check
       passes on the answer to it;
    5. the prompt's check on the last answer. When it fails after follow-ups, the ``why``
       says the last follow-up was not followed; when a tool that fails its first calls on
       purpose (``fail_first``, by tool name) was never called past them, it says that.

    ``check(check_kind, answer)`` runs one check (the runner passes its bounded runner).
    """
    calls = list(attempt.tool_calls)
    forbidden = {n.casefold() for n in prompt.forbid_tools}
    for tc in calls:
        if "*" in forbidden or tc.name.casefold() in forbidden:
            rule = "no tool may be called" if "*" in forbidden else f"{tc.name} is forbidden"
            return CheckResult(False, f"forbidden call {tc.name}({describe(tc.arguments, 80)}): "
                                      f"{rule} in this prompt")
    decoy_set = set(decoys)
    for tc in calls:
        if tc.name in decoy_set:
            return CheckResult(False, f"called decoy tool {tc.name}({describe(tc.arguments, 80)}): a "
                                      "distractor that holds nothing here; the right tool was among those offered")
    for e in prompt.expect_args:
        mine = [tc for tc in calls if tc.name == e.tool]
        if not any(args_match(e.args, tc.arguments) for tc in mine):
            seen = (f"; its calls: {', '.join(describe(tc.arguments, 80) for tc in mine[:3])}" if mine
                    else f"; {e.tool} was never called")
            return CheckResult(False, f"argument mismatch: no call of {e.tool} carried {describe(e.args, 120)}{seen}")
    turns = tuple(prompt.turns)
    answers = list(attempt.answers)
    if turns:
        if len(answers) < len(turns) + 1:
            done = max(len(answers) - 1, 0)
            return CheckResult(False, f"ignored follow-up: answered {done} of {len(turns)} follow-ups "
                                      f"(no answer to {_short(turns[done].say)!r})")
        for i, t in enumerate(turns):
            if t.check is None:
                continue
            r = check(t.check, answers[i + 1])
            if not r.passed:
                return CheckResult(False, f"ignored follow-up {i + 1} ({_short(t.say)!r}): {r.why}")
    last = answers[-1] if turns else attempt.answer
    r = check(prompt.check, last)
    if r.passed:
        return r
    why = r.why
    if turns:
        why = f"ignored follow-up {len(turns)} ({_short(turns[-1].say)!r}): {why}"
    for name, n in sorted((fail_first or {}).items()):
        made = sum(tc.name == name for tc in calls)
        if 0 < made <= n:
            why = (f"no retry after the first error: {name} fails its first {n} call{'s' if n != 1 else ''} "
                   f"on purpose and was called {made} time{'s' if made != 1 else ''}; {why}")
    return CheckResult(False, why)
