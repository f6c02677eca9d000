"""The OpenAI-compatible chat client (httpx, sync; threads give concurrency).

Used by agents, lanes and the throughput probe::

    client = ChatClient("http://127.0.0.1:8080/v1", api_key=None)
    reply = client.chat(messages, model="m", tools=tools, deadline=time.monotonic() + 360)
    reply.content, reply.tool_calls, reply.ttft_ms, reply.prompt_tokens, ...
    messages.append(reply.assistant_message())   # safe to replay: never a malformed call

What it does about real servers (LANES.md):

* Streams with ``stream_options.include_usage``; SSE comment lines are skipped; tool-call
  deltas are merged by ``index``. A server that rejects streaming (4xx to a streamed
  request, then OK without) is asked without streaming from then on; one that ignores
  ``stream`` and answers JSON is read as JSON.
* TTFT is the time to the first chunk holding content, reasoning or a tool-call delta.
* Tool calls are normalised (:func:`normalise_tool_calls`): arguments given as an
  object, calls written into content (``<tool_call>{...}</tool_call>``, fenced JSON),
  missing ids, a wrong ``finish_reason``. Malformed argument JSON sets ``format_error``
  (a line to show the model) and ``arguments=None``; such a call is never replayed
  verbatim.
* ``deadline`` (a ``time.monotonic()`` value): when it passes, the in-flight request is
  closed (the socket is shut down, so the server stops decoding) and
  :class:`AttemptTimeout` is raised, also during a stall before the first byte or
  mid-stream. ``cancel`` (a ``threading.Event``) does the same with
  :class:`AttemptCancelled`.
* Connection errors, 5xx and 429 are retried (tenacity; 429 honours ``Retry-After``,
  capped), then :class:`TransportError`. An unusable body (not JSON, not UTF-8, wrong
  content type, over ``max_body_bytes``) is :class:`ServerReplyError` with a one-line
  reason; other 4xx answers are :class:`RequestRejected`.
* ``Authorization: Bearer`` only when a key is given; the key never appears in an
  exception message or a repr.
"""

from __future__ import annotations

import codecs
import email.utils
import json
import re
import socket
import threading
import time
import uuid
from typing import Any, Iterable, Iterator, Sequence

import attrs
import httpcore
import httpx
import tenacity

from hbench.errors import HBenchError
from hbench.limits import response_json
from hbench.logging import get_logger, register_secret, register_url_secrets, scrub
from hbench.text import has_surrogate, valid_json, valid_text

__all__ = [
    "AttemptCancelled",
    "AttemptTimeout",
    "ChatClient",
    "ChatResponse",
    "ClientError",
    "NormalisedToolCall",
    "RequestRejected",
    "SSEEvent",
    "SSEParser",
    "ServerReplyError",
    "StreamAccumulator",
    "StreamStats",
    "TransportError",
    "normalise_tool_calls",
    "parse_arguments",
    "parse_retry_after",
    "parse_sse",
]

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
#: how long to wait for usage / [DONE] after the finish_reason before giving up on them
TAIL_GRACE_S = 5.0

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


class _Retry(Exception):
    """Internal: a failure worth another try."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.status, self.retry_after = reason, status, retry_after


# --------------------------------------------------------------------------- data


@attrs.frozen
class NormalisedToolCall:
    """One tool call, after tolerating the server's deviations.

    ``arguments`` is a dict, or None when the arguments were malformed; then
    ``format_error`` is a one-line message for the model and ``raw_arguments`` keeps
    what the server sent (for the journal, never for replay).
    """

    id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str
    format_error: str | None = None
    source: str = "tool_calls"  # "tool_calls" | "content" (embedded in the answer text)

    def to_wire(self) -> dict[str, Any]:
        """The call as it is replayed in the assistant message (malformed -> ``{}``)."""
        args = json.dumps(self.arguments, ensure_ascii=False) if self.arguments is not None else "{}"
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": args}}


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

    def to_turn(self) -> Any:
        """This reply as an ``hbench.models.Turn`` (journal record)."""
        from hbench.models import Turn

        return Turn(wall_s=self.wall_s, ttft_ms=self.ttft_ms, prompt_tokens=self.prompt_tokens,
                    completion_tokens=self.completion_tokens, finish_reason=self.finish_reason,
                    server_timings=self.server_timings)


@attrs.define
class StreamStats:
    """One streamed completion as the throughput probe sees it."""

    response: ChatResponse
    ttft_ms: float | None
    completion_tokens: int  # usage when the server gave it, else the number of deltas
    chunk_times_s: list[float]
    wall_s: float
    decode_tok_s: float | None  # (tokens - 1) / (t_last - t_first), client side
    server_tok_s: float | None  # llama.cpp timings.predicted_per_second when present
    server_timings: dict[str, Any] | None = None


# --------------------------------------------------------------------------- SSE


@attrs.frozen
class SSEEvent:
    data: str
    event: str | None = None
    id: str | None = None


class SSEParser:
    """Incremental Server-Sent Events parser (the WHATWG rules that matter here).

    Bytes in, events out: UTF-8 is decoded incrementally and strictly (a character split
    across chunks is fine, an invalid byte raises ``UnicodeDecodeError``); lines end in
    CRLF, LF or CR; lines starting with ``:`` are comments; ``data`` lines of one event
    are joined with ``\\n``; a blank line dispatches the event.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._buf = ""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._first = True

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        text = self._decoder.decode(chunk)
        if self._first and text:
            text = text.lstrip("\ufeff")
            self._first = False
        return self._lines(self._buf + text, final=False)

    def close(self) -> list[SSEEvent]:
        """End of stream: flush; an event without its blank line is dropped (per spec)."""
        tail = self._decoder.decode(b"", final=True)
        events = self._lines(self._buf + tail, final=True)
        return events

    def pending_bytes(self) -> int:
        return len(self._buf) + sum(len(d) for d in self._data)

    def _lines(self, text: str, final: bool) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        start = 0
        n = len(text)
        i = 0
        while i < n:
            c = text[i]
            if c == "\n" or c == "\r":
                if c == "\r" and i + 1 == n and not final:
                    break  # maybe CRLF split across chunks: wait for the next byte
                line = text[start:i]
                i += 2 if (c == "\r" and i + 1 < n and text[i + 1] == "\n") else 1
                start = i
                ev = self._line(line)
                if ev is not None:
                    out.append(ev)
                continue
            i += 1
        self._buf = text[start:]
        if final:
            self._buf = ""
        return out

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            if not self._data:
                self._event = None
                return None
            ev = SSEEvent(data="\n".join(self._data), event=self._event, id=self._id)
            self._data, self._event = [], None
            return ev
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\x00" not in value:
            self._id = value
        return None


