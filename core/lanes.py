"""The lane-kind interface (:class:`LaneKind`), finding a lane by name, and ``open_lane``.

Kinds live in plugins/lanes/. ``open_lane`` is what the runner, ``hbench doctor`` and
``hbench throughput`` use: it makes a lane ready (:mod:`hbench.readiness`; a managed lane
is started first and stopped afterwards by :mod:`hbench.lifecycle`) and yields a
:class:`RunningLane`.

Server facts (health endpoints, metric names) are in docs/LANES.md; each kind's metric names
are its own class variables (plugins/lanes/). Everything a server might not offer is looked
up by name and reported as "unsupported" (None), never a crash.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping

import attrs

from hbench.errors import BadInput, LaneError
from hbench.limits import response_json
from hbench.logging import get_logger, scrub
from hbench.models import LaneSpec

# readiness moved to its own module (issue 16: lanes <-> lifecycle cycle); its names stay
# importable from here for the code and plugins that import them from hbench.lanes
from hbench.readiness import (  # noqa: F401 - re-exported
    MANAGED_READY_TIMEOUT_S,
    STATUS_EVERY_S,
    UNMANAGED_READY_TIMEOUT_S,
    KeyRejected,
    LaneUnreachable,
    LaneWaitCancelled,
    RunningLane,
    api_key_for,
    auth_problem,
    check_served_model,
    key_rejected_message,
    lane_http,
    prove_generation,
    ready_timeout,
    wait_ready,
)

if TYPE_CHECKING:  # pragma: no cover
    # httpx and prometheus_client are imported where they are used: they are heavy, and
    # `hbench plugins` / `--help` load every lane kind, hence this module
    import httpx

    from hbench.plugin_manager import Registry

def server_root(base_url: str) -> str:
    """``http://h:p/v1`` -> ``http://h:p`` (health and metrics live at the server root)."""
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def parse_metrics(text: str, aliases: Mapping[str, str] | None = None) -> dict[str, float]:
    """Prometheus text -> ``{sample name: value summed over label sets}``.

    Histogram buckets and ``_created`` samples are dropped; ``_sum``/``_count`` are kept
    (diff them between two readings). ``aliases`` (old name -> current name, a kind's
    :attr:`LaneKind.metric_aliases`) files a sample a server still publishes under its old
    name under the current one too. Raises ``ValueError`` for text that is not Prometheus
    exposition format.
    """
    from prometheus_client.parser import text_string_to_metric_families  # ~60 ms: a metrics reading needs it

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_bucket") or s.name.endswith("_created"):
                continue
            out[s.name] = out.get(s.name, 0.0) + float(s.value)
    for old, new in (aliases or {}).items():
        if old in out and new not in out:
            out[new] = out[old]
    return out


def _delta(before: dict[str, float], after: dict[str, float], name: str) -> float | None:
    if name in before and name in after:
        return after[name] - before[name]
    return None


