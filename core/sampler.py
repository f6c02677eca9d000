"""The background sampler: every available probe, each on its own worker thread.

The :class:`Sampler` makes one instance of each registered probe class per run and calls
every available one on a background thread (default 2 Hz). Each probe runs on its own
daemon worker thread, so a probe that hangs is abandoned after ``probe_timeout_s`` and
disabled without stalling the others; a probe that raises is logged once and disabled
after ``max_failures`` failures in a row (or at once when it raises
:class:`~hbench.probes.ProbeGone`). Every sample is tagged with the lane and the attempts
that were in flight during its interval. :meth:`Sampler.stop` returns a
:class:`hbench.models.Telemetry` with the summary (:func:`hbench.probes.summarise`), each
probe's status (and what an available probe could not read) and the series.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import Counter
from typing import Any, Callable, Iterable

from hbench.logging import get_logger
from hbench.models import Telemetry
from hbench.probes import Probe, ProbeGone, merge_readings, remote_host, summarise, thin


def _compact(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 3) if math.isfinite(v) else None
    return v


def _clean(readings: dict[str, Any] | None) -> dict[str, Any] | None:
    if readings is None:
        return None
    return {k: _compact(v) for k, v in sorted(readings.items()) if _compact(v) is not None}


# --------------------------------------------------------------------------- workers


class _Call:
    __slots__ = ("fn", "done", "result", "error")

    def __init__(self, fn: Callable[[], Any]):
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            self.error = exc
        finally:
            self.done.set()


class _Worker:
    """One daemon thread per probe: a hung probe blocks only its own worker, which is
    then abandoned (daemon threads never hold up interpreter exit)."""

    def __init__(self, name: str):
        self._q: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=f"hbench-probe-{name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            call = self._q.get()
            if call is None:
                return
            call.run()

    def submit(self, fn: Callable[[], Any]) -> _Call:
        call = _Call(fn)
        self._q.put(call)
        return call

    def retire(self) -> None:
        self._q.put(None)


class _Slot:
    """A probe instance and its state inside one sampler run."""

    def __init__(self, probe: Probe):
        self.probe = probe
        self.name: str = getattr(probe, "name", type(probe).__name__)
        self.priority: int = int(getattr(probe, "priority", 100))
        self.status = "not started"
        self.active = False
        self.failures = 0
        self.worker: _Worker | None = None
        self.pending: _Call | None = None
        #: the probe class's memory_source ("gpu": its status explains the memory source)
        self.memory_source: str | None = getattr(probe, "memory_source", None)


# --------------------------------------------------------------------------- sampler


class Sampler:
    """Samples every available probe on a background thread.

    ``probes`` holds Probe classes (instantiated once per :meth:`start`) or ready-made
    instances. Thread-safe: ``attempt_started``/``attempt_finished`` may be called from
    any thread.
    """

    def __init__(self, probes: Iterable[Any], hz: float = 2.0, *, probe_timeout_s: float = 2.0,
                 available_timeout_s: float = 15.0, max_failures: int = 3, max_series: int = 7200):
        if not (hz > 0 and math.isfinite(hz)):
            raise ValueError(f"sample rate must be a positive number of Hz, got {hz!r} (--sample-hz)")
        self.probe_specs = list(probes)
        self.hz = float(hz)
        self.probe_timeout_s = probe_timeout_s
        self.available_timeout_s = available_timeout_s
        self.max_failures = max_failures
        self.max_series = max_series
        self.lane_name: str | None = None
        self._slots: list[_Slot] = []
        self._series: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()
        self._finished_since_tick: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._logged: set[tuple[str, str]] = set()
        self._log: Any = None

    # ----------------------------------------------------------------- logging
    def _logger(self) -> Any:
        if self._log is None:  # at the first event, so a structlog configured (or captured) since counts
            self._log = get_logger()
        return self._log

    def _log_once(self, level: str, event: str, probe: str, **kw: Any) -> None:
        key = (probe, event)
        if key in self._logged:
            return
        self._logged.add(key)
        getattr(self._logger(), level)(event, probe=probe, lane=self.lane_name, **kw)

    # ----------------------------------------------------------------- set-up
    def open(self, lane_name: str, pid: int | None = None, lane: Any = None) -> Sampler:
        """Instantiate the probes, point them at the lane and ask each whether it can
        run (bounded), without starting the thread. :meth:`start` calls this."""
        if self._thread is not None:
            raise RuntimeError("sampler already running: stop() it before starting it again")
        self.lane_name = lane_name
        self._series = []
        self._logged = set()
        self._stop.clear()
        with self._lock:
            self._in_flight.clear()
            self._finished_since_tick.clear()
        self._slots = []
        for spec in self.probe_specs:
            name = getattr(spec, "name", getattr(spec, "__name__", repr(spec)))
            try:
                probe = spec() if isinstance(spec, type) else spec
            except Exception as exc:  # noqa: BLE001 - one broken probe is not fatal
                slot = _Slot(Probe())
                slot.name, slot.status = name, f"failed to start: {type(exc).__name__}: {exc}"
                slot.memory_source = getattr(spec, "memory_source", None)
                self._slots.append(slot)
                self._log_once("warning", "probe.broken", name, error=slot.status)
                continue
            self._slots.append(_Slot(probe))

        def check(slot: _Slot) -> Callable[[], tuple[bool, str]]:
            def run() -> tuple[bool, str]:
                slot.probe.set_target(pid=pid, lane=lane)
                return slot.probe.available()

            return run

        remote = self._remote(lane, pid)
        calls = []
        for slot in self._slots:
            if slot.status != "not started":
                continue
            if remote is not None and getattr(slot.probe, "local", True):
                self._disable(slot, f"skipped: lane {lane_name!r} runs on {remote}, not on this machine "
                              "(set the lane's options.metrics_url for that node's telemetry)",
                              event="probe.skipped", level="info")
                continue
            slot.worker = _Worker(slot.name)
            calls.append((slot, slot.worker.submit(check(slot))))
        deadline = time.monotonic() + self.available_timeout_s
        for slot, call in calls:
            if not call.done.wait(max(0.0, deadline - time.monotonic())):
                self._disable(slot, f"unavailable: available() did not answer within {self.available_timeout_s:g} s",
                              event="probe.hung")
                continue
            if call.error is not None:
                self._disable(slot, f"unavailable: available() raised {type(call.error).__name__}: {call.error}",
                              event="probe.broken")
                continue
            ok, why = call.result
            if ok:
                slot.active, slot.status = True, "ok"
            else:
                self._disable(slot, str(why), event="probe.unavailable", level="info")
        active = {s.name for s in self._slots if s.active}
        for slot in self._slots:
            target = getattr(slot.probe, "fallback_for", None)
            if slot.active and target and target in active:
                self._disable(slot, f"skipped: {target} is available (this probe is its fallback)",
                              event="probe.skipped", level="debug")
        for slot in self._slots:  # inactive from the start: release them and their threads now
            if not slot.active and slot.worker is not None:
                slot.worker.submit(slot.probe.close)
                slot.worker.retire()
                slot.worker = None
        self._t0 = time.monotonic()
        return self

    def _remote(self, lane: Any, pid: int | None) -> str | None:
        """:func:`remote_host`, bounded (a name lookup can hang): no answer = local."""
        if lane is None or pid is not None:
            return None
        worker = _Worker("where")
        call = worker.submit(lambda: remote_host(lane, pid))
        worker.retire()
        if call.done.wait(5.0) and call.error is None:
            return call.result
        return None

    def start(self, lane_name: str, pid: int | None = None, lane: Any = None) -> Sampler:
        """Open the probes for ``lane_name`` and start sampling in the background."""
        self.open(lane_name, pid=pid, lane=lane)
        self._thread = threading.Thread(target=self._run, name="hbench-sampler", daemon=True)
        self._thread.start()
        self._logger().debug("sampler.started", lane=lane_name, hz=self.hz,
                             probes={s.name: s.status for s in self._slots})
        return self

    def _disable(self, slot: _Slot, status: str, *, event: str, level: str = "warning") -> None:
        slot.active = False
        slot.status = status
        if event == "probe.hung" and slot.worker is not None:
            slot.worker.retire()  # exits if the call ever returns
            slot.worker = None
        self._log_once(level, event, slot.name, why=status)

    # ----------------------------------------------------------------- attempts
    def attempt_started(self, label: str) -> None:
        with self._lock:
            self._in_flight[label] += 1

    def attempt_finished(self, label: str) -> None:
        with self._lock:
            if self._in_flight[label] > 0:
                self._in_flight[label] -= 1
            if self._in_flight[label] <= 0:
                del self._in_flight[label]
            self._finished_since_tick.add(label)

    def _attempt_tags(self) -> list[str]:
        with self._lock:
            tags = set(self._in_flight) | self._finished_since_tick
            self._finished_since_tick = set()
        return sorted(tags)

    # ----------------------------------------------------------------- sampling
    def statuses(self) -> dict[str, str]:
        return {s.name: s.status for s in self._slots}

    def sample_each(self) -> dict[str, dict[str, Any]]:
        """Call every active probe once, concurrently and bounded; probe name ->
        readings (failed, hung and inactive probes are absent)."""
        calls = []
        for slot in self._slots:
            if slot.active and slot.worker is not None:
                calls.append((slot, slot.worker.submit(slot.probe.sample)))
        deadline = time.monotonic() + self.probe_timeout_s
        out: dict[str, dict[str, Any]] = {}
        for slot, call in calls:
            if not call.done.wait(max(0.0, deadline - time.monotonic())):
                self._disable(slot, f"hung: sample() took longer than {self.probe_timeout_s:g} s; "
                              "disabled for the rest of the run", event="probe.hung")
                continue
            if isinstance(call.error, ProbeGone):
                self._disable(slot, f"gone: {call.error}", event="probe.gone")
                continue
            if call.error is not None:
                slot.failures += 1
                why = f"{type(call.error).__name__}: {call.error}"
                self._log_once("warning", "probe.failed", slot.name, error=why)
                if slot.failures >= self.max_failures:
                    self._disable(slot, f"failed {slot.failures} times in a row; disabled (last: {why})",
                                  event="probe.disabled")
                continue
            slot.failures = 0
            if isinstance(call.result, dict):
                out[slot.name] = call.result
        return out

    def reading(self) -> dict[str, Any]:
        """One reading now, for ``hbench probe``: each probe's status and its own
        readings, plus the merged readings (not added to the series)."""
        per_probe = self.sample_each()
        prio = {s.name: s.priority for s in self._slots}
        merged = merge_readings([(prio[n], r) for n, r in per_probe.items()])
        return {
            "probes": {s.name: {"status": s.status, "readings": _clean(per_probe.get(s.name))}
                       for s in sorted(self._slots, key=lambda x: x.name)},
            "readings": _clean(merged),
        }

    def sample_once(self) -> dict[str, Any]:
        """One merged, tagged sample (also appended to the series)."""
        per_probe = self.sample_each()
        prio = {s.name: s.priority for s in self._slots}
        merged = merge_readings([(prio[n], r) for n, r in per_probe.items()])
        row: dict[str, Any] = {"t": round(time.monotonic() - self._t0, 3), "lane": self.lane_name,
                               "attempts": self._attempt_tags()}
        row.update({k: _compact(v) for k, v in merged.items() if k not in row})
        row = {k: v for k, v in row.items() if v is not None}
        self._series.append(row)
        return row

    def _run(self) -> None:
        period = 1.0 / self.hz
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception as exc:  # noqa: BLE001 - the sampler must never die
                self._log_once("error", "sampler.error", "*", error=f"{type(exc).__name__}: {exc}")
            next_t += period
            now = time.monotonic()
            if next_t < now:  # fell behind (a slow probe): skip the missed ticks
                next_t = now + period - ((now - next_t) % period)
            if self._stop.wait(next_t - now):
                break

    def stop(self) -> Telemetry:
        """Stop sampling, close the probes and return the :class:`Telemetry`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.probe_timeout_s + 2.0)
            self._thread = None
        unmeasured = self.unmeasured()
        self.close_probes()
        series = list(self._series)
        tel = summarise(series, self.statuses(), gpu_probes=self.gpu_probes())
        tel.probes.update(unmeasured)
        tel.series = thin(series, self.max_series)
        self._logger().debug("sampler.stopped", lane=self.lane_name, n_samples=tel.n_samples)
        return tel

    def gpu_probes(self) -> set[str]:
        """Names of the probes that read a GPU's own memory (``memory_source = "gpu"``)."""
        return {s.name for s in self._slots if s.memory_source == "gpu"}

    def unmeasured(self) -> dict[str, str]:
        """``"<probe>.<reading>" -> why`` for what the active probes could not read."""
        out: dict[str, str] = {}
        for slot in self._slots:
            if not slot.active:
                continue
            try:
                out.update({f"{slot.name}.{k}": str(v) for k, v in (slot.probe.unmeasured() or {}).items()})
            except Exception as exc:  # noqa: BLE001 - a probe's bookkeeping never breaks the summary
                self._log_once("warning", "probe.unmeasured_failed", slot.name, error=f"{type(exc).__name__}: {exc}")
        return out

    def close_probes(self) -> None:
        """Close every probe (bounded) and retire the workers."""
        calls = []
        for slot in self._slots:
            if slot.worker is not None:
                calls.append((slot, slot.worker.submit(slot.probe.close)))
        deadline = time.monotonic() + self.probe_timeout_s
        for slot, call in calls:
            if call.done.wait(max(0.0, deadline - time.monotonic())) and call.error is not None:
                self._log_once("warning", "probe.close_failed", slot.name,
                               error=f"{type(call.error).__name__}: {call.error}")
            if slot.worker is not None:
                slot.worker.retire()
                slot.worker = None
            slot.active = False

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._thread is not None:
            self.stop()