def parse_sse(data: bytes | Iterable[bytes]) -> list[SSEEvent]:
    """Every event in an SSE byte stream (one bytes object or an iterable of chunks)."""
    parser = SSEParser()
    chunks = [data] if isinstance(data, (bytes, bytearray)) else data
    out: list[SSEEvent] = []
    for chunk in chunks:
        out.extend(parser.feed(bytes(chunk)))
    out.extend(parser.close())
    return out


# --------------------------------------------------------------------------- tool calls


def _kind_of(v: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(v), type(v).__name__)


#: deepest tool-call arguments accepted (a real call is 1-3 levels); deeper is a format error,
#: so no journal write or report meets a structure near Python's recursion limit
ARGS_MAX_DEPTH = 32


def _too_deep(value: Any) -> bool:
    """Parsed arguments nested deeper than :data:`ARGS_MAX_DEPTH` (counted without recursion)."""
    from hbench.limits import depth

    return depth(value, ARGS_MAX_DEPTH) > ARGS_MAX_DEPTH


def parse_arguments(value: Any, name: str = "") -> tuple[dict[str, Any] | None, str, str | None]:
    """Tool-call arguments as the server sent them -> ``(arguments, raw, format_error)``.

    Accepts a JSON string, an object, ``""``/``None`` (no arguments) and a JSON string
    encoded twice. Anything else is a format error with a message for the model.
    """
    label = f"tool call {name!r}" if name else "tool call"
    if value is None:
        return {}, "", None
    too_deep = (f"{label}: arguments are nested deeper than {ARGS_MAX_DEPTH} levels; "
                "call the tool again with flat arguments as one JSON object")
    if isinstance(value, dict) and _too_deep(value):
        return None, "(arguments nested too deeply to show)", too_deep
    if isinstance(value, dict):
        try:
            raw = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            raw = repr(value)
        return value, raw, None
    if not isinstance(value, str):
        raw = json.dumps(value, ensure_ascii=False, default=str)
        return None, raw, f"{label}: arguments must be a JSON object, got {_kind_of(value)}; send them as one JSON object"
    raw = value
    if not value.strip():
        return {}, raw, None
    try:
        parsed = json.loads(value)
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        where = f" at char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        return None, raw, (f"{label}: arguments are not valid JSON ({detail}{where}); "
                           "call the tool again with the arguments as one JSON object")
    if isinstance(parsed, (dict, list)) and _too_deep(parsed):
        return None, raw, too_deep
    if isinstance(parsed, str):  # encoded twice
        try:
            again = json.loads(parsed)
        except (json.JSONDecodeError, RecursionError):
            again = None
        if isinstance(again, dict):
            if _too_deep(again):
                return None, raw, too_deep
            return again, raw, None
    if parsed is None:
        return {}, raw, None
    if not isinstance(parsed, dict):
        return None, raw, f"{label}: arguments must be a JSON object, got {_kind_of(parsed)}; send them as one JSON object"
    return parsed, raw, None


_TAG_RE = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.S)
_FENCE_RE = re.compile(r"```[ \t]*(?:json|tool_call|tool_code|tool)?[ \t]*\r?\n?(.*?)```", re.S | re.I)
_NAME_RE = re.compile(r'"name"\s*:\s*"([^"\\]{1,200})"')


def _synth_id() -> str:
    return f"call_{uuid.uuid4().hex[:12]}"


def _calls_from_object(obj: Any) -> list[tuple[str, Any]] | None:
    """``{"name", "arguments"|"parameters"}``, ``{"function": {...}}`` or a list of them."""
    items = obj if isinstance(obj, list) else [obj]
    out: list[tuple[str, Any]] = []
    for it in items:
        if not isinstance(it, dict):
            return None
        fn = it.get("function") if isinstance(it.get("function"), dict) else it
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            return None
        args = fn.get("arguments", fn.get("parameters", {}))
        out.append((name, args))
    return out or None


def _embedded_calls(block: str, source_ok: bool) -> list[NormalisedToolCall] | None:
    try:
        obj = json.loads(block)
    except (json.JSONDecodeError, RecursionError):
        if not source_ok:
            return None
        m = _NAME_RE.search(block)
        name = m.group(1) if m else ""
        return [NormalisedToolCall(
            id=_synth_id(), name=name, arguments=None, raw_arguments=block, source="content",
            format_error=(f"tool call {name!r} written in the answer text is not valid JSON; "
                          "call the tool again with the arguments as one JSON object"))]
    found = _calls_from_object(obj)
    if found is None:
        if not source_ok:
            return None
        return [NormalisedToolCall(id=_synth_id(), name="", arguments=None, raw_arguments=block, source="content",
                                   format_error="a <tool_call> block without a tool name; "
                                                'send {"name": ..., "arguments": {...}}')]
    out = []
    for name, args in found:
        parsed, raw, err = parse_arguments(args, name)
        out.append(NormalisedToolCall(id=_synth_id(), name=name, arguments=parsed, raw_arguments=raw,
                                      format_error=err, source="content"))
    return out


