"""The agent-driver interface. Drivers live in plugins/agents/ (``builtin``, ``hermes``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

if TYPE_CHECKING:  # pragma: no cover
    from hbench.models import Attempt, LaneSpec, Prompt, Suite
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

    def run_attempt(self, ctx: AttemptContext) -> Attempt:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}
