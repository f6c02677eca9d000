"""The lane-kind interface and the lane lifecycle (``open_lane``).

Kinds live in plugins/lanes/. ``open_lane`` is what the runner, ``hbench doctor`` and
``hbench throughput`` use: it makes a lane ready (starting it first when it is managed,
see :mod:`hbench.lifecycle`), yields a :class:`RunningLane`, and stops it afterwards.

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
from hbench.logging import get_logger, register_url_secrets, scrub
from hbench.models import LaneSpec

if TYPE_CHECKING:  # httpx is imported where it is used: listing plugins must stay fast
    import httpx

    from hbench.plugin_manager import Registry

#: how long to wait for a lane to answer ready when ``ready_timeout_s`` is not set: a lane
#: hbench starts may load a model for minutes; a server the user started is up or it is not
MANAGED_READY_TIMEOUT_S = 600.0
UNMANAGED_READY_TIMEOUT_S = 15.0
#: seconds between the "waiting for lane X" lines on stderr while a lane is not ready
STATUS_EVERY_S = 5.0


class KeyRejected(LaneError):
    """The server answered 401/403: the API key (or its absence) is refused."""


class LaneUnreachable(LaneError):
    """A server hbench does not start refused the connection (or its host is unknown)."""


class LaneWaitCancelled(LaneError):
    """Ctrl-C (the run's cancel event) while waiting for a lane to be ready."""


def ready_timeout(spec: LaneSpec, managed: bool) -> float:
    """``spec.ready_timeout_s``, or the default for a managed / unmanaged lane."""
    if spec.ready_timeout_s is not None:
        return float(spec.ready_timeout_s)
    return MANAGED_READY_TIMEOUT_S if managed else UNMANAGED_READY_TIMEOUT_S


def key_rejected_message(lane: LaneSpec, status: int, where: str) -> str:
    """Why a 401/403 happened, naming ``api_key_env`` and whether that variable is set."""
    env = lane.api_key_env
    if env and os.environ.get(env):
        hint = (f"api_key_env = {env!r} is set, but the server does not accept its value; "
                f"check the key in ${env}")
    elif env:
        hint = f"api_key_env = {env!r} names a variable that is not set; export {env}=<key> and run again"
    else:
        hint = (f"the lane sends no key: set api_key_env = \"NAME\" in [lanes.{lane.name}] (the name of "
                "the variable holding the key), or pass --api-key-env NAME with --lane-url")
    return f"lane {lane.name!r}: key rejected (HTTP {status} from {where}); {hint}"


def auth_problem(lane: LaneSpec, http: httpx.Client) -> str | None:
    """The key-rejected message when ``GET {base_url}/models`` answers 401/403, else None."""
    import httpx

    where = f"{scrub((lane.base_url or '').rstrip('/'))}/models"
    try:
        r = http.get(f"{(lane.base_url or '').rstrip('/')}/models")
    except httpx.HTTPError:
        return None
    if r.status_code in (401, 403):
        return key_rejected_message(lane, r.status_code, where)
    return None


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
    from prometheus_client.parser import text_string_to_metric_families

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


def prove_generation(running: RunningLane, timeout_s: float, cancel: threading.Event | None = None) -> float:
    """After the kind says ready: a 1-token completion must come back before the lane counts
    as ready (a /health that answers while the engine is wedged is not ready). Asks again
    while the answer may still change (503, a reset), until ``timeout_s``. Returns the
    seconds it took; raises :class:`LaneError` with the server's reason when it fails."""
    spec = running.spec
    t0 = time.monotonic()
    detail = "no answer yet"
    with lane_http(spec, timeout=max(1.0, min(timeout_s, 120.0))) as http:
        while True:
            if cancel is not None and cancel.is_set():
                raise LaneWaitCancelled(f"lane {spec.name!r}: interrupted during the generation canary")
            ok, detail = running.kind.canary(spec, http)
            if ok is False and detail.startswith(("HTTP 401", "HTTP 403")):  # the key, not the engine
                raise KeyRejected(key_rejected_message(spec, int(detail[5:8]),
                                                       f"{scrub((spec.base_url or '').rstrip('/'))}/chat/completions"))
            if ok:
                waited = time.monotonic() - t0
                get_logger().info("lane.canary_ok", lane=spec.name, canary_s=round(waited, 3))
                return waited
            if ok is False or not running.is_alive() or time.monotonic() - t0 > timeout_s:
                served = running.served_model
                hint = (f"the server lists {served!r}: set model = {served!r}" if served and served != spec.model
                        else f"check the model id (model = {spec.model!r}) and the server log")
                raise LaneError(f"lane {spec.name!r}: answered ready, but a 1-token completion failed ({detail}); "
                                f"the server is up but does not generate: {hint}")
            time.sleep(0.5)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_key_for(lane: LaneSpec) -> str | None:
    """The lane's API key, from the environment variable it names (never stored)."""
    if not lane.api_key_env:
        return None
    from hbench.logging import register_secret

    key = os.environ.get(lane.api_key_env)
    register_secret(key)
    return key


def lane_http(lane: LaneSpec, timeout: float = 10.0) -> httpx.Client:
    """An httpx client for ``lane``: the API key goes only into the Authorization header."""
    import httpx

    key = api_key_for(lane)
    register_url_secrets(lane.base_url)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(timeout=timeout, headers=headers)


@attrs.define
class RunningLane:
    spec: LaneSpec  # base_url and model resolved
    kind: LaneKind
    served_model: str | None = None
    pid: int | None = None  # the managed server process (telemetry follows its tree)
    log_path: Path | None = None
    alive: Callable[[], bool] = lambda: True
    warnings: list[str] = attrs.field(factory=list)
    returncode: Callable[[], int | None] = lambda: None  # the managed server's exit code
    #: seconds from the start (or, for a server hbench does not start, from the first
    #: readiness poll) until the 1-token generation canary came back: the cost of a brain swap
    ready_s: float | None = None
    #: the server's memory once ready, before the first prompt, and where it was read
    resting_memory_gb: float | None = None
    resting_memory_source: str | None = None
    #: why hbench itself stopped the lane mid-run (the memory floor), or None
    stop_reason: str | None = None

    def is_alive(self) -> bool:
        return self.alive()

    def readiness(self) -> dict[str, Any]:
        """What the scorecard's ``lane`` records about getting ready (None = not measured)."""
        return {"ready_s": None if self.ready_s is None else round(self.ready_s, 3),
                "resting_memory_gb": None if self.resting_memory_gb is None else round(self.resting_memory_gb, 3),
                "resting_memory_source": self.resting_memory_source}

    def died_reason(self) -> str:
        """Why the lane is no longer alive, with the server's log tail (for a failed lane)."""
        if self.stop_reason:
            return self.stop_reason
        code = self.returncode()
        tail = self.log_tail()
        return (f"lane {self.spec.name!r}: server exited mid-run (exit code {code})"
                + (f"\n--- last lines of {self.log_path} ---\n{tail}" if tail else ""))

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        from hbench.logging import scrub

        return scrub("\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:]))


def wait_ready(kind: LaneKind, lane: LaneSpec, timeout_s: float,
               on_status: Callable[[str], None] | None = None,
               alive: Callable[[], bool] = lambda: True, *, managed: bool = True,
               cancel: threading.Event | None = None) -> None:
    """Poll ``kind.ready`` until it says yes; ``on_status("loading, 40 s (...)")`` meanwhile
    (about once a second; a line for a log every :data:`STATUS_EVERY_S` is the caller's).

    Raises :class:`LaneError` when ``alive()`` turns false or ``timeout_s`` passes;
    :class:`KeyRejected` at once on a 401/403; :class:`LaneUnreachable` at once when a lane
    hbench does not start (``managed=False``) refuses the connection; and
    :class:`LaneWaitCancelled` as soon as ``cancel`` is set (Ctrl-C).
    """
    import httpx

    log = get_logger()
    start = time.monotonic()
    detail = "no answer yet"
    last_status = -1.0
    url = scrub(lane.base_url or "")
    with lane_http(lane, timeout=min(5.0, max(timeout_s, 0.5))) as http:
        while True:
            if cancel is not None and cancel.is_set():
                raise LaneWaitCancelled(f"lane {lane.name!r}: interrupted while waiting for {url} to be ready")
            if not managed:  # up or not: a refused connection or a refused key ends the wait
                try:
                    r = http.get(f"{(lane.base_url or '').rstrip('/')}/models")
                except httpx.ConnectError as exc:
                    raise LaneUnreachable(
                        f"lane {lane.name!r}: cannot connect to {url} ({scrub(str(exc)) or type(exc).__name__}); "
                        f"start the server, or check base_url and the port it listens on") from None
                except httpx.HTTPError:
                    r = None
                if r is not None and r.status_code in (401, 403):
                    raise KeyRejected(key_rejected_message(lane, r.status_code, f"{url.rstrip('/')}/models"))
            ok, detail = kind.ready(lane, http)
            waited = time.monotonic() - start
            if managed and (ok or "401" in detail or "403" in detail):
                why = auth_problem(lane, http)
                if why:
                    raise KeyRejected(why)
            if ok:
                log.info("lane.ready", lane=lane.name, waited_s=round(waited, 2), detail=detail)
                return
            if not alive():
                raise LaneError(f"lane {lane.name!r}: server exited while loading ({detail})")
            if waited > timeout_s:
                raise LaneError(
                    f"lane {lane.name!r}: not ready after {timeout_s:.0f} s ({detail}); "
                    f"check base_url {url} or raise ready_timeout_s (--ready-timeout)"
                )
            if on_status and waited - last_status >= 1.0:
                what = "loading" if managed else f"waiting for {url} to be ready"  # hbench started it: loading
                on_status(f"{what}, {waited:.0f} s of {timeout_s:.0f} s ({detail})")
                last_status = waited
            if cancel is not None:
                cancel.wait(0.25)
            else:
                time.sleep(0.25)


def check_served_model(running: RunningLane) -> None:
    """Record the served model id; a mismatch with the configured one is a warning."""
    spec = running.spec
    with lane_http(spec) as http:
        running.served_model = running.kind.served_model(spec, http)
    if spec.model is None:
        spec.model = running.served_model
    elif running.served_model and running.served_model != spec.model:
        msg = (f"lane {spec.name!r}: configured model {spec.model!r} but the server reports "
               f"{running.served_model!r}")
        running.warnings.append(msg)
        get_logger().warning("lane.model_mismatch", lane=spec.name, configured=spec.model,
                             served=running.served_model)


@contextmanager
def open_lane(spec: LaneSpec, kind: LaneKind, *, out_dir: Path, headroom_gb: float = 2.0,
              on_status: Callable[[str], None] | None = None,
              cancel: threading.Event | None = None) -> Iterator[RunningLane]:
    """Make ``spec`` ready and yield it; managed lanes are started and stopped here.
    ``cancel`` (Ctrl-C) ends the wait for readiness at once (:class:`LaneWaitCancelled`)."""
    spec = kind.prepare(attrs.evolve(spec), Path(out_dir))
    if spec.start:
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
    from hbench.config import base_url_problem

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