def normalise_tool_calls(raw_calls: Sequence[Any] | None, content: str | None,
                         tool_names: Iterable[str] | None = None
                         ) -> tuple[list[NormalisedToolCall], str, list[str]]:
    """Structured calls plus calls embedded in ``content`` -> ``(calls, content, warnings)``.

    ``<tool_call>`` blocks are always taken from the content (llama.cpp leaks later calls
    there); fenced JSON only when there is no structured call and the name is one of
    ``tool_names`` (a final answer may legitimately hold JSON). The returned content has
    the extracted blocks removed.
    """
    warnings: list[str] = []
    calls: list[NormalisedToolCall] = []
    seen_ids: set[str] = set()
    for i, tc in enumerate(raw_calls or []):
        if not isinstance(tc, dict):
            warnings.append(f"tool_calls[{i}] is not an object; ignored")
            continue
        fn = tc.get("function") if isinstance(tc.get("function"), dict) else tc
        name = fn.get("name") if isinstance(fn.get("name"), str) else ""
        args_value = fn.get("arguments", fn.get("parameters"))
        parsed, raw, err = parse_arguments(args_value, name)
        if not name:
            parsed, err = None, "a tool call without a function name; name the tool you want to call"
        if isinstance(args_value, dict):
            warnings.append(f"tool call {name!r}: arguments sent as an object, not a JSON string")
        tid = tc.get("id") if isinstance(tc.get("id"), str) and tc.get("id") else None
        if tid is None or tid in seen_ids:
            if tid is None:
                warnings.append(f"tool call {name!r} had no id; synthesised one")
            tid = _synth_id()
        seen_ids.add(tid)
        calls.append(NormalisedToolCall(id=tid, name=name, arguments=parsed, raw_arguments=raw, format_error=err))

    text = content or ""
    if "<tool_call>" in text:
        kept: list[str] = []
        pos = 0
        for m in _TAG_RE.finditer(text):
            found = _embedded_calls(m.group(1), source_ok=True) or []
            calls.extend(found)
            kept.append(text[pos:m.start()])
            pos = m.end()
        kept.append(text[pos:])
        text = "".join(kept).strip()
        warnings.append("tool call(s) written into the content as <tool_call> blocks")
    elif not calls and "```" in text and tool_names is not None:
        names = set(tool_names)
        kept, pos, took = [], 0, False
        for m in _FENCE_RE.finditer(text):
            found = _embedded_calls(m.group(1).strip(), source_ok=False)
            if found and all(c.name in names for c in found):
                calls.extend(found)
                kept.append(text[pos:m.start()])
                pos = m.end()
                took = True
        if took:
            kept.append(text[pos:])
            text = "".join(kept).strip()
            warnings.append("tool call(s) written into the content as fenced JSON")
    return calls, text, warnings


def _valid_call(c: NormalisedToolCall) -> NormalisedToolCall:
    """``c`` with every text valid Unicode (:mod:`hbench.text`); itself when it already is."""
    args = valid_json(c.arguments) if c.arguments else c.arguments
    if args is c.arguments and not has_surrogate(c.name + c.id + c.raw_arguments + (c.format_error or "")):
        return c
    return attrs.evolve(c, id=valid_text(c.id), name=valid_text(c.name), raw_arguments=valid_text(c.raw_arguments),
                        arguments=args, format_error=valid_text(c.format_error) if c.format_error else None)


# --------------------------------------------------------------------------- stream assembly


