"""The agent-driver interface. Drivers live in plugins/agents/ (``builtin``, ``hermes``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

if TYPE_CHECKING:  # pragma: no cover
    from hbench.models import Attempt, LaneSpec, Prompt, Suite, ToolCall
    from hbench.tools import Tool


@attrs.define
class AttemptContext:
    """Everything a driver needs for one attempt. ``scratch`` is a fresh fixture copy."""

    lane: LaneSpec  # base_url resolved, model resolved
    prompt: Prompt
    suite: Suite
    n: int
    scratch: Path
    timeout_s: float
    max_turns: int
    max_tokens: int
    temperature: float
    api_key: str | None = attrs.field(default=None, repr=False)
    tools: dict[str, Tool] = attrs.field(factory=dict)
    cancel: threading.Event = attrs.field(factory=threading.Event)
    work_dir: Path | None = None  # per-lane private dir for driver state (outside scratch)


class Agent:
    """An agent driver: runs one prompt against one lane and returns the Attempt.

    The driver fills answer, tool_calls, transcript, turns, runaway, error,
    format_errors and timings. The runner checks and scores it afterwards.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "0"
    #: capabilities offered ("mcp", "rag", ...); conditional prompts need them
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: tool-name aliases: called tool name -> extra tokens it satisfies
    tool_aliases: ClassVar[dict[str, tuple[str, ...]]] = {}

    def usable(self) -> tuple[bool, str]:
        return True, "ok"

    def aliases_for(self, call: ToolCall) -> tuple[str, ...]:
        """Extra tool tokens one call satisfies. Default: ``tool_aliases[call.name]``;
        override to alias by arguments (Hermes' ``terminal`` running ``ls`` -> list)."""
        return tuple(self.tool_aliases.get(call.name, ()))

    def attempt_aliases(self, calls: list[ToolCall]) -> dict[str, tuple[str, ...]]:
        """The alias map for one attempt's calls (called name -> tokens), for
        ``hbench.scoring.attempt_outcome(attempt, prompt, aliases)``."""
        out: dict[str, tuple[str, ...]] = {}
        for call in calls:
            extra = self.aliases_for(call)
            if extra:
                out[call.name] = tuple(dict.fromkeys(out.get(call.name, ()) + tuple(extra)))
        return out

    def run_attempt(self, ctx: AttemptContext) -> Attempt:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}
