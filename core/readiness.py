"""Is a lane ready? Waiting for a server to answer, proving it generates, and the lane
that comes out of it (:class:`RunningLane`).

:func:`hbench.lanes.open_lane` runs these for a server hbench does not start;
:mod:`hbench.lifecycle` for one it starts. Both build on this module, and neither of them
on the other's internals (the lanes <-> lifecycle import cycle of issue 16).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import attrs

from hbench.errors import LaneError
from hbench.logging import get_logger, register_secret, register_url_secrets, scrub
from hbench.models import LaneSpec

if TYPE_CHECKING:  # pragma: no cover
    # httpx is imported inside the functions that talk HTTP: it is heavy, and `hbench
    # plugins` / `--help` load the lane kinds, hence this module, without any lane to ask
    import httpx

    from hbench.lanes import LaneKind

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


def api_key_for(lane: LaneSpec) -> str | None:
    """The lane's API key, from the environment variable it names (never stored)."""
    if not lane.api_key_env:
        return None
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