class StreamAccumulator:
    """Merges ``chat.completion.chunk`` objects into one reply (tool calls by ``index``)."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self._order: list[int] = []
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.timings: dict[str, Any] | None = None
        self.model: str | None = None
        self.events = 0

    def add(self, obj: dict[str, Any]) -> bool:
        """Merge one chunk; True when it carried content, reasoning or a tool-call delta."""
        self.events += 1
        if isinstance(obj.get("model"), str) and obj["model"]:
            self.model = obj["model"]
        if isinstance(obj.get("usage"), dict):
            self.usage = obj["usage"]
        if isinstance(obj.get("timings"), dict):
            self.timings = obj["timings"]
        useful = False
        choices = obj.get("choices")
        if not isinstance(choices, list):
            return False
        for ch in choices[:1]:
            if not isinstance(ch, dict):
                continue
            delta = ch.get("delta")
            if not isinstance(delta, dict):
                delta = ch.get("message") if isinstance(ch.get("message"), dict) else {}
            c = delta.get("content")
            if isinstance(c, str) and c:
                self.content.append(c)
                useful = True
            r = delta.get("reasoning_content", delta.get("reasoning"))
            if isinstance(r, str) and r:
                self.reasoning.append(r)
                useful = True
            tcs = delta.get("tool_calls")
            if isinstance(tcs, list) and tcs:
                for pos, d in enumerate(tcs):
                    if isinstance(d, dict):
                        self._merge_call(d, pos)
                        useful = True
            if ch.get("finish_reason"):
                self.finish_reason = ch["finish_reason"]
        return useful

    def _merge_call(self, d: dict[str, Any], pos: int) -> None:
        idx = d.get("index")
        if not isinstance(idx, int):
            did = d.get("id")
            known = next((k for k, v in self.calls.items() if did and v.get("id") == did), None)
            if known is not None:
                idx = known
            elif did or not self._order:
                idx = (max(self._order) + 1) if self._order else pos
            else:
                idx = self._order[-1]
        cur = self.calls.get(idx)
        if cur is None:
            cur = self.calls[idx] = {"id": None, "name": "", "arguments": None}
            self._order.append(idx)
        if isinstance(d.get("id"), str) and d["id"] and not cur["id"]:
            cur["id"] = d["id"]
        fn = d.get("function") if isinstance(d.get("function"), dict) else {}
        name = fn.get("name")
        if isinstance(name, str) and name and name != cur["name"]:
            cur["name"] = cur["name"] + name if cur["name"] else name
        args = fn.get("arguments")
        if isinstance(args, str):
            if isinstance(cur["arguments"], str):
                cur["arguments"] += args
            elif cur["arguments"] is None:
                cur["arguments"] = args
        elif args is not None:
            cur["arguments"] = args  # an object (or something odd): the normaliser judges it

    def raw_tool_calls(self) -> list[dict[str, Any]]:
        return [{"id": self.calls[i]["id"], "type": "function",
                 "function": {"name": self.calls[i]["name"], "arguments": self.calls[i]["arguments"]}}
                for i in sorted(self._order)]


# --------------------------------------------------------------------------- helpers


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), None when absent/garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
        return max(0.0, secs) if secs == secs and secs != float("inf") else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(scrub(valid_text(str(text))).split())  # scrubbed before any cut: no half a key
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_text(body: bytes) -> str:
    """The message inside an error body (OpenAI ``{"error": {"message"}}`` or text)."""
    try:
        obj = json.loads(body.decode("utf-8", "replace"))
        if isinstance(obj, dict):
            err = obj.get("error", obj)
            if isinstance(err, dict):
                return _one_line(err.get("message") or err.get("detail") or json.dumps(err))
            if isinstance(err, str):
                return _one_line(err)
            if "detail" in obj:
                return _one_line(json.dumps(obj["detail"]))
    except (json.JSONDecodeError, RecursionError):
        pass
    return _one_line(body.decode("utf-8", "replace")) or "(empty body)"


def _usage_int(usage: dict[str, Any] | None, key: str) -> int | None:
    if not usage:
        return None
    v = usage.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


class _StreamRegistry:
    """Which network stream each thread is using right now (see :class:`_TrackingBackend`)."""

    def __init__(self) -> None:
        self._by_thread: dict[int, Any] = {}
        self._lock = threading.Lock()

    def claim(self, stream: Any) -> None:
        tid = threading.get_ident()
        if self._by_thread.get(tid) is not stream:
            with self._lock:
                self._by_thread[tid] = stream

    def forget(self, tid: int) -> None:
        with self._lock:
            self._by_thread.pop(tid, None)

    def get(self, tid: int) -> Any:
        with self._lock:
            return self._by_thread.get(tid)


class _TrackedStream(httpcore.NetworkStream):
    """A network stream that records the thread reading or writing it, so a watchdog can
    shut down the socket a request is using, also on a reused kept-alive connection."""

    def __init__(self, inner: Any, registry: _StreamRegistry):
        self._inner, self._registry = inner, registry

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._registry.claim(self)
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._registry.claim(self)
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> "_TrackedStream":
        return _TrackedStream(self._inner.start_tls(ssl_context, server_hostname, timeout), self._registry)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _TrackingBackend(httpcore.NetworkBackend):
    def __init__(self, inner: Any, registry: _StreamRegistry):
        self._inner, self._registry = inner, registry

    def connect_tcp(self, *args: Any, **kwargs: Any) -> _TrackedStream:
        return _TrackedStream(self._inner.connect_tcp(*args, **kwargs), self._registry)

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> _TrackedStream:
        return _TrackedStream(self._inner.connect_unix_socket(*args, **kwargs), self._registry)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _install_tracking(http: httpx.Client, registry: _StreamRegistry) -> bool:
    """Wrap the pool's network backend (httpx has no public hook for it). Without it the
    watchdog still closes a request once its response has started, and the per-read
    timeout (capped at the deadline) bounds a stall before the first byte."""
    pool = getattr(getattr(http, "_transport", None), "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is None or not hasattr(backend, "connect_tcp"):
        return False
    pool._network_backend = _TrackingBackend(backend, registry)
    return True


class _Monitor:
    """One thread that watches every request in flight for its deadline, its cancel event
    and its tail grace (a thread per request cost ~0.3 ms of CPU a request, and the
    thread churn grew glibc's per-thread arenas: BENCHMARKS.md 1 and 7). It sleeps until
    the earliest due time, polls cancel events every 20 ms while a request that has one
    is in flight, and waits without waking when nothing is in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dogs: set[_Watchdog] = set()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, dog: _Watchdog) -> None:
        with self._lock:
            self._dogs.add(dog)
            if self._thread is None or not self._thread.is_alive():  # first use, or after a fork
                self._thread = threading.Thread(target=self._run, name="hbench-client-watchdog", daemon=True)
                self._thread.start()
        self._wake.set()

    def remove(self, dog: _Watchdog) -> None:
        with self._lock:
            self._dogs.discard(dog)

    def poke(self) -> None:
        """A due time changed: look again now."""
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.clear()  # before the snapshot: an add() after it wakes the wait below
            with self._lock:
                dogs = list(self._dogs)
            wait: float | None = None  # None: nothing in flight, sleep until an add()
            now = time.monotonic()
            for dog in dogs:
                w = dog._poll(now)
                if w is not None:
                    wait = w if wait is None else min(wait, w)
            self._wake.wait(None if wait is None else max(0.001, min(wait, 0.25)))


_MONITOR = _Monitor()


class _Watchdog:
    """Shuts the request's socket down when the deadline passes, the cancel event is set,
    or the tail grace after ``finish_reason`` runs out. Shutting down (not closing) wakes
    a read blocked in another thread, and the server sees the connection end. Watched by
    the shared :class:`_Monitor` thread from creation until :meth:`finish`."""

    def __init__(self, deadline: float | None, cancel: threading.Event | None,
                 registry: _StreamRegistry | None = None):
        self.deadline, self.cancel = deadline, cancel
        self._tail_deadline: float | None = None
        self.fired: str | None = None  # "timeout" | "cancel" | "tail"
        self._sock: socket.socket | None = None
        self._registry = registry
        self._tid = threading.get_ident()
        if registry is not None:
            registry.forget(self._tid)  # only streams this request touches from now on
        self._lock = threading.Lock()
        self._done = False
        _MONITOR.add(self)

    @property
    def tail_deadline(self) -> float | None:
        return self._tail_deadline

    @tail_deadline.setter
    def tail_deadline(self, value: float | None) -> None:
        self._tail_deadline = value
        _MONITOR.poke()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            self.attach(info.get("return_value"))

    def attach(self, stream: Any) -> None:
        sock = _socket_of(stream)
        if sock is None:
            return
        with self._lock:
            self._sock = sock
            if self.fired:
                self._shutdown()

    def _shutdown(self) -> None:
        socks = [self._sock]
        if self._registry is not None:
            socks.append(_socket_of(self._registry.get(self._tid)))
        for sock in {id(s): s for s in socks if s is not None}.values():
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _fire(self, why: str) -> None:
        with self._lock:
            if self.fired or self._done:
                return
            self.fired = why
            self._shutdown()

    def _poll(self, now: float) -> float | None:
        """(the monitor thread) Fire when due; else the seconds until this request needs
        another look. None: it fired or finished."""
        if self._done or self.fired:
            return None
        if self.cancel is not None and self.cancel.is_set():
            self._fire("cancel")
            return None
        if self.deadline is not None and now >= self.deadline:
            self._fire("timeout")
            return None
        tail = self._tail_deadline
        if tail is not None and now >= tail:
            self._fire("tail")
            return None
        due = [d for d in (self.deadline, tail) if d is not None]
        wait = min(due) - now if due else 0.25
        if self.cancel is not None:
            wait = min(wait, 0.02)
        return wait

    def finish(self) -> None:
        with self._lock:
            self._done = True
        _MONITOR.remove(self)
        if self._registry is not None:
            self._registry.forget(self._tid)


