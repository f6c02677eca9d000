"""Loopback servers that imitate each lane kind's endpoints (tests of lanes, lifecycle,
throughput and doctor). Real HTTP on 127.0.0.1, real sockets, real timing.

In-process: ``with LaneImitation(kind="llamacpp", load_s=0.5) as srv: srv.base_url``.
As a process (a managed lane's ``start``)::

    python tests/lane_imitations.py --kind vllm --port 8123 --load-s 1 [--stubborn-child PIDFILE]
        [--exit-after S] [--never-ready] [--token-latency S] [--old-metric-names] [--wedged]

Behaviour per kind (docs/LANES.md):

* llamacpp: ``/health`` 503 ``Loading model`` until loaded, then 200; ``/props`` n_ctx;
  ``/metrics`` ``llamacpp:*``; ``timings`` on the last streamed chunk.
* vllm: the port is not even bound until loaded (connection refused); ``/health`` 200;
  ``/metrics`` with new or old (``--old-metric-names``) names; ``max_model_len``.
* nim: ``/v1/health/live`` 200 at once, ``/v1/health/ready`` 503 until loaded;
  metrics only at ``/v1/metrics``.
* ollama: ``GET /`` "Ollama is running"; ``/api/tags``; ``/v1/models`` owned_by "library".
* sglang: refused while loading (as vllm); ``/health`` 200; ``/get_model_info``;
  ``/metrics`` ``sglang:*`` (``--old-metric-names``: ``time_per_output_token``).
* lmstudio: ``/api/v0/models`` (type, publisher, state); litellm: ``/health/liveliness``
  "I'm alive!". Both otherwise plain OpenAI.
* openai: only ``/v1/models`` and chat.

``wedged``: health and models answer, but a chat completion never does (an engine that is
stuck while its HTTP front end is fine: why readiness ends with a 1-token canary).

Chat: streamed requests emit one token per ``token_latency`` seconds on an absolute
schedule (so the true decode rate is exactly ``1/token_latency``). ``tool_mode`` says
what a request with ``tools`` gets: structured, leak (``<tool_call>`` in content),
jinja_error, vllm_reject, plain. Every request is recorded (path, headers, body).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LEAKED = '<tool_call>\n{"name": "read_file", "arguments": {"path": "notes.txt"}}\n</tool_call>'


class State:
    def __init__(self, kind: str, model: str, load_s: float, token_latency: float, tool_mode: str,
                 reject_extras: bool, old_metric_names: bool, ctx: int, require_key: str | None,
                 server_rate_factor: float, never_ready: bool, eos_after: int):
        self.kind, self.model, self.load_s = kind, model, load_s
        self.token_latency, self.tool_mode = token_latency, tool_mode
        self.reject_extras, self.old_metric_names, self.ctx = reject_extras, old_metric_names, ctx
        self.require_key, self.server_rate_factor = require_key, server_rate_factor
        self.never_ready, self.eos_after = never_ready, eos_after
        self.wedged = False
        self.started = time.monotonic()
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.tokens_total = 0
        self.itl_sum = 0.0
        self.itl_count = 0

    def loaded(self) -> bool:
        return not self.never_ready and time.monotonic() - self.started >= self.load_s


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    disable_nagle_algorithm = True
    state: State

    def log_message(self, *_: Any) -> None:  # quiet
        pass

    def _record(self, body: Any) -> None:
        with self.state.lock:
            self.state.requests.append({"method": self.command, "path": self.path,
                                        "headers": dict(self.headers), "body": body})

    def _send(self, code: int, payload: Any, ctype: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else (
            payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        key = self.state.require_key
        if key and self.headers.get("Authorization") != f"Bearer {key}":
            self._send(401, {"error": {"message": "invalid api key", "code": 401}})
            return False
        return True

    # ------------------------------------------------------------------ GET
    def do_GET(self) -> None:  # noqa: N802
        self._record(None)
        s, path = self.state, self.path.split("?")[0]
        if path == "/" and s.kind == "ollama":
            return self._send(200, "Ollama is running", "text/plain")
        if path == "/api/tags" and s.kind == "ollama":
            return self._send(200, {"models": [{"name": s.model, "model": s.model, "size": 1}]})
        if path == "/get_model_info" and s.kind == "sglang":
            return self._send(200, {"model_path": f"/models/{s.model}", "tokenizer_path": f"/models/{s.model}",
                                    "is_generation": True, "max_context_length": s.ctx})
        if path == "/api/v0/models" and s.kind == "lmstudio":
            return self._send(200, {"object": "list", "data": [{"id": s.model, "object": "model", "type": "llm",
                                    "publisher": "lmstudio-community", "state": "loaded",
                                    "max_context_length": s.ctx}]})
        if path == "/health/liveliness" and s.kind == "litellm":
            return self._send(200, "I'm alive!")
        if path == "/health" and s.kind in ("llamacpp", "vllm", "sglang"):
            if s.kind == "llamacpp" and not s.loaded():
                return self._send(503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}})
            return self._send(200, {"status": "ok"})
        if path == "/v1/health/live" and s.kind == "nim":
            return self._send(200, {"object": "health.response", "message": "live"})
        if path == "/v1/health/ready" and s.kind == "nim":
            if not s.loaded():
                return self._send(503, {"object": "health.response", "message": "not ready"})
            return self._send(200, {"object": "health.response", "message": "ready"})
        if s.kind == "llamacpp" and not s.loaded() and path in ("/props", "/metrics", "/slots"):
            # the real llama-server answers every route 503 while it loads (issue 21)
            return self._send(503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}})
        if path == "/props" and s.kind == "llamacpp":
            return self._send(200, {"default_generation_settings": {"n_ctx": s.ctx}, "total_slots": 1})
        if (path == "/metrics" and s.kind in ("llamacpp", "vllm", "sglang")) or (path == "/v1/metrics" and s.kind == "nim"):
            return self._send(200, self._metrics(), "text/plain; version=0.0.4")
        if path == "/v1/models":
            if not self._authorised():
                return None
            if s.kind == "llamacpp" and not s.loaded():
                return self._send(503, {"error": {"code": 503, "message": "Loading model"}})
            owner = {"ollama": "library", "lmstudio": "organization_owner", "litellm": "openai"}.get(s.kind, s.kind)
            entry: dict[str, Any] = {"id": s.model, "object": "model", "owned_by": owner}
            if s.kind in ("vllm", "nim"):
                entry["max_model_len"] = s.ctx
            return self._send(200, {"object": "list", "data": [entry]})
        return self._send(404, {"error": {"message": f"no route {path}"}})

    def _metrics(self) -> str:
        s = self.state
        if s.kind == "llamacpp":
            return ("# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.\n"
                    "# TYPE llamacpp:tokens_predicted_total counter\n"
                    f"llamacpp:tokens_predicted_total {s.tokens_total}\n"
                    "# TYPE llamacpp:tokens_predicted_seconds_total counter\n"
                    f"llamacpp:tokens_predicted_seconds_total {s.itl_sum}\n"
                    "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 0\n")
        if s.kind == "sglang":
            itl = "sglang:time_per_output_token_seconds" if s.old_metric_names else "sglang:inter_token_latency_seconds"
            lbl = f'model_name="{s.model}"'
            return (f"# TYPE sglang:generation_tokens_total counter\nsglang:generation_tokens_total{{{lbl}}} {s.tokens_total}\n"
                    f"# TYPE sglang:cache_hit_rate gauge\nsglang:cache_hit_rate{{{lbl}}} 0.125\n"
                    f"# TYPE {itl} histogram\n"
                    f'{itl}_bucket{{{lbl},le="+Inf"}} {s.itl_count}\n'
                    f"{itl}_sum{{{lbl}}} {s.itl_sum}\n{itl}_count{{{lbl}}} {s.itl_count}\n")
        itl = "vllm:time_per_output_token_seconds" if s.old_metric_names else "vllm:inter_token_latency_seconds"
        cache = "vllm:gpu_cache_usage_perc" if s.old_metric_names else "vllm:kv_cache_usage_perc"
        lbl = f'model_name="{s.model}"'
        return (f"# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total{{{lbl}}} {s.tokens_total}\n"
                f"# TYPE {cache} gauge\n{cache}{{{lbl}}} 0.25\n"
                f"# TYPE {itl} histogram\n"
                f'{itl}_bucket{{{lbl},le="0.01"}} 0\n{itl}_bucket{{{lbl},le="+Inf"}} {s.itl_count}\n'
                f"{itl}_sum{{{lbl}}} {s.itl_sum}\n{itl}_count{{{lbl}}} {s.itl_count}\n")

    # ------------------------------------------------------------------ POST
    def do_POST(self) -> None:  # noqa: N802
        n = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            body = None
        self._record(body)
        s = self.state
        if self.path.split("?")[0] != "/v1/chat/completions" or not isinstance(body, dict):
            return self._send(404, {"error": {"message": "no route"}})
        if not self._authorised():
            return None
        if s.wedged:  # the front end took the request; the engine never answers
            time.sleep(3600)
            return None
        if s.reject_extras and ("ignore_eos" in body or "chat_template_kwargs" in body):
            return self._send(400, {"error": {"message": "Unrecognized request argument supplied: ignore_eos"}})
        if body.get("tools"):
            return self._tools(body)
        if body.get("stream"):
            return self._stream(body)
        return self._send(200, self._completion({"role": "assistant", "content": "one two three"}, "stop"))

    def _completion(self, message: dict[str, Any], finish: str) -> dict[str, Any]:
        return {"id": "chatcmpl-1", "object": "chat.completion", "model": self.state.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}}

    def _tools(self, body: dict[str, Any]) -> None:
        mode = self.state.tool_mode
        if mode == "jinja_error":
            return self._send(400, {"error": {"code": 400, "message": "tools param requires --jinja flag",
                                              "type": "invalid_request_error"}})
        if mode == "vllm_reject":
            return self._send(400, {"object": "error", "message": '"auto" tool choice requires '
                                    "--enable-auto-tool-choice and --tool-call-parser to be set",
                                    "type": "BadRequestError", "code": 400})
        if mode == "leak":
            return self._send(200, self._completion({"role": "assistant", "content": LEAKED}, "stop"))
        if mode == "plain":
            return self._send(200, self._completion({"role": "assistant", "content": "I cannot open files."}, "stop"))
        name = body["tools"][0]["function"]["name"]
        call = {"id": "call_1", "type": "function",
                "function": {"name": name, "arguments": json.dumps({"path": "notes.txt"})}}
        return self._send(200, self._completion({"role": "assistant", "content": "", "tool_calls": [call]}, "tool_calls"))

    def _chunk(self, obj: dict[str, Any]) -> None:
        self.wfile.write(f"data: {json.dumps(obj)}\n\n".encode())
        self.wfile.flush()

    def _stream(self, body: dict[str, Any]) -> None:
        s = self.state
        max_tokens = int(body.get("max_tokens") or 16)
        n = max_tokens if body.get("ignore_eos") else min(max_tokens, s.eos_after)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b": keep-alive comment\n\n")
        base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "model": s.model}
        self._chunk({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
        lat = s.token_latency
        t0 = time.monotonic()
        for i in range(n):
            wait = t0 + i * lat - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._chunk({**base, "choices": [{"index": 0, "delta": {"content": f" w{i}"}, "finish_reason": None}]})
        decode_s = max(time.monotonic() - t0, 1e-9)
        with s.lock:
            s.tokens_total += n
            s.itl_sum += decode_s
            s.itl_count += max(n - 1, 0)
        last: dict[str, Any] = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length" if n == max_tokens else "stop"}]}
        if s.kind == "llamacpp":
            true_rate = (n - 1) / decode_s if n > 1 else 0.0
            last["timings"] = {"predicted_n": n, "predicted_ms": decode_s * 1000,
                               "predicted_per_second": true_rate * s.server_rate_factor}
        self._chunk(last)
        if (body.get("stream_options") or {}).get("include_usage"):
            self._chunk({**base, "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": n,
                                                           "total_tokens": 20 + n}})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class LaneImitation:
    """An in-process imitation server on a free loopback port (context manager)."""

    def __init__(self, kind: str = "openai", model: str = "imit-model", load_s: float = 0.0,
                 token_latency: float = 0.0, tool_mode: str = "structured", reject_extras: bool = False,
                 old_metric_names: bool = False, ctx: int = 16384, require_key: str | None = None,
                 server_rate_factor: float = 1.0, never_ready: bool = False, eos_after: int = 1_000_000,
                 port: int = 0, wedged: bool = False):
        self.state = State(kind, model, load_s, token_latency, tool_mode, reject_extras, old_metric_names,
                           ctx, require_key, server_rate_factor, never_ready, eos_after)
        self.state.wedged = wedged
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._bind_timer: threading.Timer | None = None
        self._bind_lock = threading.Lock()

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.state.requests

    def finish_loading(self) -> None:
        """Be loaded from now on (bound, healthy): a test that must first see the loading
        state starts with a long ``load_s`` or ``never_ready`` and calls this when it has,
        instead of racing a timer on a busy machine."""
        if self._bind_timer:
            self._bind_timer.cancel()
        self._bind_once()
        self.state.load_s, self.state.never_ready = 0.0, False

    def _bind_once(self) -> None:
        with self._bind_lock:
            if self._httpd is None:
                self._bind()

    def _bind(self) -> None:
        handler = type("H", (Handler,), {"state": self.state})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def __enter__(self) -> "LaneImitation":
        if self.state.kind in ("vllm", "sglang") and self.state.load_s > 0:
            if not self._port:
                from hbench.lanes import free_port

                self._port = free_port()
            self._bind_timer = threading.Timer(self.state.load_s, self._bind_once)  # refused until then
            self._bind_timer.start()
        else:
            self._bind()
            self._port = self._httpd.server_address[1]
        return self

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def __exit__(self, *_: Any) -> None:
        if self._bind_timer:
            self._bind_timer.cancel()
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()


def _stubborn_child(pidfile: str) -> None:
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "[time.sleep(1) for _ in iter(int, 1)]")
    child = subprocess.Popen([sys.executable, "-c", code])  # noqa: S603 - same group as us
    with open(pidfile, "w") as fh:
        fh.write(str(child.pid))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", default="openai")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", default="imit-model")
    ap.add_argument("--load-s", type=float, default=0.0)
    ap.add_argument("--token-latency", type=float, default=0.0)
    ap.add_argument("--tool-mode", default="structured")
    ap.add_argument("--old-metric-names", action="store_true")
    ap.add_argument("--never-ready", action="store_true")
    ap.add_argument("--wedged", action="store_true", help="health OK, chat completions never answer")
    ap.add_argument("--exit-after", type=float, default=None, help="die (exit 3) this many seconds after start")
    ap.add_argument("--stubborn-child", default=None, help="spawn a child that ignores SIGTERM; write its pid here")
    ap.add_argument("--ignore-sigterm", action="store_true")
    ap.add_argument("--marker", default=None, help="append 'up PID'/'down PID' lines to this file")
    a = ap.parse_args()
    print(f"imitation {a.kind} starting on {a.port} (pid {os.getpid()})", flush=True)
    if a.marker:
        with open(a.marker, "a") as fh:
            fh.write(f"up {os.getpid()} {time.time()}\n")

    def on_term(*_: Any) -> None:
        if a.marker:
            with open(a.marker, "a") as fh:
                fh.write(f"down {os.getpid()} {time.time()}\n")
        os._exit(0)

    signal.signal(signal.SIGTERM, signal.SIG_IGN if a.ignore_sigterm else on_term)
    if a.stubborn_child:
        _stubborn_child(a.stubborn_child)
    if a.kind in ("vllm", "sglang") and a.load_s > 0:
        time.sleep(a.load_s)  # connection refused while "loading"
        a.load_s = 0.0
    srv = LaneImitation(kind=a.kind, model=a.model, load_s=a.load_s, token_latency=a.token_latency,
                        tool_mode=a.tool_mode, old_metric_names=a.old_metric_names,
                        never_ready=a.never_ready, port=a.port, wedged=a.wedged)
    srv.__enter__()
    print(f"ready http://127.0.0.1:{a.port}/v1", flush=True)
    if a.exit_after is not None:
        time.sleep(a.exit_after)
        print("imitation: simulated crash", flush=True)
        os._exit(3)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
