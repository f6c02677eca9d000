"""The scripted server's request handler: routes, chat answers (whole or streamed as SSE) and
the faults a script asks for."""

from __future__ import annotations

import json
import re
import select
import socket
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

import attrs

from hbench.testing.scripts import _FILLER, Fault, Turn

if TYPE_CHECKING:  # pragma: no cover
    from hbench.testing.server import _HTTPServer


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