def _socket_of(stream: Any) -> socket.socket | None:
    try:
        sock = stream.get_extra_info("socket") if stream is not None else None
    except Exception:  # noqa: BLE001 - an unusual transport: no early close, timeouts still bound it
        return None
    return sock if isinstance(sock, socket.socket) else None


# --------------------------------------------------------------------------- the client


class ChatClient:
    """A client for one OpenAI-compatible server (thread-safe; share it across threads)."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout_s: float = 300.0,
                 connect_timeout_s: float = 10.0, retries: int = 3, retry_after_cap_s: float = 30.0,
                 backoff_s: float = 0.5, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 model_mismatch: str = "warn", lane: str | None = None,
                 headers: dict[str, str] | None = None, max_connections: int = 256,
                 tail_grace_s: float = TAIL_GRACE_S, transport: httpx.BaseTransport | None = None):
        """``timeout_s``: the longest silence between bytes (without a deadline);
        ``retries``: extra tries after the first; ``tail_grace_s``: how long to wait for
        usage / ``[DONE]`` after the finish_reason; ``transport``: an httpx transport
        (``httpx.MockTransport`` in parsing unit tests)."""
        if model_mismatch not in ("warn", "error", "ignore"):
            raise ValueError("model_mismatch must be 'warn', 'error' or 'ignore'")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.retries = max(0, int(retries))
        self.retry_after_cap_s = retry_after_cap_s
        self.backoff_s = backoff_s
        self.max_body_bytes = max_body_bytes
        self.model_mismatch = model_mismatch
        self.lane = lane
        self.tail_grace_s = tail_grace_s
        self._key = api_key or None
        register_secret(self._key)
        register_url_secrets(base_url)  # a password in the URL's userinfo
        hdrs = {"Accept": "application/json, text/event-stream", **(headers or {})}
        if self._key:
            hdrs["Authorization"] = f"Bearer {self._key}"
        self._http = httpx.Client(headers=hdrs, timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
                                  limits=httpx.Limits(max_connections=max_connections,
                                                      max_keepalive_connections=max_connections),
                                  trust_env=False, transport=transport)
        self._streams = _StreamRegistry()
        self.tracks_streams = transport is None and _install_tracking(self._http, self._streams)
        self._stream_ok: bool | None = None  # False once the server rejected streaming
        self._log = get_logger()

    def __repr__(self) -> str:
        url = re.sub(r"//[^/@]*@", "//***@", self.base_url)
        return f"ChatClient(base_url={url!r}, api_key={'***' if self._key else None})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ChatClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _clean(self, text: str) -> str:
        if self._key:
            text = text.replace(self._key, "***")
        return scrub(re.sub(r"//[^/@\s]*@", "//***@", text))

    def _where(self) -> str:
        return f"lane {self.lane!r} ({self.base_url})" if self.lane else self.base_url

    # ------------------------------------------------------------- API
    def models(self) -> list[str]:
        """Model ids from ``GET /models``."""
        try:
            r = self._http.get(f"{self.base_url}/models", timeout=min(self.timeout_s, 30.0))
        except httpx.HTTPError as exc:
            raise TransportError(self._clean(f"{self._where()}: /models unreachable ({type(exc).__name__}: {exc})")) from None
        if r.status_code != 200:
            raise ServerReplyError(self._clean(f"{self._where()}: /models answered HTTP {r.status_code}: "
                                               f"{_error_text(r.content)}"), status=r.status_code)
        try:
            data = response_json(r).get("data") or []
            return [valid_text(d["id"]) for d in data if isinstance(d, dict) and isinstance(d.get("id"), str)]
        except (ValueError, AttributeError):
            raise ServerReplyError(self._clean(f"{self._where()}: /models is not an OpenAI model list")) from None

    def chat(self, messages: list[dict[str, Any]], *, model: str | None, tools: list[dict[str, Any]] | None = None,
             tool_choice: Any = "auto", temperature: float | None = None, max_tokens: int | None = None,
             stream: bool = True, extra_body: dict[str, Any] | None = None, deadline: float | None = None,
             cancel: threading.Event | None = None) -> ChatResponse:
        """One chat completion. See the module docstring for errors and tolerances."""
        payload: dict[str, Any] = {"messages": messages}
        if model:
            payload["model"] = model
        if tools:
            payload["tools"] = tools
            if tool_choice is not None:
                payload["tool_choice"] = tool_choice
        if temperature is not None:
            payload["temperature"] = temperature
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if extra_body:
            payload.update(extra_body)
        names = None
        if tools:
            names = [t.get("function", {}).get("name") for t in tools if isinstance(t, dict)]
            names = [n for n in names if isinstance(n, str)]
        return self._call(payload, stream=stream, deadline=deadline, cancel=cancel, tool_names=names)

    def stream_completion(self, messages: list[dict[str, Any]] | str, *, model: str | None, max_tokens: int = 128,
                          temperature: float = 0.0, extra_body: dict[str, Any] | None = None,
                          deadline: float | None = None, cancel: threading.Event | None = None) -> StreamStats:
        """One streamed completion with per-chunk timestamps (the throughput probe's unit)."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        reply = self.chat(messages, model=model, temperature=temperature, max_tokens=max_tokens, stream=True,
                          extra_body=extra_body, deadline=deadline, cancel=cancel)
        times = reply.chunk_times_s
        tokens = reply.completion_tokens if reply.completion_tokens is not None else len(times)
        decode = None
        if len(times) >= 2 and tokens >= 2 and times[-1] > times[0]:
            decode = (tokens - 1) / (times[-1] - times[0])
        server = None
        if reply.server_timings:
            v = reply.server_timings.get("predicted_per_second")
            server = float(v) if isinstance(v, (int, float)) and v > 0 else None
        return StreamStats(response=reply, ttft_ms=reply.ttft_ms, completion_tokens=tokens, chunk_times_s=times,
                           wall_s=reply.wall_s, decode_tok_s=decode, server_tok_s=server,
                           server_timings=reply.server_timings)

    # ------------------------------------------------------------- request plumbing
    def _call(self, payload: dict[str, Any], *, stream: bool, deadline: float | None,
              cancel: threading.Event | None, tool_names: list[str] | None) -> ChatResponse:
        use_stream = stream and self._stream_ok is not False
        t0 = time.monotonic()
        try:
            reply, tries = self._with_retries(payload, use_stream, deadline, cancel, tool_names)
        except RequestRejected as exc:
            if not use_stream or exc.status not in (400, 404, 405, 415, 422, 501):
                raise
            try:
                reply, tries = self._with_retries(payload, False, deadline, cancel, tool_names)
            except RequestRejected:
                raise exc from None
            self._stream_ok = False
            self._log.warning("client.stream_fallback", base_url=self.base_url, lane=self.lane, reason=str(exc))
            reply.warnings.append(f"streaming rejected ({exc}); asked without streaming")
            tries += 1
        reply.tries = tries
        reply.wall_s = time.monotonic() - t0
        want = payload.get("model")
        if want and reply.model and reply.model != want and self.model_mismatch != "ignore":
            msg = f"server answered as model {reply.model!r}, the lane asked for {want!r}"
            if self.model_mismatch == "error":
                raise ServerReplyError(self._clean(f"{self._where()}: {msg}"))
            reply.warnings.append(msg)
        return reply

    def _check_stop(self, deadline: float | None, cancel: threading.Event | None) -> None:
        if cancel is not None and cancel.is_set():
            raise AttemptCancelled(f"{self._where()}: attempt cancelled")
        if deadline is not None and time.monotonic() >= deadline:
            raise AttemptTimeout(f"{self._where()}: attempt deadline passed")

    def _with_retries(self, payload: dict[str, Any], stream: bool, deadline: float | None,
                      cancel: threading.Event | None, tool_names: list[str] | None) -> tuple[ChatResponse, int]:
        def wait(rs: tenacity.RetryCallState) -> float:
            exc = rs.outcome.exception() if rs.outcome else None
            if isinstance(exc, _Retry) and exc.retry_after is not None:
                return min(exc.retry_after, self.retry_after_cap_s)
            return min(self.backoff_s * (2 ** (rs.attempt_number - 1)), 8.0)

        def stop(rs: tenacity.RetryCallState) -> bool:
            if rs.attempt_number > self.retries:
                return True
            if deadline is not None and time.monotonic() + wait(rs) >= deadline:
                return True
            return False

        def sleep(seconds: float) -> None:
            end = time.monotonic() + seconds
            while True:
                self._check_stop(deadline, cancel)
                left = end - time.monotonic()
                if left <= 0:
                    return
                if cancel is not None:
                    cancel.wait(min(left, 0.05))
                else:
                    time.sleep(min(left, 0.25))

        def before_sleep(rs: tenacity.RetryCallState) -> None:
            exc = rs.outcome.exception() if rs.outcome else None
            self._log.info("client.retry", base_url=self.base_url, lane=self.lane, attempt=rs.attempt_number,
                           reason=self._clean(str(exc)), wait_s=round(wait(rs), 3))

        retrying = tenacity.Retrying(stop=stop, wait=wait, sleep=sleep, before_sleep=before_sleep,
                                     retry=tenacity.retry_if_exception_type(_Retry), reraise=True)
        tries = 0
        try:
            for att in retrying:
                with att:
                    tries = att.retry_state.attempt_number
                    reply = self._once(payload, stream, deadline, cancel, tool_names)
                    return reply, tries
        except _Retry as exc:
            waited = ""
            if deadline is not None and tries <= self.retries:
                waited = " (no time left before the attempt's deadline to wait for another try)"
            raise TransportError(
                self._clean(f"{self._where()}: {exc.reason}; gave up after {tries} tr{'y' if tries == 1 else 'ies'}{waited}"),
                status=exc.status, tries=tries) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, payload: dict[str, Any], stream: bool, deadline: float | None,
              cancel: threading.Event | None, tool_names: list[str] | None) -> ChatResponse:
        self._check_stop(deadline, cancel)
        body = dict(payload, stream=stream)
        if stream:
            body["stream_options"] = {"include_usage": True}
        else:
            body.pop("stream_options", None)
        read_t = self.timeout_s
        conn_t = self.connect_timeout_s
        if deadline is not None:
            left = max(0.001, deadline - time.monotonic())
            read_t, conn_t = min(read_t, left + 0.05), min(conn_t, left + 0.05)
        dog = _Watchdog(deadline, cancel, self._streams if self.tracks_streams else None)
        request = self._http.build_request(
            "POST", f"{self.base_url}/chat/completions", json=body,
            timeout=httpx.Timeout(read_t, connect=conn_t, write=conn_t, pool=conn_t),
            extensions={"trace": dog.trace})
        t_send = time.monotonic()
        try:
            try:
                resp = self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                self._raise_stop(dog, deadline, cancel)
                raise _Retry(f"request failed before any answer ({type(exc).__name__}: {_one_line(str(exc))})") from None
            try:
                dog.attach(resp.extensions.get("network_stream"))
                return self._read(resp, stream, dog, t_send, deadline, cancel, tool_names)
            except httpx.HTTPError as exc:
                self._raise_stop(dog, deadline, cancel)
                raise _Retry(f"connection failed mid-answer ({type(exc).__name__}: {_one_line(str(exc))})") from None
            finally:
                resp.close()
        finally:
            dog.finish()

    def _raise_stop(self, dog: _Watchdog, deadline: float | None, cancel: threading.Event | None) -> None:
        if dog.fired == "cancel" or (cancel is not None and cancel.is_set()):
            raise AttemptCancelled(f"{self._where()}: attempt cancelled; the request was closed")
        if dog.fired == "timeout" or (deadline is not None and time.monotonic() >= deadline - 0.01):
            raise AttemptTimeout(f"{self._where()}: attempt deadline passed; the request was closed")

    def _read_capped(self, resp: httpx.Response, cap: int, dog: _Watchdog, deadline: float | None,
                     cancel: threading.Event | None) -> bytes:
        buf = bytearray()
        for chunk in resp.iter_bytes():
            buf += chunk
            if len(buf) > cap:
                raise ServerReplyError(self._clean(
                    f"{self._where()}: response body over the {cap // (1024 * 1024) or cap} "
                    f"{'MB' if cap >= 1024 * 1024 else 'byte'} cap; stopped reading"), status=resp.status_code)
            self._check_stop(deadline, cancel)
        return bytes(buf)

    def _read(self, resp: httpx.Response, stream: bool, dog: _Watchdog, t_send: float,
              deadline: float | None, cancel: threading.Event | None, tool_names: list[str] | None) -> ChatResponse:
        status = resp.status_code
        if status >= 400:
            try:
                body = self._read_capped(resp, 64 * 1024, dog, deadline, cancel)
            except ServerReplyError:
                body = b"(error body over 64 KB)"
            detail = _error_text(body)
            if status == 429 or (status >= 500 and status not in (501, 505)):
                ra = parse_retry_after(resp.headers.get("retry-after"))
                raise _Retry(f"HTTP {status}: {detail}", status=status, retry_after=ra)
            raise RequestRejected(self._clean(f"{self._where()}: HTTP {status}: {detail}"), status=status)
        ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "text/event-stream":
            return self._read_sse(resp, dog, t_send, deadline, cancel, tool_names, streamed=stream)
        body = self._read_capped(resp, self.max_body_bytes, dog, deadline, cancel)
        is_json = ctype == "application/json" or ctype.endswith("+json")
        if not is_json and body.lstrip()[:5] in (b"data:", b": ") and stream:
            return self._sse_from_bytes(body, t_send, tool_names)
        return self._parse_whole(body, ctype, is_json, tool_names)

    def _reply_error(self, reason: str, status: int | None = 200) -> ServerReplyError:
        return ServerReplyError(self._clean(f"{self._where()}: {reason}"), status=status)

    def _parse_whole(self, body: bytes, ctype: str, is_json: bool, tool_names: list[str] | None) -> ChatResponse:
        if not body.strip():
            raise self._reply_error("empty response body (HTTP 200)")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._reply_error(f"response body is not valid UTF-8 (byte {exc.start})") from None
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            what = "JSON" if is_json else f"content type {ctype or 'missing'!r}, not JSON"
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            if is_json:
                raise self._reply_error(f"response body is not valid JSON ({detail}; truncated?)") from None
            raise self._reply_error(f"response has {what}: {_one_line(text, 80)!r}") from None
        if not isinstance(obj, dict):
            raise self._reply_error(f"response JSON is {_kind_of(obj)}, not a chat completion object")
        if "error" in obj and not obj.get("choices"):
            raise self._reply_error(f"server error in a 200 answer: {_error_text(body)}")
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict) \
                or not isinstance(choices[0].get("message"), dict):
            raise self._reply_error("response JSON has no choices[0].message")
        ch = choices[0]
        msg = ch["message"]
        content = msg.get("content")
        if content is not None and not isinstance(content, str):
            if isinstance(content, list):  # content parts
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            else:
                raise self._reply_error(f"choices[0].message.content is {_kind_of(content)}, not text")
        reasoning = msg.get("reasoning_content", msg.get("reasoning"))
        usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else None
        tcs = msg.get("tool_calls")
        if tcs is not None and not isinstance(tcs, list):
            raise self._reply_error(f"choices[0].message.tool_calls is {_kind_of(tcs)}, not a list")
        if not tcs and isinstance(msg.get("function_call"), dict):  # legacy single call
            tcs = [{"function": msg["function_call"]}]
        reply = self._assemble(content or "", reasoning if isinstance(reasoning, str) else "", tcs,
                               ch.get("finish_reason"), usage,
                               obj.get("timings") if isinstance(obj.get("timings"), dict) else None,
                               obj.get("model") if isinstance(obj.get("model"), str) else None, tool_names)
        reply.streamed = False
        if not is_json:
            reply.warnings.append(f"chat completion sent with content type {ctype or 'missing'!r}")
        return reply

    def _sse_from_bytes(self, body: bytes, t_send: float, tool_names: list[str] | None) -> ChatResponse:
        acc = StreamAccumulator()
        try:
            events = parse_sse(body)
        except UnicodeDecodeError as exc:
            raise self._reply_error(f"stream is not valid UTF-8 (byte {exc.start})") from None
        done = False
        for ev in events:
            done = self._event(ev, acc) == "done" or done
        return self._finish_stream(acc, done, t_send, None, [], tool_names, ["stream sent without text/event-stream"])

    def _event(self, ev: SSEEvent, acc: StreamAccumulator) -> str:
        """Merge one event: "done" on ``[DONE]``, "delta" when it carried content,
        reasoning or a tool-call delta, else "other"."""
        data = ev.data.strip()
        if data == "[DONE]":
            return "done"
        if not data:
            return "other"
        try:
            obj = json.loads(data)
        except (json.JSONDecodeError, RecursionError):
            raise self._reply_error(f"stream event {acc.events + 1} is not valid JSON: {_one_line(data, 80)!r}") from None
        if not isinstance(obj, dict):
            raise self._reply_error(f"stream event {acc.events + 1} is {_kind_of(obj)}, not a chunk object")
        if "error" in obj and not obj.get("choices"):
            raise self._reply_error(f"server error mid-stream: {_error_text(data.encode())}")
        return "delta" if acc.add(obj) else "other"

    def _read_sse(self, resp: httpx.Response, dog: _Watchdog, t_send: float, deadline: float | None,
                  cancel: threading.Event | None, tool_names: list[str] | None, streamed: bool) -> ChatResponse:
        parser = SSEParser()
        acc = StreamAccumulator()
        total = 0
        done = False
        t_first: float | None = None
        times: list[float] = []
        warnings: list[str] = []
        if not streamed:
            warnings.append("server streamed although stream=false was asked")
        chunks = resp.iter_bytes()
        try:
            for chunk in chunks:
                total += len(chunk)
                if total > self.max_body_bytes:
                    raise self._reply_error(f"stream over the {self.max_body_bytes // (1024 * 1024)} MB cap; stopped reading")
                try:
                    events = parser.feed(chunk)
                except UnicodeDecodeError as exc:
                    raise self._reply_error(f"stream is not valid UTF-8 (byte {total - len(chunk) + max(exc.start, 0)})") from None
                now = time.monotonic()
                for ev in events:
                    kind = self._event(ev, acc)
                    if kind == "done":
                        done = True
                        break
                    if kind == "delta":
                        if t_first is None:
                            t_first = now
                        times.append(now - t_send)
                if done:
                    self._drain(chunks, dog)
                    break
                if acc.finish_reason and dog.tail_deadline is None:
                    dog.tail_deadline = time.monotonic() + self.tail_grace_s
                self._check_stop(deadline, cancel)
        except httpx.HTTPError:
            if dog.fired == "tail" or (acc.finish_reason and dog.fired is None and not (
                    cancel is not None and cancel.is_set()) and not (deadline is not None and time.monotonic() >= deadline)):
                warnings.append("stream ended after finish_reason without [DONE] "
                                + ("(nothing more within the grace period)" if dog.fired == "tail" else "(connection closed)"))
                return self._finish_stream(acc, True, t_send, t_first, times, tool_names, warnings)
            raise
        if not done:
            try:
                for ev in parser.close():
                    done = self._event(ev, acc) == "done" or done
            except UnicodeDecodeError as exc:
                raise self._reply_error(f"stream is not valid UTF-8 (byte {exc.start})") from None
        return self._finish_stream(acc, done, t_send, t_first, times, tool_names, warnings)

    def _drain(self, chunks: Iterator[bytes], dog: _Watchdog) -> None:
        """Read what follows ``[DONE]`` (the chunked terminator) so the connection stays
        kept-alive; a server that holds the stream open after it gets the tail grace."""
        dog.tail_deadline = time.monotonic() + min(self.tail_grace_s, 1.0)
        left = 64 * 1024
        try:
            for chunk in chunks:
                left -= len(chunk)
                if left < 0:
                    return
        except httpx.HTTPError:
            return

    def _finish_stream(self, acc: StreamAccumulator, done: bool, t_send: float, t_first: float | None,
                       times: list[float], tool_names: list[str] | None, warnings: list[str]) -> ChatResponse:
        if not done:
            if not acc.finish_reason:
                raise self._reply_error(f"stream ended after {acc.events} event(s) without a finish_reason or [DONE]")
            warnings.append("stream ended without [DONE]")
        reply = self._assemble("".join(acc.content), "".join(acc.reasoning), acc.raw_tool_calls(), acc.finish_reason,
                               acc.usage, acc.timings, acc.model, tool_names)
        reply.ttft_ms = (t_first - t_send) * 1000 if t_first is not None else None
        reply.chunk_times_s = times
        reply.warnings = warnings + reply.warnings
        return reply

    def _assemble(self, content: str, reasoning: str, raw_calls: list[Any] | None, finish: Any,
                  usage: dict[str, Any] | None, timings: dict[str, Any] | None, model: str | None,
                  tool_names: list[str] | None) -> ChatResponse:
        # text at the boundary: lone surrogates (valid JSON escapes) become U+FFFD here, and a
        # pair split across stream chunks is joined, so nothing downstream meets unencodable text
        content, reasoning = valid_text(content), valid_text(reasoning)
        if raw_calls:
            raw_calls = valid_json(raw_calls)
        model = valid_text(model) if model else model
        calls, content, warnings = normalise_tool_calls(raw_calls, content, tool_names)
        # arguments are JSON inside JSON: their escapes were decoded only now
        calls = [_valid_call(c) for c in calls]
        raw_finish = valid_text(finish) if isinstance(finish, str) else None
        norm = raw_finish
        if calls and raw_finish not in ("tool_calls", "length"):
            if raw_finish is not None:
                warnings.append(f"finish_reason {raw_finish!r} with tool calls; read as 'tool_calls'")
            norm = "tool_calls"
        elif not calls and raw_finish in ("tool_calls", "function_call"):
            warnings.append(f"finish_reason {raw_finish!r} without any tool call; read as 'stop'")
            norm = "stop"
        return ChatResponse(content=content, reasoning=reasoning, tool_calls=calls, finish_reason=norm,
                            raw_finish_reason=raw_finish, prompt_tokens=_usage_int(usage, "prompt_tokens"),
                            completion_tokens=_usage_int(usage, "completion_tokens"), server_timings=timings,
                            model=model, warnings=warnings)
