"""What a chat request ends in: a :class:`ChatResponse`, or a :class:`ClientError` saying
why there is none."""

from __future__ import annotations

from typing import Any

import attrs

from hbench.errors import HBenchError
from hbench.tool_calls import NormalisedToolCall


# --------------------------------------------------------------------------- errors


class ClientError(HBenchError):
    """A chat request that did not produce a usable reply."""

    exit_code = 1


class AttemptTimeout(ClientError):
    """The attempt's deadline passed; the in-flight request was closed."""


class AttemptCancelled(ClientError):
    """The caller's cancel event was set; the in-flight request was closed."""


class TransportError(ClientError):
    """The server could not be reached or kept failing (connection, 5xx, 429) after retries."""

    def __init__(self, message: str, *, status: int | None = None, tries: int = 1):
        super().__init__(message)
        self.status = status
        self.tries = tries


class ServerReplyError(ClientError):
    """The server answered, but the answer is unusable (the message says why, in one line)."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class RequestRejected(ServerReplyError):
    """The server refused the request (4xx other than 429)."""


# --------------------------------------------------------------------------- the reply


@attrs.define
class ChatResponse:
    """One model reply."""

    content: str = ""
    reasoning: str = ""
    tool_calls: list[NormalisedToolCall] = attrs.field(factory=list)
    finish_reason: str | None = None  # normalised ("tool_calls" whenever there are calls)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None  # streamed only
    wall_s: float = 0.0
    server_timings: dict[str, Any] | None = None
    model: str | None = None  # as the server named it
    raw_finish_reason: str | None = None  # as the server sent it
    streamed: bool = True
    tries: int = 1  # HTTP requests it took (retries + 1, + a non-streamed fallback)
    warnings: list[str] = attrs.field(factory=list)
    #: seconds after the request was sent at which each content / reasoning / tool-call
    #: delta arrived (streamed; what the throughput probe needs)
    chunk_times_s: list[float] = attrs.field(factory=list, repr=False)

    @property
    def format_errors(self) -> int:
        return sum(1 for c in self.tool_calls if c.format_error)

    def assistant_message(self) -> dict[str, Any]:
        """The message to append before the tool results: content ``""`` (never null,
        llama-cpp-python rejects null) and well-formed calls only."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content or ""}
        if self.tool_calls:
            msg["tool_calls"] = [c.to_wire() for c in self.tool_calls]
        return msg