class LaneKind:
    """One kind of server. Override what differs from a plain OpenAI endpoint."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: metrics endpoints to try, relative to the server root (empty = no metrics)
    metrics_paths: ClassVar[tuple[str, ...]] = ()
    #: metric sample names a server renamed: old name -> current name (a reading files the
    #: old under the current one, so the rest of hbench asks for one name)
    metric_aliases: ClassVar[dict[str, str]] = {}
    #: the server's own decode rate: (tokens counter, seconds counter) pairs, tried in order;
    #: tokens over seconds between two readings (empty = the server does not say)
    decode_rate_counters: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: hbench always starts and stops this kind's lanes (it serves them itself), even
    #: without a start command
    always_managed: ClassVar[bool] = False
    #: what to tell a user whose server leaks tool calls into content
    tool_call_fix: ClassVar[str] = (
        "enable the server's tool-call parser for this model so calls come back as "
        "structured tool_calls"
    )
    #: the server refuses a request with tools until auto tool choice is enabled (vLLM's
    #: ``--enable-auto-tool-choice``): ``tool_call_fix`` is the answer to that refusal
    needs_auto_tool_choice: ClassVar[bool] = False

    # ------------------------------------------------------------------ starting
    def build_start(self, lane: LaneSpec) -> list[str] | None:
        """A start command built from kind-specific ``options`` (``{port}`` allowed), or None."""
        return None

    def stop_command(self, lane: LaneSpec) -> list[str] | None:
        """A command run before the process group is signalled (``docker stop``), or None."""
        return None

    def prepare(self, lane: LaneSpec, out_dir: Path) -> LaneSpec:
        """Fill in what a managed lane leaves open: the start command, the port, base_url.

        ``{port}`` and ``{host}`` in ``start``, ``env`` values and ``base_url`` are
        replaced by ``options.port`` (or a free loopback port) and ``127.0.0.1``.
        """
        start = lane.start if lane.start is not None else self.build_start(lane)
        if not start:
            return lane
        texts = [*start, *lane.env.values(), lane.base_url or ""]
        port: int | None = None
        if lane.base_url is None or any("{port}" in t for t in texts):
            port = int(lane.options.get("port") or free_port())

        def fill(text: str) -> str:
            if port is not None:
                text = text.replace("{port}", str(port))
            return text.replace("{host}", "127.0.0.1")

        base_url = fill(lane.base_url) if lane.base_url else f"http://127.0.0.1:{port}/v1"
        return attrs.evolve(
            lane, start=[fill(a) for a in start], base_url=base_url,
            env={k: fill(v) for k, v in lane.env.items()},
        )

    # ------------------------------------------------------------------ asking
    def ready(self, lane: LaneSpec, http: httpx.Client) -> tuple[bool, str]:
        """(ready?, detail). Default: ``GET {base_url}/models`` answers 200."""
        import httpx

        try:
            r = http.get(f"{lane.base_url.rstrip('/')}/models")
        except httpx.HTTPError as exc:
            return False, f"not reachable ({type(exc).__name__})"
        return r.status_code == 200, f"/v1/models -> {r.status_code}"

    def _models(self, lane: LaneSpec, http: httpx.Client) -> list[dict[str, Any]]:
        try:
            r = http.get(f"{lane.base_url.rstrip('/')}/models")
            data = response_json(r).get("data") or []
            return [d for d in data if isinstance(d, dict)]
        except Exception:  # noqa: BLE001 - an odd server is "unknown", never a crash
            return []

    def served_model(self, lane: LaneSpec, http: httpx.Client) -> str | None:
        """The model id the server reports in ``/v1/models``: the configured one when it is
        listed (servers like Ollama list many), else the first entry; None when unknown."""
        ids = [d.get("id") for d in self._models(lane, http) if isinstance(d.get("id"), str)]
        if lane.model and lane.model in ids:
            return lane.model
        return ids[0] if ids else None

    def context_length(self, lane: LaneSpec, http: httpx.Client) -> int | None:
        """The context window the server was started with, when it says (else None)."""
        models = self._models(lane, http)
        mine = [d for d in models if lane.model and d.get("id") == lane.model]
        for d in mine or models[:1]:
            for key in ("max_model_len", "context_length"):
                v = d.get(key)
                if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                    return v
        return None

    def server_metrics(self, lane: LaneSpec, http: httpx.Client) -> dict[str, float] | None:
        """Server-side counters (Prometheus) by name, or None when unsupported."""
        import httpx

        root = server_root(lane.base_url or "")
        for path in self.metrics_paths:
            try:
                r = http.get(f"{root}{path}")
            except httpx.HTTPError:
                return None
            if r.status_code != 200:
                continue
            try:
                return parse_metrics(r.text, self.metric_aliases)
            except ValueError:
                get_logger().info("lane.metrics_unparsable", lane=lane.name, path=path)
                return None
        return None

    def server_decode_tok_s(self, before: dict[str, float], after: dict[str, float]) -> float | None:
        """The server's own decode rate between two metric readings, or None: the first
        pair of :attr:`decode_rate_counters` that moved (tokens delta over seconds delta)."""
        for tokens, seconds in self.decode_rate_counters:
            n = _delta(before, after, tokens)
            s = _delta(before, after, seconds)
            if n and s and n > 0 and s > 0:
                return n / s
        return None

    def describe(self, lane: LaneSpec) -> dict[str, Any]:
        """Extra provenance for the scorecard (quant, server version, ...)."""
        return {}

    def tool_call_hint(self, lane: LaneSpec, http: httpx.Client) -> str | None:
        """Why this server answered a tool request without a structured call, when the
        server itself can tell (its chat template, say); None = no more than ``tool_call_fix``."""
        return None

    def canary(self, lane: LaneSpec, http: httpx.Client) -> tuple[bool | None, str]:
        """One 1-token chat completion: does the engine generate, not just answer /health?

        (True, detail) when a choice came back; (False, why) when the server refused for
        good (4xx: a wrong model id, a key); (None, why) for what may pass (503 while
        warming, a reset connection): :func:`prove_generation` asks again until its deadline.
        """
        import httpx

        body = {"model": lane.model or "default", "max_tokens": 1, "temperature": 0, "stream": False,
                "messages": [{"role": "user", "content": "Say OK."}]}
        try:
            r = http.post(f"{(lane.base_url or '').rstrip('/')}/chat/completions", json=body,
                          headers={CANARY_HEADER: "1"})
        except httpx.TimeoutException:
            return None, "no answer in time"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {scrub(str(exc))[:120]}"
        if r.status_code != 200:
            what = f"HTTP {r.status_code}: {_error_text(r)}"
            return (None if r.status_code in (429, 500, 502, 503, 504) else False), what
        try:
            choices = response_json(r).get("choices")
        except (ValueError, AttributeError):
            return False, f"HTTP 200 but not JSON: {scrub(r.text[:80])!r}"
        if not isinstance(choices, list) or not choices:
            return False, f"HTTP 200 but no choices: {scrub(r.text[:120])!r}"
        return True, "a 1-token completion came back"


#: the header the generation canary carries (hbench.testing's scripted server answers it
#: without counting it as an attempt's request; real servers ignore it)
CANARY_HEADER = "X-Hbench-Canary"


def _error_text(r: httpx.Response, limit: int = 160) -> str:
    """The server's error message, scrubbed whole and then cut (a cut must not leave half a key)."""
    try:
        body: Any = response_json(r)
    except ValueError:  # not JSON, or nested too deeply (hbench.limits)
        return scrub(r.text[:4000])[:limit]
    if isinstance(body, dict):
        err = body.get("error", body.get("detail", body.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            return scrub(str(err)[:4000])[:limit]
    return scrub(str(body)[:4000])[:limit]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def open_lane(spec: LaneSpec, kind: LaneKind, *, out_dir: Path, headroom_gb: float = 2.0,
              on_status: Callable[[str], None] | None = None,
              cancel: threading.Event | None = None) -> Iterator[RunningLane]:
    """Make ``spec`` ready and yield it; managed lanes are started and stopped here.
    ``cancel`` (Ctrl-C) ends the wait for readiness at once (:class:`LaneWaitCancelled`)."""
    spec = kind.prepare(attrs.evolve(spec), Path(out_dir))
    if spec.start:
        # lifecycle imports psutil (heavy: `hbench plugins` loads this module); only a lane
        # hbench starts needs it. lifecycle builds on hbench.readiness, never on this module
        from hbench.lifecycle import managed_lane

        with managed_lane(spec, kind, out_dir=out_dir, headroom_gb=headroom_gb, on_status=on_status,
                          cancel=cancel) as running:
            yield running
        return
    if not spec.base_url:
        raise LaneError(f"lane {spec.name!r}: no base_url and no start command; set base_url in hbench.toml")
    t0 = time.monotonic()
    timeout_s = ready_timeout(spec, managed=False)
    wait_ready(kind, spec, timeout_s, on_status, managed=False, cancel=cancel)
    running = RunningLane(spec=spec, kind=kind)
    check_served_model(running)
    if on_status:
        on_status("generation canary (1 token)")
    prove_generation(running, timeout_s, cancel)
    running.ready_s = time.monotonic() - t0
    yield running


def is_managed(spec: LaneSpec, kind: LaneKind) -> bool:
    """Does hbench start and stop this lane (a start command, or one the kind builds)?"""
    return bool(spec.start) or kind.build_start(spec) is not None or kind.always_managed


def for_a_quick_look(spec: LaneSpec, kind: LaneKind, wait_s: float) -> LaneSpec:
    """``spec`` with at most ``wait_s`` to answer ready when hbench does not start it itself
    (doctor and throughput must not sit 10 minutes on a server that is simply down)."""
    if is_managed(spec, kind):
        return spec
    return attrs.evolve(spec, ready_timeout_s=min(ready_timeout(spec, managed=False), wait_s))


# --------------------------------------------------------------------------- lookup


def adhoc_lane(url: str, model: str | None, kind: str | None = None, api_key_env: str | None = None) -> LaneSpec:
    """The lane ``--lane-url URL --model ID`` describes (``/v1`` appended when missing);
    ``kind`` None is the default lane kind (:func:`with_kind` names it)."""
    from hbench.config import base_url_problem  # config imports cattrs (~0.1 s): not at plugin listing

    if not url.startswith(("http://", "https://")) or base_url_problem(url):
        raise BadInput(f"--lane-url {scrub(url)!r}: expected http://HOST:PORT/v1: an http(s) URL with a host, like http://localhost:8000/v1")
    if api_key_env and not os.environ.get(api_key_env):
        raise BadInput(f"--api-key-env {api_key_env}: the variable {api_key_env} is not set (or empty); "
                       f"export {api_key_env}=<key> first, or leave --api-key-env out for a server without a key")
    base = url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return LaneSpec(name=model or "adhoc", kind=kind, base_url=base, model=model,
                    api_key_env=api_key_env, source="--lane-url")


def with_kind(spec: LaneSpec, kinds: Registry) -> LaneSpec:
    """``spec`` with its kind named: a lane without one gets the default lane kind's name
    (the plugin that registered it said ``default=True``), so the journal's fingerprint and
    the scorecard record a name, as they did when core named the default itself.
    Unchanged when it has a kind or no plugin marked a default."""
    if spec.kind is not None or kinds.default() is None:
        return spec
    return attrs.evolve(spec, kind=kinds.default())


def lookup_lane(name: str | None, lanes: dict[str, LaneSpec], kinds: Registry) -> tuple[LaneSpec, LaneKind]:
    """The lane called ``name`` (as ``hbench lanes`` lists them) and its kind object."""
    if name is None:
        raise BadInput("name a lane (see `hbench lanes`) or pass --lane-url URL --model ID")
    if name not in lanes:
        known = ", ".join(sorted(lanes)) or "none configured"
        raise BadInput(f"unknown lane {name!r} (known: {known}); add [lanes.{name}] to hbench.toml "
                       f"or pass --lane-url URL --model ID")
    spec = with_kind(lanes[name], kinds)
    if spec.kind not in kinds:
        raise BadInput(f"lane {name!r}: {kinds.unknown(spec.kind)}")
    return spec, kinds.get(spec.kind)
