"""The lane-kind interface and the lane lifecycle (``open_lane``).

Kinds live in plugins/lanes/. ``open_lane`` is what the runner, ``hbench doctor`` and
``hbench throughput`` use: it makes a lane ready (starting it first when it is managed),
yields a :class:`RunningLane`, and stops it afterwards.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import attrs
import httpx

from hbench.errors import LaneError
from hbench.models import LaneSpec


class LaneKind:
    """One kind of server. Override what differs from a plain OpenAI endpoint."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def prepare(self, lane: LaneSpec, out_dir: Path) -> LaneSpec:
        """Fill in what a managed kind decides itself (port, base_url, start). Default: as is."""
        return lane

    def ready(self, lane: LaneSpec, http: httpx.Client) -> tuple[bool, str]:
        """(ready?, detail). Default: ``GET {base_url}/models`` answers 200."""
        try:
            r = http.get(f"{lane.base_url.rstrip('/')}/models")
        except httpx.HTTPError as exc:
            return False, f"not reachable ({type(exc).__name__})"
        return r.status_code == 200, f"/v1/models -> {r.status_code}"

    def served_model(self, lane: LaneSpec, http: httpx.Client) -> str | None:
        """The model id the server reports in ``/v1/models`` (first entry), or None."""
        try:
            r = http.get(f"{lane.base_url.rstrip('/')}/models")
            data = r.json().get("data") or []
            return data[0].get("id") if data else None
        except Exception:  # noqa: BLE001 - an odd server is "unknown", never a crash
            return None

    def server_metrics(self, lane: LaneSpec, http: httpx.Client) -> dict[str, Any] | None:
        """Server-side counters (Prometheus) by name, or None when unsupported."""
        return None

    def describe(self, lane: LaneSpec) -> dict[str, Any]:
        """Extra provenance for the scorecard (quant, server version, ...)."""
        return {}


def api_key_for(lane: LaneSpec) -> str | None:
    """The lane's API key, from the environment variable it names (never stored)."""
    if not lane.api_key_env:
        return None
    from hbench.logging import register_secret

    key = os.environ.get(lane.api_key_env)
    register_secret(key)
    return key


@attrs.define
class RunningLane:
    spec: LaneSpec  # base_url and model resolved
    kind: LaneKind
    served_model: str | None = None
    pid: int | None = None  # the managed server process (telemetry follows its tree)
    log_path: Path | None = None
    alive: Callable[[], bool] = lambda: True
    warnings: list[str] = attrs.field(factory=list)

    def is_alive(self) -> bool:
        return self.alive()

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_ready(kind: LaneKind, lane: LaneSpec, timeout_s: float,
               on_status: Callable[[str], None] | None = None,
               alive: Callable[[], bool] = lambda: True) -> None:
    start = time.monotonic()
    headers = {}
    key = api_key_for(lane)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    detail = "no answer yet"
    with httpx.Client(timeout=5.0, headers=headers) as http:
        while True:
            ok, detail = kind.ready(lane, http)
            if ok:
                return
            waited = time.monotonic() - start
            if not alive():
                raise LaneError(f"lane {lane.name!r}: server exited while loading ({detail})")
            if waited > timeout_s:
                raise LaneError(
                    f"lane {lane.name!r}: not ready after {timeout_s:.0f} s ({detail}); "
                    f"check base_url {lane.base_url} or raise ready_timeout_s"
                )
            if on_status:
                on_status(f"loading, {waited:.0f} s ({detail})")
            time.sleep(0.25)


@contextmanager
def open_lane(spec: LaneSpec, kind: LaneKind, *, out_dir: Path, headroom_gb: float = 2.0,
              on_status: Callable[[str], None] | None = None) -> Iterator[RunningLane]:
    """Make ``spec`` ready and yield it; managed lanes are started and stopped here."""
    spec = kind.prepare(spec, out_dir)
    if spec.start:
        from hbench.lifecycle import managed_lane

        with managed_lane(spec, kind, out_dir=out_dir, headroom_gb=headroom_gb, on_status=on_status) as running:
            yield running
        return
    if not spec.base_url:
        raise LaneError(f"lane {spec.name!r}: no base_url and no start command; set base_url in hbench.toml")
    wait_ready(kind, spec, spec.ready_timeout_s, on_status)
    running = RunningLane(spec=spec, kind=kind)
    with httpx.Client(timeout=10.0) as http:
        running.served_model = kind.served_model(spec, http)
    if spec.model is None:
        spec.model = running.served_model
    elif running.served_model and running.served_model != spec.model:
        running.warnings.append(
            f"lane {spec.name!r}: configured model {spec.model!r} but the server reports {running.served_model!r}"
        )
    yield running
