"""The scripted server: a threaded HTTP server on 127.0.0.1 that answers from its scripts."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from hbench.testing.scripts import (
    _ID_RE,
    _TRANSPORT_FAULTS,
    _turns,
    DEFAULT_MODEL,
    Fault,
    load_script_file,
    parse_scripts,
    RETRIED_FAULTS,
    Script,
    Turn,
)
from hbench.testing.handler import _ClientGone, _Handler, _text_of, RecordedRequest, split_tokens


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
