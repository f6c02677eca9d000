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

import email.utils
import json
import re
import threading
import time
from typing import Any, Iterator

import httpx
import tenacity

from hbench.chat_stream import StreamAccumulator
from hbench.client_types import (
    AttemptCancelled,
    AttemptTimeout,
    ChatResponse,
    ClientError,
    RequestRejected,
    ServerReplyError,
    TransportError,
)
from hbench.limits import response_json
from hbench.logging import get_logger, register_secret, register_url_secrets, scrub
from hbench.sse import SSEEvent, SSEParser, parse_sse
from hbench.text import valid_json, valid_text
from hbench.tool_calls import NormalisedToolCall, kind_of, normalise_tool_calls, parse_arguments, valid_call
from hbench.watchdog import StreamRegistry, Watchdog, install_tracking

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
    "TransportError",
    "normalise_tool_calls",
    "parse_arguments",
    "parse_retry_after",
    "parse_sse",
]

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
#: how long to wait for usage / [DONE] after the finish_reason before giving up on them
TAIL_GRACE_S = 5.0

class _Retry(Exception):
    """Internal: a failure worth another try."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.status, self.retry_after = reason, status, retry_after


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
        self._streams = StreamRegistry()
        self.tracks_streams = transport is None and install_tracking(self._http, self._streams)
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
        dog = Watchdog(deadline, cancel, self._streams if self.tracks_streams else None)
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

    def _raise_stop(self, dog: Watchdog, deadline: float | None, cancel: threading.Event | None) -> None:
        if dog.fired == "cancel" or (cancel is not None and cancel.is_set()):
            raise AttemptCancelled(f"{self._where()}: attempt cancelled; the request was closed")
        if dog.fired == "timeout" or (deadline is not None and time.monotonic() >= deadline - 0.01):
            raise AttemptTimeout(f"{self._where()}: attempt deadline passed; the request was closed")

    def _read_capped(self, resp: httpx.Response, cap: int, dog: Watchdog, deadline: float | None,
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

    def _read(self, resp: httpx.Response, stream: bool, dog: Watchdog, t_send: float,
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
            raise self._reply_error(f"response JSON is {kind_of(obj)}, not a chat completion object")
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
                raise self._reply_error(f"choices[0].message.content is {kind_of(content)}, not text")
        reasoning = msg.get("reasoning_content", msg.get("reasoning"))
        usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else None
        tcs = msg.get("tool_calls")
        if tcs is not None and not isinstance(tcs, list):
            raise self._reply_error(f"choices[0].message.tool_calls is {kind_of(tcs)}, not a list")
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
            raise self._reply_error(f"stream event {acc.events + 1} is {kind_of(obj)}, not a chunk object")
        if "error" in obj and not obj.get("choices"):
            raise self._reply_error(f"server error mid-stream: {_error_text(data.encode())}")
        return "delta" if acc.add(obj) else "other"

    def _read_sse(self, resp: httpx.Response, dog: Watchdog, t_send: float, deadline: float | None,
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

    def _drain(self, chunks: Iterator[bytes], dog: Watchdog) -> None:
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
        calls = [valid_call(c) for c in calls]
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
