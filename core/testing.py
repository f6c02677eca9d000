"""A scripted OpenAI-compatible server on 127.0.0.1, and pytest fixtures.

The fake model for tests, benchmarks and plugin authors. It speaks enough of the
OpenAI chat-completions API (``GET /v1/models``, ``POST /v1/chat/completions`` streamed
as SSE or not, ``GET /health``) for a real client to drive a real tool-calling loop,
and it can misbehave on purpose in every way local servers do.

Python::

    from hbench.testing import ScriptedServer, answer, call, Fault

    with ScriptedServer({"budget": [call("read_file", path="notes.md"), answer("$42,000")]}) as srv:
        ...  # point a lane at srv.url ("http://127.0.0.1:PORT/v1")
        srv.chat_requests  # every chat request it got (body, times, disconnected, ...)

pytest (this module is a pytest plugin through the ``pytest11`` entry point)::

    def test_x(scripted_server, hbench_plugin):
        srv = scripted_server({"budget": [answer("42")]}, token_latency_s=0.001)
        hbench_plugin(MyPlugin())          # registered for this test only

Command line (a managed lane's ``start`` command in tests)::

    python -m hbench.testing serve --port P [--script FILE.json] [--model ID]
        [--token-latency S] [--latency S] [--timings] [--loading S] [--record FILE.jsonl]

prints ``ready http://127.0.0.1:P/v1`` once listening and serves until SIGTERM.

How a request finds its turn
----------------------------
* The **script** is the first one whose ``match`` is a substring of the text of the
  last ``user`` message (else ``default``; without a default the answer is ``"OK."``).
* The **turn** is the number of ``assistant`` messages after that user message: the
  first request of an attempt plays turn 0, the request after one tool round plays
  turn 1, ... Past the end, the last turn repeats (a one-turn tool-call script is a
  model that loops forever).
* The **attempt**: a request holding no assistant message *starts* an attempt, and a
  script's ``attempts`` list is indexed by how many attempts of that script started
  (cycling). A start request answered with a fault the client is expected to retry
  (``http``, ``drop``, ``reject_stream``) does not count as a new attempt. Later turns
  find their attempt from the tool-call ids the server handed out
  (``call_a<attempt>t<turn>i<i>_...``), else the latest attempt of that script.

Script file (JSON)
------------------
::

    {
      "model": "scripted-model",                     # optional, the served model id
      "scripts": [
        {"match": "budget",                          # substring of the user prompt
         "turns": [                                  # one attempt's turns, in order
           {"tool_calls": [{"name": "read_file", "arguments": {"path": "notes.md"}}]},
           {"content": "The budget is $42,000."}
         ]},
        {"match": "flaky",
         "attempts": [                               # attempt 1, 2, ... (cycles)
           [{"content": "right"}],
           [{"content": "wrong", "faults": [{"kind": "http", "status": 503, "times": 1}]}]
         ]}
      ],
      "default": [{"content": "I don't know."}]      # optional
    }

A turn has ``content`` (the final answer), ``reasoning`` (sent as
``reasoning_content``), ``tool_calls`` (``[{"name", "arguments": object or raw
string, "id"?}]``), ``tokens`` (answer with N filler tokens), ``finish_reason``,
``latency_s`` (before the first byte), ``token_latency_s`` (per streamed token), and
``faults``. A fault has ``kind``, ``times`` (how many requests reaching that turn it
hits; null = every one) and the options its kind reads:

=====================  =================================================================
kind                   effect
=====================  =================================================================
http                   HTTP ``status`` (500) with a JSON error; 429 sends ``Retry-After:
                       retry_after_s``
reject_stream          400 "streaming is not supported" to a ``stream: true`` request
stall                  no byte for ``stall_s`` (default: until the client hangs up)
stall_mid_stream       stalls ``stall_s`` after ``after_chunks`` SSE events
drop                   closes the connection after ``after_chunks`` events (or half the body)
truncated_json         the body (or one SSE event) is cut mid-JSON
invalid_utf8           the answer holds bytes that are not UTF-8
wrong_content_type     200 with ``text/html`` (a proxy's error page)
huge_body              an answer of ``size_bytes`` (50 MB)
no_done                the stream never sends ``[DONE]``; with ``stall_s`` it then holds
                       the connection open
empty                  200 with an empty body
malformed_args         tool-call arguments are broken JSON
args_object            tool-call arguments sent as a JSON object, not a string
calls_in_content       tool calls written into content as ``<tool_call>{...}</tool_call>``
fenced_calls           tool calls written into content as fenced JSON
missing_ids            tool calls without ids
stop_finish            ``finish_reason: "stop"`` although there are tool calls
other_model            answers as model ``model`` ("other-model")
many_args              the first tool call gets ``count`` (10,000) extra arguments
sse_comments           ``: keep-alive`` comment lines between events
no_usage               no usage, even when ``stream_options.include_usage`` asks
=====================  =================================================================

Server options (constructor or CLI): ``model``, ``latency_s``, ``token_latency_s``,
``timings`` (llama.cpp-style ``timings``, scaled by ``timings_factor``), ``loading_s``
(``/health`` and chat answer 503 "Loading model" that long), ``api_key`` (requests
without ``Authorization: Bearer KEY`` get 401), ``strict_model`` (a chat request for
another model id gets 404 "model 'x' not found", as vLLM and OpenAI answer). ``max_tokens`` truncates an answer
(``finish_reason: "length"``); ``ignore_eos: true`` with ``max_tokens`` answers exactly
``max_tokens`` tokens, as llama.cpp and vLLM do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import attrs

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "RecordedRequest",
    "Script",
    "ScriptError",
    "ScriptedServer",
    "ToolCallSpec",
    "Turn",
    "answer",
    "call",
    "calls",
    "load_script_file",
]

FAULT_KINDS: frozenset[str] = frozenset({
    "http", "reject_stream", "stall", "stall_mid_stream", "drop", "truncated_json",
    "invalid_utf8", "wrong_content_type", "huge_body", "no_done", "empty",
    "malformed_args", "args_object", "calls_in_content", "fenced_calls", "missing_ids",
    "stop_finish", "other_model", "many_args", "sse_comments", "no_usage",
})
#: faults a client is expected to retry: a start request hit by one is not a new attempt
RETRIED_FAULTS: frozenset[str] = frozenset({"http", "drop", "reject_stream"})
#: faults that replace the normal response (at most one applies per request)
_TRANSPORT_FAULTS = ("http", "reject_stream", "stall", "wrong_content_type", "empty",
                     "truncated_json", "invalid_utf8", "huge_body", "drop",
                     "stall_mid_stream", "no_done")

DEFAULT_MODEL = "scripted-model"
_FILLER = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
_ID_RE = re.compile(r"call_a(\d+)t\d+i\d+_")


class ScriptError(ValueError):
    """A script (file or Python value) is invalid; the message names where and why."""


# --------------------------------------------------------------------------- scripts


@attrs.frozen
class Fault:
    """One injected misbehaviour; see the module docstring for the kinds."""

    kind: str = attrs.field()
    times: int | None = None  # None = every request that reaches the turn
    status: int = 500
    retry_after_s: float | None = None
    stall_s: float | None = None  # None = until the client disconnects (stall) / 0 (no_done)
    after_chunks: int = 2
    size_bytes: int = 50 * 1024 * 1024
    model: str = "other-model"
    count: int = 10_000

    @kind.validator
    def _check_kind(self, _a: Any, value: str) -> None:
        if value not in FAULT_KINDS:
            raise ScriptError(f"unknown fault kind {value!r} (known: {', '.join(sorted(FAULT_KINDS))})")


@attrs.frozen
class ToolCallSpec:
    name: str
    arguments: Any = attrs.field(factory=dict)  # dict (JSON-encoded on the wire) or a raw string
    id: str | None = None


@attrs.frozen
class Turn:
    """One model reply: tool calls, or a final answer (content), or both."""

    content: str | None = None
    reasoning: str | None = None
    tool_calls: tuple[ToolCallSpec, ...] = ()
    tokens: int | None = None  # answer with this many filler tokens
    finish_reason: str | None = None
    latency_s: float | None = None
    token_latency_s: float | None = None
    faults: tuple[Fault, ...] = ()


@attrs.frozen
class Script:
    """The turns played for prompts containing ``match`` (``attempts`` varies them)."""

    match: str
    turns: tuple[Turn, ...] = ()
    attempts: tuple[tuple[Turn, ...], ...] = ()

    def turns_for(self, attempt: int) -> tuple[Turn, ...]:
        """Turns of the 1-based ``attempt``."""
        if self.attempts:
            return self.attempts[(attempt - 1) % len(self.attempts)]
        return self.turns


def answer(text: str, **kw: Any) -> Turn:
    """A final-answer turn."""
    return Turn(content=text, **kw)


def call(name: str, arguments: Any = None, /, **kwargs: Any) -> Turn:
    """A turn with one tool call: ``call("read_file", path="a.md")`` or ``call("x", {...})``.
    Turn options go in ``turn=dict(...)``: ``call("grep", pattern="x", turn={"faults": [...]})``."""
    turn_kw = kwargs.pop("turn", {}) or {}
    args = dict(arguments) if isinstance(arguments, dict) else (arguments if arguments is not None else {})
    if isinstance(args, dict):
        args.update(kwargs)
    return _turn({**turn_kw, "tool_calls": [{"name": name, "arguments": args}]}, "call()")


def calls(*specs: tuple[str, Any] | ToolCallSpec, **turn_kw: Any) -> Turn:
    """A turn with several tool calls: ``calls(("glob", {"pattern": "*"}), ("read_file", {...}))``."""
    out = [s if isinstance(s, ToolCallSpec) else ToolCallSpec(s[0], s[1]) for s in specs]
    return _turn({**turn_kw, "tool_calls": out}, "calls()")


def _fault(value: Any, where: str) -> Fault:
    if isinstance(value, Fault):
        return value
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict):
        raise ScriptError(f"{where}: a fault is an object with 'kind', got {type(value).__name__}")
    known = {a.name for a in attrs.fields(Fault)}
    extra = sorted(set(value) - known)
    if extra:
        raise ScriptError(f"{where}: unknown key(s) {', '.join(map(repr, extra))} (known: {', '.join(sorted(known))})")
    if "kind" not in value:
        raise ScriptError(f"{where}: a fault needs 'kind' (one of {', '.join(sorted(FAULT_KINDS))})")
    try:
        return Fault(**value)
    except ScriptError as exc:
        raise ScriptError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise ScriptError(f"{where}: {exc}") from None


def _tool_call(value: Any, where: str) -> ToolCallSpec:
    if isinstance(value, ToolCallSpec):
        return value
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ScriptError(f"{where}: a tool call is an object with a string 'name' and 'arguments'")
    extra = sorted(set(value) - {"name", "arguments", "id"})
    if extra:
        raise ScriptError(f"{where}: unknown key(s) {', '.join(map(repr, extra))} (known: arguments, id, name)")
    return ToolCallSpec(name=value["name"], arguments=value.get("arguments", {}), id=value.get("id"))


_TURN_KEYS = {a.name for a in attrs.fields(Turn)}


def _turn(value: Any, where: str) -> Turn:
    if isinstance(value, Turn):
        return value
    if isinstance(value, str):
        return Turn(content=value)
    if not isinstance(value, dict):
        raise ScriptError(f"{where}: a turn is an object (content / tool_calls / faults ...), got {type(value).__name__}")
    extra = sorted(set(value) - _TURN_KEYS)
    if extra:
        raise ScriptError(f"{where}: unknown key(s) {', '.join(map(repr, extra))} (known: {', '.join(sorted(_TURN_KEYS))})")
    kw = dict(value)
    tcs = kw.pop("tool_calls", None) or []
    if not isinstance(tcs, (list, tuple)):
        raise ScriptError(f"{where}.tool_calls: expected a list")
    faults = kw.pop("faults", None) or []
    if not isinstance(faults, (list, tuple)):
        raise ScriptError(f"{where}.faults: expected a list")
    for key in ("content", "reasoning", "finish_reason"):
        if kw.get(key) is not None and not isinstance(kw[key], str):
            raise ScriptError(f"{where}.{key}: expected a string")
    for key in ("latency_s", "token_latency_s"):
        if kw.get(key) is not None and (not isinstance(kw[key], (int, float)) or kw[key] < 0):
            raise ScriptError(f"{where}.{key}: expected a number >= 0")
    if kw.get("tokens") is not None and (not isinstance(kw["tokens"], int) or kw["tokens"] < 0):
        raise ScriptError(f"{where}.tokens: expected an integer >= 0")
    return Turn(
        tool_calls=tuple(_tool_call(t, f"{where}.tool_calls[{i}]") for i, t in enumerate(tcs)),
        faults=tuple(_fault(f, f"{where}.faults[{i}]") for i, f in enumerate(faults)),
        **kw,
    )


def _turns(value: Any, where: str) -> tuple[Turn, ...]:
    if isinstance(value, (Turn, str, dict)):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ScriptError(f"{where}: expected a non-empty list of turns")
    return tuple(_turn(t, f"{where}[{i}]") for i, t in enumerate(value))


def _script(value: Any, where: str, match: str | None = None) -> Script:
    if isinstance(value, Script):
        return value
    if isinstance(value, dict) and ("turns" in value or "attempts" in value or "match" in value):
        extra = sorted(set(value) - {"match", "turns", "attempts"})
        if extra:
            raise ScriptError(f"{where}: unknown key(s) {', '.join(map(repr, extra))} (known: attempts, match, turns)")
        m = value.get("match", match)
        if not isinstance(m, str):
            raise ScriptError(f"{where}.match: expected the prompt substring as a string")
        if "attempts" in value:
            atts = value["attempts"]
            if not isinstance(atts, (list, tuple)) or not atts:
                raise ScriptError(f"{where}.attempts: expected a non-empty list of turn lists")
            return Script(m, attempts=tuple(_turns(a, f"{where}.attempts[{i}]") for i, a in enumerate(atts)))
        return Script(m, turns=_turns(value.get("turns"), f"{where}.turns"))
    if match is None:
        raise ScriptError(f"{where}: expected a script object with 'match' and 'turns' or 'attempts'")
    return Script(match, turns=_turns(value, where))


def parse_scripts(value: Any, where: str = "scripts") -> list[Script]:
    """Scripts from ``{match: turns}``, a list of scripts, or ``None``."""
    if value is None:
        return []
    if isinstance(value, Script):
        return [value]
    if isinstance(value, dict):
        return [_script(v, f"{where}[{k!r}]", match=k) for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return [_script(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ScriptError(f"{where}: expected a mapping of prompt substring -> turns, or a list of scripts")


def load_script_file(path: str | Path) -> dict[str, Any]:
    """Read a script file: ``{"scripts": [...], "default": [...], "model": ...}`` (see above).
    Returns constructor keyword arguments for :class:`ScriptedServer`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScriptError(f"script file {path}: cannot read it ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ScriptError(f"script file {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ScriptError(f"script file {path}: the top level must be an object with 'scripts'")
    extra = sorted(set(data) - {"scripts", "default", "model"})
    if extra:
        raise ScriptError(f"script file {path}: unknown key(s) {', '.join(map(repr, extra))} (known: default, model, scripts)")
    try:
        out: dict[str, Any] = {"scripts": parse_scripts(data.get("scripts"), "scripts")}
        if data.get("default") is not None:
            out["default"] = _turns(data["default"], "default")
    except ScriptError as exc:
        raise ScriptError(f"script file {path}: {exc}") from None
    if data.get("model") is not None:
        if not isinstance(data["model"], str):
            raise ScriptError(f"script file {path}: model: expected a string")
        out["model"] = data["model"]
    return out


# --------------------------------------------------------------------------- records


@attrs.define
class RecordedRequest:
    """One request the server got."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text when it did not parse, or None
    t_start: float  # time.monotonic() when it arrived
    t_end: float | None = None
    status: int | None = None
    script: str | None = None  # the matched script's `match` ("" = default)
    attempt: int | None = None  # 1-based
    turn: int | None = None  # 0-based
    starts_attempt: bool = False
    faults: list[str] = attrs.field(factory=list)
    stream: bool = False
    disconnected: bool = False  # the client hung up before the response ended
    chunks_sent: int = 0
    cached_tokens: int | None = None  # prompt tokens the prefix cache covered (prefill_tok_s set)
    client_port: int | None = None  # the client's TCP port (same port = a kept-alive connection)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or []) if isinstance(self.body, dict) else []

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["headers"] = {k: ("***" if k.lower() == "authorization" else v) for k, v in self.headers.items()}
        return d


# --------------------------------------------------------------------------- helpers


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def split_tokens(text: str) -> list[str]:
    """The scripted server's 'tokens': words with their leading whitespace."""
    if not text:
        return []
    parts = re.findall(r"\s*\S+", text)
    tail = text[len("".join(parts)):]
    if tail:
        parts.append(tail)
    return parts


def _count_tokens(body: dict[str, Any]) -> int:
    n = 0
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            n += len(split_tokens(_text_of(m.get("content")))) + 3
    if body.get("tools"):
        n += len(split_tokens(json.dumps(body["tools"])))
    return n


class _ClientGone(Exception):
    """The client closed the connection."""


# --------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else ~40 ms per kept-alive request (LANES.md "Test servers")
    server_version = "hbench-scripted/1"
    sys_version = ""
    server: "_HTTPServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
        if self.server.owner.verbose:
            sys.stderr.write("scripted-server: " + (format % args) + "\n")

    # ------------------------------------------------------------- plumbing
    def _gone(self) -> bool:
        """True when the client closed its end (EOF is readable, no request pipelined)."""
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            if not r:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _sleep(self, seconds: float | None) -> None:
        """Sleep, waking early when the server stops; raise _ClientGone if the client hangs up."""
        self._sleep_until(None if seconds is None else time.monotonic() + seconds)

    def _sleep_until(self, end: float | None) -> None:
        """Sleep until ``end`` (monotonic; None = until the client hangs up or the server stops).
        Token pacing uses absolute due times, so per-token overheads do not add up."""
        stop = self.server.owner._stopping
        while True:
            if self._gone():
                raise _ClientGone
            left = 0.05 if end is None else min(0.05, end - time.monotonic())
            if left <= 0:
                return
            if stop.wait(left):
                raise _ClientGone

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            raise _ClientGone from None

    def _chunk(self, data: bytes) -> None:
        self._write(b"%x\r\n%s\r\n" % (len(data), data))

    def _send_head(self, status: int, ctype: str, length: int | None, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        try:
            self.end_headers()
        except OSError:
            raise _ClientGone from None

    def _send_json(self, status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self._send_head(status, "application/json", len(data), extra)
        self._write(data)

    def _error(self, status: int, message: str, extra: dict[str, str] | None = None) -> None:
        self._send_json(status, {"error": {"code": status, "message": message, "type": "scripted"}}, extra)

    # ------------------------------------------------------------- routes
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self._handle(None)

    def do_POST(self) -> None:  # noqa: N802
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            return self._error(400, "a POST needs a valid Content-Length")
        raw = self.rfile.read(length) if length else b""
        self._handle(raw)

    def _handle(self, raw: bytes | None) -> None:
        owner = self.server.owner
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = raw.decode("utf-8", "replace")
        rec = RecordedRequest(method=self.command, path=self.path.split("?")[0], headers=dict(self.headers.items()),
                              body=body, t_start=time.monotonic(), client_port=self.client_address[1])
        if self._canary(rec):
            return
        owner._record(rec)
        try:
            self._route(rec)
        except _ClientGone:
            rec.disconnected = True
            self.close_connection = True
        finally:
            rec.t_end = time.monotonic()
            owner._recorded(rec)

    def _canary(self, rec: RecordedRequest) -> bool:
        """hbench's 1-token generation canary (header ``X-Hbench-Canary``, sent once when a
        lane gets ready): answered here, counted in ``owner.canaries``, never in
        ``requests`` and never against a script, so scripted attempts stay as written.
        ``canary_fault = (status, message)`` makes it fail (a wedged engine); loading, a
        wrong key and ``strict_model`` apply to it as to any request."""
        owner = self.server.owner
        if rec.method != "POST" or not any(k.lower() == "x-hbench-canary" for k in rec.headers):
            return False
        if owner.canary_mode == "script":
            return False
        with owner._lock:
            owner.canaries += 1
        model = rec.body.get("model") if isinstance(rec.body, dict) else None
        if owner.loading():
            self._error(503, "Loading model")
        elif owner.api_key and self.headers.get("Authorization") != f"Bearer {owner.api_key}":
            self._error(401, "invalid or missing API key")
        elif owner.strict_model and model != owner.model:
            self._error(404, f"model {model!r} not found")
        elif owner.canary_fault:
            self._error(owner.canary_fault[0], owner.canary_fault[1])
        else:
            self._send_json(200, {"id": "chatcmpl-canary", "object": "chat.completion", "created": 0,
                                  "model": owner.model, "choices": [{"index": 0, "finish_reason": "length",
                                  "message": {"role": "assistant", "content": "OK"}}],
                                  "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
        return True

    def _route(self, rec: RecordedRequest) -> None:
        owner = self.server.owner
        path = rec.path.rstrip("/")
        if rec.method == "GET" and path in ("/health", "/v1/health/ready", "/v1/health/live"):
            if owner.loading():
                rec.status = 503
                return self._error(503, "Loading model")
            rec.status = 200
            return self._send_json(200, {"status": "ok"})
        if owner.api_key and self.headers.get("Authorization") != f"Bearer {owner.api_key}":
            rec.status = 401
            return self._error(401, "invalid or missing API key")
        if rec.method == "GET" and path in ("/v1/models", "/models"):
            rec.status = 200
            return self._send_json(200, {"object": "list", "data": [
                {"id": owner.model, "object": "model", "created": 0, "owned_by": "hbench-testing"}]})
        if rec.method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
            if owner.loading():
                rec.status = 503
                return self._error(503, "Loading model")
            if not isinstance(rec.body, dict) or not isinstance(rec.body.get("messages"), list):
                rec.status = 400
                return self._error(400, "request body must be a JSON object with 'messages'")
            if owner.strict_model and rec.body.get("model") != owner.model:
                rec.status = 404
                return self._error(404, f"model {rec.body.get('model')!r} not found")
            return self._chat(rec)
        rec.status = 404
        return self._error(404, f"no route {rec.method} {rec.path}")

    # ------------------------------------------------------------- chat
    def _chat(self, rec: RecordedRequest) -> None:
        owner = self.server.owner
        body: dict[str, Any] = rec.body
        rec.stream = bool(body.get("stream"))
        turn, faults = owner._plan(rec)
        kinds = {f.kind: f for f in faults}
        rec.faults = [f.kind for f in faults]
        model = kinds["other_model"].model if "other_model" in kinds else owner.model

        # ---- faults that replace the response
        if "http" in kinds:
            f = kinds["http"]
            rec.status = f.status
            extra = {"Retry-After": _fmt_num(f.retry_after_s)} if f.retry_after_s is not None else None
            return self._error(f.status, f"scripted fault: HTTP {f.status}", extra)
        if "reject_stream" in kinds and rec.stream:
            rec.status = 400
            return self._error(400, "streaming is not supported by this server (scripted)")
        if "stall" in kinds:
            self._sleep(kinds["stall"].stall_s)
        if "wrong_content_type" in kinds:
            rec.status = 200
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            self._send_head(200, "text/html; charset=utf-8", len(page))
            return self._write(page)
        if "empty" in kinds:
            rec.status = 200
            self._send_head(200, "text/event-stream" if rec.stream else "application/json", 0)
            return None

        latency = turn.latency_s if turn.latency_s is not None else owner.latency_s
        tok_lat = turn.token_latency_s if turn.token_latency_s is not None else owner.token_latency_s
        t0 = time.monotonic()
        if latency:
            self._sleep(latency)
        prompt_tokens = _count_tokens(body)
        if owner.prefill_tok_s:  # a prefill at a known rate; tokens a cached prefix covers are free
            cached = owner._prefix_cached(body, prompt_tokens)
            rec.cached_tokens = cached
            self._sleep((prompt_tokens - cached) / owner.prefill_tok_s)
        t_prefill = time.monotonic() - t0

        reply = _Reply.build(turn, kinds, body, rec)
        if rec.stream:
            self._stream(rec, reply, kinds, model, tok_lat, prompt_tokens, t_prefill)
        else:
            self._whole(rec, reply, kinds, model, tok_lat, prompt_tokens, t_prefill)

    def _timings(self, prompt_tokens: int, t_prefill: float, n: int, t_gen: float) -> dict[str, Any]:
        f = self.server.owner.timings_factor
        pms, gms = max(t_prefill * 1000, 0.001), max(t_gen * 1000, 0.001)
        return {"prompt_n": prompt_tokens, "prompt_ms": round(pms, 3),
                "prompt_per_second": prompt_tokens / pms * 1000,
                "predicted_n": n, "predicted_ms": round(gms, 3),
                "predicted_per_second": (n / gms * 1000) * f if n else 0.0}

    def _whole(self, rec: RecordedRequest, reply: "_Reply", kinds: dict[str, Fault], model: str,
               tok_lat: float, prompt_tokens: int, t_prefill: float) -> None:
        owner = self.server.owner
        t1 = time.monotonic()
        if tok_lat and reply.n_tokens:
            self._sleep(tok_lat * reply.n_tokens)
        msg: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.reasoning:
            msg["reasoning_content"] = reply.reasoning
        if reply.tool_calls:
            msg["tool_calls"] = reply.tool_calls
        obj: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": msg, "finish_reason": reply.finish_reason}],
        }
        if "no_usage" not in kinds:
            obj["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": reply.n_tokens,
                            "total_tokens": prompt_tokens + reply.n_tokens}
        if owner.timings:
            obj["timings"] = self._timings(prompt_tokens, t_prefill, reply.n_tokens, time.monotonic() - t1)
        rec.status = 200
        if "huge_body" in kinds:
            return self._huge_whole(obj, kinds["huge_body"].size_bytes)
        data = json.dumps(obj).encode()
        if "invalid_utf8" in kinds:
            data = data.replace(b'"role": "assistant"', b'"role": "assistant", "x": "\xff\xfe\xfd"', 1)
        if "truncated_json" in kinds:
            data = data[: len(data) // 2]
        self._send_head(200, "application/json", len(data))
        if "drop" in kinds or "stall_mid_stream" in kinds:
            self._write(data[: len(data) // 2])
            if "drop" in kinds:
                self._hang_up()
                raise _ClientGone
            self._sleep(kinds["stall_mid_stream"].stall_s)
            self._write(data[len(data) // 2:])
            return None
        self._write(data)
        return None

    def _huge_whole(self, obj: dict[str, Any], size: int) -> None:
        obj["choices"][0]["message"]["content"] = "\x00HUGE\x00"
        head, tail = json.dumps(obj).encode().split(b"\\u0000HUGE\\u0000", 1)
        self._send_head(200, "application/json", len(head) + size + len(tail))
        self._write(head)
        block = b"x" * 65536
        left = size
        while left > 0:
            n = min(left, len(block))
            self._write(block[:n])
            left -= n
        self._write(tail)

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _stream(self, rec: RecordedRequest, reply: "_Reply", kinds: dict[str, Fault], model: str,
                tok_lat: float, prompt_tokens: int, t_prefill: float) -> None:
        owner = self.server.owner
        cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        created = int(time.time())
        comments = "sse_comments" in kinds
        opts = rec.body.get("stream_options") or {}
        include_usage = bool(opts.get("include_usage")) if isinstance(opts, dict) else False

        def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": choices, **extra}

        rec.status = 200
        self._send_head(200, "text/event-stream", None, {"Cache-Control": "no-cache"})
        sent = 0

        def event(payload: bytes) -> None:
            nonlocal sent
            if "drop" in kinds and sent >= kinds["drop"].after_chunks:
                self._hang_up()
                raise _ClientGone
            if "stall_mid_stream" in kinds and sent == kinds["stall_mid_stream"].after_chunks:
                self._sleep(kinds["stall_mid_stream"].stall_s)
            if comments:
                self._chunk(b": keep-alive\n\n")
            self._chunk(b"data: " + payload + b"\n\n")
            sent += 1
            rec.chunks_sent = sent

        def send(obj: dict[str, Any]) -> None:
            event(json.dumps(obj).encode())

        send(chunk({"role": "assistant", "content": ""}))
        t1 = due = time.monotonic()

        def pace() -> None:
            nonlocal due
            if tok_lat:
                due += tok_lat
                self._sleep_until(due)

        for piece in reply.reasoning_pieces:
            pace()
            send(chunk({"reasoning_content": piece}))
        pieces = reply.content_pieces
        if "huge_body" in kinds:
            pieces = []
            size, block = kinds["huge_body"].size_bytes, "x" * 65536
            while size > 0:
                pieces.append(block[:size])
                size -= 65536
        for i, piece in enumerate(pieces):
            pace()
            payload = json.dumps(chunk({"content": piece})).encode()
            if "invalid_utf8" in kinds and i == 0:
                payload = payload.replace(b'"content": "', b'"content": "\xff\xfe', 1)
            if "truncated_json" in kinds and i == 0:
                payload = payload[: len(payload) // 2]
            event(payload)
        for tc_index, tc in enumerate(reply.tool_calls):
            pace()
            fn = tc["function"]
            head: dict[str, Any] = {"index": tc_index, "type": "function",
                                    "function": {"name": fn["name"], "arguments": ""}}
            if "id" in tc:
                head["id"] = tc["id"]
            args = fn["arguments"]
            if not isinstance(args, str):  # args_object: one delta holding the object
                head["function"]["arguments"] = args
                send(chunk({"tool_calls": [head]}))
                continue
            send(chunk({"tool_calls": [head]}))
            for j in range(0, len(args), 24):
                pace()
                send(chunk({"tool_calls": [{"index": tc_index, "function": {"arguments": args[j:j + 24]}}]}))
        extra: dict[str, Any] = {}
        if owner.timings:
            extra["timings"] = self._timings(prompt_tokens, t_prefill, reply.n_tokens, time.monotonic() - t1)
        send(chunk({}, reply.finish_reason, **extra))
        if include_usage and "no_usage" not in kinds:
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": reply.n_tokens,
                     "total_tokens": prompt_tokens + reply.n_tokens}
            if rec.cached_tokens is not None:
                usage["prompt_tokens_details"] = {"cached_tokens": rec.cached_tokens}
            send(chunk(None, usage=usage))
        if "no_done" in kinds:
            if kinds["no_done"].stall_s:
                self._sleep(kinds["no_done"].stall_s)
        else:
            event(b"[DONE]")
        self._write(b"0\r\n\r\n")


def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@attrs.define
class _Reply:
    """What one turn answers, after the rendering faults."""

    content: str | None
    reasoning: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str
    n_tokens: int
    content_pieces: list[str]
    reasoning_pieces: list[str]

    @classmethod
    def build(cls, turn: Turn, kinds: dict[str, Fault], body: dict[str, Any], rec: RecordedRequest) -> "_Reply":
        content = turn.content
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        max_tokens = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None
        if turn.tokens is not None or (body.get("ignore_eos") and max_tokens and not turn.tool_calls):
            n = max_tokens if body.get("ignore_eos") and max_tokens else turn.tokens or 0
            content = "".join(
                (" " if i else "") + _FILLER[i % len(_FILLER)] for i in range(n)
            )
        finish = "stop"
        pieces = split_tokens(content or "")
        if max_tokens is not None and len(pieces) > max_tokens:
            pieces = pieces[:max_tokens]
            content = "".join(pieces)
            finish = "length"
        calls_out: list[dict[str, Any]] = []
        for i, spec in enumerate(turn.tool_calls):
            args: Any = spec.arguments
            if "many_args" in kinds and i == 0:
                base = dict(args) if isinstance(args, dict) else {}
                base.update({f"arg{k}": k for k in range(kinds["many_args"].count)})
                args = base
            if "args_object" in kinds:
                wire_args: Any = args if isinstance(args, dict) else args
            else:
                wire_args = args if isinstance(args, str) else json.dumps(args)
            if "malformed_args" in kinds:
                text = wire_args if isinstance(wire_args, str) else json.dumps(wire_args)
                wire_args = text.rstrip("}").replace('"', "", 1) if text else "{"
            tc: dict[str, Any] = {"type": "function", "function": {"name": spec.name, "arguments": wire_args}}
            if "missing_ids" not in kinds:
                tc["id"] = spec.id or f"call_a{rec.attempt or 0}t{rec.turn or 0}i{i}_{uuid.uuid4().hex[:6]}"
            calls_out.append(tc)
        if calls_out:
            finish = "tool_calls"
        embedded = ""
        if calls_out and ("calls_in_content" in kinds or "fenced_calls" in kinds):
            objs = []
            for tc in calls_out:
                a = tc["function"]["arguments"]
                if isinstance(a, str):
                    try:
                        a = json.loads(a)
                    except json.JSONDecodeError:
                        pass
                objs.append({"name": tc["function"]["name"], "arguments": a})
            if "fenced_calls" in kinds:
                embedded = "".join("```json\n" + json.dumps(o) + "\n```\n" for o in objs)
            else:
                embedded = "".join("<tool_call>\n" + json.dumps(o) + "\n</tool_call>\n" for o in objs)
            calls_out = []
            finish = "stop"
            content = (content or "") + embedded
            pieces = split_tokens(content)
        if "stop_finish" in kinds:
            finish = "stop"
        if turn.finish_reason:
            finish = turn.finish_reason
        reasoning_pieces = split_tokens(turn.reasoning or "")
        n_tokens = len(pieces) + len(reasoning_pieces) + sum(
            1 + len(split_tokens(json.dumps(tc["function"]["arguments"]))) for tc in calls_out)
        return cls(content=content if (content or not calls_out) else None, reasoning=turn.reasoning,
                   tool_calls=calls_out, finish_reason=finish, n_tokens=n_tokens,
                   content_pieces=pieces, reasoning_pieces=reasoning_pieces)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # --concurrency 128 and more connect at once (benchmarks.concurrency)
    owner: "ScriptedServer"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up is normal here (timeouts, drops); anything else is printed."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, _ClientGone)) and not self.owner.verbose:
            return
        super().handle_error(request, client_address)


class ScriptedServer:
    """A scripted OpenAI-compatible server on 127.0.0.1 (a context manager).

    ``scripts``: ``{prompt substring: [turns]}``, a list of :class:`Script` (or dicts as in
    the script file), or a path to a script file. ``default``: the turns for prompts no
    script matches. Attribute changes (``token_latency_s``, ``model``, ...) take effect on
    the next request; :meth:`set_scripts` swaps the scripts and resets the counters.
    """

    def __init__(self, scripts: Any = None, *, default: Any = None, model: str = DEFAULT_MODEL,
                 latency_s: float = 0.0, token_latency_s: float = 0.0, timings: bool = False,
                 timings_factor: float = 1.0, loading_s: float = 0.0, api_key: str | None = None,
                 host: str = "127.0.0.1", port: int = 0, record_path: str | Path | None = None,
                 verbose: bool = False, strict_model: bool = False):
        if isinstance(scripts, (str, Path)):
            loaded = load_script_file(scripts)
            scripts = loaded["scripts"]
            default = default if default is not None else loaded.get("default")
            model = loaded.get("model", model)
        self.model = model
        self.latency_s = latency_s
        self.token_latency_s = token_latency_s
        self.timings = timings
        self.timings_factor = timings_factor
        self.loading_s = loading_s
        self.api_key = api_key
        self.strict_model = strict_model
        #: hbench's generation canary: "answer" it aside (not recorded, no script consumed),
        #: or "script" (an ordinary request); canary_fault = (status, message) fails it
        self.canary_mode = "answer"
        #: prompt tokens per second before the first token (0 = no prefill delay); with
        #: prefix_cache, a prompt sharing a prefix with an earlier one skips that prefix
        self.prefill_tok_s = 0.0
        self.prefix_cache = True
        self._seen_prompts: list[list[str]] = []
        self.canary_fault: tuple[int, str] | None = None
        self.canaries = 0
        self.host, self.port = host, port
        self.verbose = verbose
        self.record_path = Path(record_path) if record_path else None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: list[RecordedRequest] = []
        self._changed = threading.Condition(self._lock)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._t_started = 0.0
        self.set_scripts(scripts, default=default)

    # ------------------------------------------------------------- lifecycle
    def start(self) -> "ScriptedServer":
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self._t_started = time.monotonic()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"scripted-server:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> "ScriptedServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The OpenAI base URL, ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def loading(self) -> bool:
        return bool(self.loading_s) and time.monotonic() - self._t_started < self.loading_s

    # ------------------------------------------------------------- scripts
    def set_scripts(self, scripts: Any, *, default: Any = None) -> None:
        """Replace the scripts (and default) and reset attempt and fault counters."""
        parsed = parse_scripts(scripts)
        dflt = _turns(default, "default") if default is not None else (Turn(content="OK."),)
        with self._lock:
            self._scripts = parsed
            self._default = Script("", turns=dflt)
            self._started: dict[str, int] = {}
            self._latest: dict[str, int] = {}
            self._fault_hits: dict[tuple[str, int, int, int], int] = {}

    def _prefix_cached(self, body: dict[str, Any], prompt_tokens: int) -> int:
        """Prompt tokens a previous request's prompt already covers (its common prefix)."""
        words = [w for m in body.get("messages") or [] if isinstance(m, dict)
                 for w in split_tokens(_text_of(m.get("content")))]
        with self._lock:
            best = 0
            if self.prefix_cache:
                for seen in self._seen_prompts:
                    n = 0
                    for a, b in zip(seen, words):
                        if a != b:
                            break
                        n += 1
                    best = max(best, n)
            self._seen_prompts.append(words)
        return min(best, prompt_tokens)

    def _match(self, prompt: str) -> Script:
        for s in self._scripts:
            if s.match and s.match in prompt:
                return s
        return self._default

    def _plan(self, rec: RecordedRequest) -> tuple[Turn, list[Fault]]:
        """Pick script, attempt, turn and the faults that fire for this request."""
        messages = [m for m in rec.body.get("messages") or [] if isinstance(m, dict)]
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        prompt = _text_of(messages[last_user].get("content")) if last_user >= 0 else ""
        after = messages[last_user + 1:]
        assistants = [m for m in after if m.get("role") == "assistant"]
        turn_index = len(assistants)
        with self._lock:
            script = self._match(prompt)
            key = script.match
            if turn_index == 0:
                attempt = self._started.get(key, 0) + 1
                rec.starts_attempt = True
            else:
                attempt = None
                for m in assistants:
                    for tc in m.get("tool_calls") or []:
                        hit = _ID_RE.match(str((tc or {}).get("id", "")))
                        if hit:
                            attempt = int(hit.group(1))
                attempt = attempt or self._latest.get(key, 1)
            turns = script.turns_for(attempt)
            turn = turns[min(turn_index, len(turns) - 1)]
            fired: list[Fault] = []
            for fi, f in enumerate(turn.faults):
                hk = (key, attempt, turn_index, fi)
                n = self._fault_hits.get(hk, 0)
                if f.times is None or n < f.times:
                    self._fault_hits[hk] = n + 1
                    fired.append(f)
            if turn_index == 0 and not any(f.kind in RETRIED_FAULTS and
                                           (f.kind != "reject_stream" or rec.body.get("stream"))
                                           for f in fired):
                self._started[key] = attempt
            self._latest[key] = attempt
            rec.script, rec.attempt, rec.turn = key, attempt, turn_index
        # at most one response-replacing fault: the first in _TRANSPORT_FAULTS order
        replacing = [f for k in _TRANSPORT_FAULTS for f in fired if f.kind == k][:1]
        others = [f for f in fired if f.kind not in _TRANSPORT_FAULTS]
        return turn, replacing + others

    # ------------------------------------------------------------- records
    def _record(self, rec: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(rec)
            self._changed.notify_all()

    def _recorded(self, rec: RecordedRequest) -> None:
        with self._changed:
            self._changed.notify_all()
        if self.record_path:
            line = json.dumps(rec.to_json(), default=str)
            with self._lock, open(self.record_path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for(self, predicate: Callable[[list[RecordedRequest]], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate(requests)`` holds (re-checked on every request event)."""
        end = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self._requests)):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.05))
        return True


# --------------------------------------------------------------------------- pytest


try:  # a pytest plugin when pytest is there; the server works without it
    import pytest
except ImportError:  # pragma: no cover - production installs without the test extra
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def scripted_server() -> Iterator[Callable[..., ScriptedServer]]:
        """Factory: ``srv = scripted_server(scripts, **options)`` starts a ScriptedServer that
        is stopped when the test ends."""
        servers: list[ScriptedServer] = []

        def make(scripts: Any = None, **kwargs: Any) -> ScriptedServer:
            srv = ScriptedServer(scripts, **kwargs).start()
            servers.append(srv)
            return srv

        try:
            yield make
        finally:
            for srv in servers:
                srv.stop()

    @pytest.fixture
    def hbench_plugin() -> Iterator[Callable[..., str]]:
        """``hbench_plugin(obj, name=None)`` registers a plugin object with the process-wide
        plugin manager for this test only; it is unregistered when the test ends.

        It works whether or not the plugin under test is also installed: an installed copy
        (the same object, the same name, or a plugin from the same module, loaded through
        its entry point) is set aside for the test, so its lanes or reporters are not
        registered twice, and put back afterwards."""
        with plugins_for_test() as register:
            yield register


@contextlib.contextmanager
def plugins_for_test() -> Iterator[Callable[..., str]]:
    """What the ``hbench_plugin`` fixture does, as a context manager."""
    from hbench.plugin_manager import get_plugins

    names: list[str] = []
    set_aside: list[tuple[str, Any, Any]] = []

    def register(plugin: Any, name: str | None = None) -> str:
        pl = get_plugins()
        for other_name, other in _installed_copies(pl, plugin, name):
            set_aside.append((other_name, other, pl.infos.get(other_name)))
            pl.unregister(other_name)
        registered = pl.register(plugin, name=name)
        names.append(registered)
        return registered

    try:
        yield register
    finally:
        pm = get_plugins()
        for n in reversed(names):
            try:
                pm.unregister(n)
            except Exception:  # noqa: BLE001 - already gone (the test unregistered it)
                pass
        for other_name, other, info in reversed(set_aside):
            if not pm.pm.is_registered(other) and pm.pm.get_plugin(other_name) is None:
                pm.register(other, name=other_name)
                if info is not None:
                    pm.infos[other_name] = info


def _module_of(plugin: Any) -> str | None:
    """The module a plugin object comes from (a module is its own)."""
    import types

    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    return getattr(plugin, "__module__", None) or getattr(type(plugin), "__module__", None)


def _installed_copies(pl: Any, plugin: Any, name: str | None) -> list[tuple[str, Any]]:
    """Plugins loaded through an entry point (an installed distribution) that are
    ``plugin`` under another guise."""
    module = _module_of(plugin)
    found = []
    for other_name, other in pl.pm.list_name_plugin():
        info = pl.infos.get(other_name)
        if info is None or info.builtin or info.dist is None:
            continue
        if other is plugin or (name is not None and other_name == name) or (
                module not in (None, "__main__") and _module_of(other) == module):
            found.append((other_name, other))
    return found


# --------------------------------------------------------------------------- plugin packages


def borrowing_venv(dest: str | Path) -> Path:
    """A new virtual environment at ``dest`` that sees this one's packages (hbench, its
    dependencies and pip) through a ``.pth`` file, so a plugin package installed into it
    changes nothing here. Returns its python. ``site.addsitedir`` (not a bare path) makes
    this environment's own ``.pth`` files run too, editable installs included."""
    import subprocess
    import sysconfig

    dest = Path(dest)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True, timeout=120)
    py = dest / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    host = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "hbench-host.pth").write_text(f"import site; site.addsitedir({host!r})\n")
    return py


def pip_install(py: str | Path, package: str | Path) -> None:
    """``pip install --no-deps PACKAGE`` into the environment of ``py`` (a plugin package
    folder, as a user would install it); raises RuntimeError with pip's output tail."""
    import subprocess

    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(package)],
                       capture_output=True, text=True, timeout=300)
    if r.returncode:
        raise RuntimeError(f"pip install {Path(package).name} failed: {(r.stdout + r.stderr)[-800:]}")


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hbench.testing",
                                     description="hbench's scripted OpenAI-compatible test server")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve until SIGTERM; prints 'ready <url>' once listening")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0, help="0 = any free port (the ready line says which)")
    s.add_argument("--script", type=Path, help="script file (JSON; see the module docstring)")
    s.add_argument("--model", help=f"served model id (default: the script's, else {DEFAULT_MODEL})")
    s.add_argument("--latency", type=float, default=0.0, help="seconds before each response's first byte")
    s.add_argument("--token-latency", type=float, default=0.0, help="seconds per streamed token")
    s.add_argument("--timings", action="store_true", help="add llama.cpp-style timings")
    s.add_argument("--loading", type=float, default=0.0, help="answer 503 'Loading model' for S seconds")
    s.add_argument("--api-key-env", help="require 'Authorization: Bearer $VAR'")
    s.add_argument("--record", type=Path, help="append every request to this JSONL file")
    s.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    kwargs: dict[str, Any] = {}
    try:
        if args.script:
            kwargs = load_script_file(args.script)
        if args.model:
            kwargs["model"] = args.model
        api_key = None
        if args.api_key_env:
            api_key = os.environ.get(args.api_key_env)
            if not api_key:
                raise ScriptError(f"--api-key-env {args.api_key_env}: that environment variable is not set")
        srv = ScriptedServer(kwargs.pop("scripts", None), latency_s=args.latency,
                             token_latency_s=args.token_latency, timings=args.timings, loading_s=args.loading,
                             api_key=api_key, host=args.host, port=args.port, record_path=args.record,
                             verbose=args.verbose, **kwargs)
        srv.start()
    except ScriptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); pick another --port",
              file=sys.stderr)
        return 2

    done = threading.Event()

    def _stop(_sig: int, _frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"ready {srv.url}", flush=True)
    while not done.wait(0.5):
        pass
    srv.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
