"""The plan of a lane's attempts and who runs which next.

:func:`plan` lists, per prompt of the suite, the attempts to run (``runs`` each, less
those already journaled) and why the prompts left out are skipped. :class:`Scheduler`
hands them out in suite order to the lane's worker threads; with ``--adaptive`` it stops
a prompt once its strict-majority verdict can no longer change.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import attrs

from hbench.models import Attempt, Prompt

if TYPE_CHECKING:
    from hbench.agents import Agent
    from hbench.run_settings import Settings


@attrs.define
class PromptState:
    prompt: Prompt
    runs: int
    pending: list[int]
    done: list[Attempt] = attrs.field(factory=list)
    in_flight: int = 0

    @property
    def passes(self) -> int:
        return sum(a.passed for a in self.done)

    def decided(self) -> bool:
        """The strict-majority verdict can no longer change."""
        if 2 * self.passes > self.runs:
            return True
        return 2 * (self.passes + self.in_flight + len(self.pending)) <= self.runs


class Scheduler:
    """Hands out ``(state, n)`` in suite order to K workers; thread-safe."""

    def __init__(self, states: list[PromptState], adaptive: bool):
        self.states = states
        self.adaptive = adaptive
        self.lock = threading.Lock()

    def prune(self) -> int:
        """Drop the pending attempts of decided prompts (adaptive). Returns how many."""
        dropped = 0
        if self.adaptive:
            for st in self.states:
                if st.pending and st.in_flight == 0 and st.decided():
                    dropped += len(st.pending)
                    st.pending.clear()
        return dropped

    def remaining(self) -> int:
        return sum(len(s.pending) for s in self.states)

    def next(self) -> tuple[PromptState, int] | None:
        with self.lock:
            for st in self.states:
                if not st.pending:
                    continue
                if self.adaptive and st.decided():
                    continue
                n = st.pending.pop(0)
                st.in_flight += 1
                return st, n
            return None

    def finished(self, st: PromptState, attempt: Attempt | None, n: int) -> None:
        with self.lock:
            st.in_flight -= 1
            if attempt is None:  # not journaled (interrupted / lane died): it stays to do
                st.pending.insert(0, n)  # counted as not run (missing) in the lane's scorecard
                return
            st.done.append(attempt)
            if self.adaptive and st.decided():
                st.pending.clear()


def not_selected(p: Prompt, s: Settings) -> str | None:
    """Why ``--tags``/``--categories`` leave prompt ``p`` out, or None."""
    if s.tags and not set(p.tags) & set(s.tags):
        return f"not selected (--tags {','.join(s.tags)})"
    if s.categories and p.category not in s.categories:
        return f"not selected (--categories {','.join(s.categories)})"
    return None


def plan(prompts: list[Prompt], s: Settings, agent: Agent, runs: int,
         done: dict[tuple[str, int], Attempt]) -> tuple[dict[str, str], list[PromptState]]:
    """Why each prompt left out is skipped, and the rest's states: ``runs`` attempts
    each, those in ``done`` already done, the others pending."""
    skipped: dict[str, str] = {}
    states: list[PromptState] = []
    for p in prompts:
        if s.core_only and not p.core:
            skipped[p.id] = "not core (--core-only)"
            continue
        why = not_selected(p, s)
        if why:
            skipped[p.id] = why
            continue
        lacking = [c for c in p.needs if c not in agent.capabilities]
        if lacking:
            offers = ", ".join(sorted(agent.capabilities)) or "none"
            skipped[p.id] = f"needs capability {lacking[0]!r}; agent {agent.name!r} offers {offers}"
            continue
        st = PromptState(prompt=p, runs=runs, pending=[])
        for n in range(1, runs + 1):
            if (p.id, n) in done:
                st.done.append(done[(p.id, n)])
            else:
                st.pending.append(n)
        states.append(st)
    return skipped, states


__all__ = ["PromptState", "Scheduler", "plan", "not_selected"]
