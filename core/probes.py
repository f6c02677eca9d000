"""The telemetry-probe interface and the background sampler.

Probes live in plugins/probes/ and are registered as classes; the :class:`Sampler` makes
one instance of each per run (probes hold state: NVML handles, cached processes).

A probe reports a flat dict of readings using the standard keys in :data:`READINGS`
(others are kept in the series as they are). ``None`` means unknown and is never
replaced by 0. Memory is in GiB (2**30 bytes) throughout, named ``_gb``.

The sampler calls every available probe on a background thread (default 2 Hz). Each
probe runs on its own daemon worker thread, so a probe that hangs is abandoned after
``probe_timeout_s`` and disabled without stalling the others; a probe that raises is
logged once and disabled after ``max_failures`` failures in a row (or at once when it
raises :class:`ProbeGone`). Every sample is tagged with the lane and the attempts that
were in flight during its interval. :meth:`Sampler.stop` returns a
:class:`hbench.models.Telemetry` with the summary (:func:`summarise`), each probe's
status and the series.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import Counter
from typing import Any, Callable, ClassVar, Iterable, Sequence

#: standard reading keys (None = unknown, never 0)
READINGS = (
    "gpu_util",  # percent, max over GPUs
    "gpu_mem_used_gb",  # dedicated GPU memory used, summed over GPUs (absent on unified memory)
    "gpu_temp_c",  # max over GPUs
    "power_w",  # summed over GPUs
    "unified_used_gb",  # MemTotal - MemAvailable (unified memory, or system RAM)
    "cpu_percent",  # whole machine, 0..100
    "rss_gb",  # the lane server's process-tree RSS
    "throttle_reasons",  # thermal/power clock-throttle reasons active now, any GPU ([] = none)
    "throttle_source",  # the probe that read them (the summary's "source")
)

#: merged-reading key -> how the summary combines it (Telemetry field names)
SUMMARY_FIELDS: dict[str, tuple[str, ...]] = {
    "gpu_util": ("gpu_util_mean", "gpu_util_max"),
    "unified_used_gb": ("unified_used_gb_max",),
    "gpu_temp_c": ("gpu_temp_c_max",),
    "power_w": ("power_w_max",),
    "rss_gb": ("rss_gb_max",),
    "cpu_percent": ("cpu_percent_mean",),
    "gpu_mem_used_gb": ("gpu_mem_used_gb_max",),
}

GIB = float(2**30)


class ProbeGone(Exception):
    """Raised by ``sample()`` when the probe can no longer work (its GPU was lost): the
    sampler logs the message once and stops calling the probe."""


class Probe:
    """A telemetry source. Subclass it and register the class.

    Life cycle (per run): ``Probe()`` -> ``set_target(pid, lane)`` -> ``available()``
    (once) -> ``sample()`` (many times, from one worker thread) -> ``close()``.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: merge order: when two probes report the same key, the lower priority wins
    priority: ClassVar[int] = 100
    #: name of a probe this one stands in for: skipped while that one is available
    fallback_for: ClassVar[str | None] = None
    #: measures this machine: skipped when the lane's server runs on another one
    local: ClassVar[bool] = True

    def available(self) -> tuple[bool, str]:
        """(usable?, why not). Called once before sampling; import heavy libs here."""
        return True, "ok"

    def sample(self) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def set_target(self, pid: int | None = None, lane: Any = None) -> None:
        """The lane being measured (server pid for RSS, lane spec for remote metrics).
        Called before :meth:`available`."""

    def close(self) -> None:
        """Release resources (NVML shutdown)."""

    def unmeasured(self) -> dict[str, str]:
        """Readings this (available) probe cannot take, reading -> why (e.g. clock-throttle
        reasons NotSupported on a GB10). The sampler adds each to ``Telemetry.probes`` as
        ``"<probe>.<reading>"``, so a missing figure says why."""
        return {}


# --------------------------------------------------------------------------- where


def remote_host(lane: Any, pid: int | None = None) -> str | None:
    """The host of ``lane.base_url`` when it is certainly another machine, else None.

    A lane with a server pid is local. A host is local when it is ``localhost``, this
    machine's name, or resolves to a loopback address, an address of one of this
    machine's interfaces or one inside a local container bridge network; when it cannot be resolved it counts as local (measuring this
    machine is the old behaviour, skipping it silently would lose data)."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    base_url = getattr(lane, "base_url", None)
    if pid is not None or not base_url:
        return None
    try:
        host = urlsplit(str(base_url)).hostname
    except ValueError:
        return None
    if not host or host.lower() in ("localhost", socket.gethostname().lower()):
        return None
    try:
        addrs = {ai[4][0].split("%")[0] for ai in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return None
    mine: set[str] = set()
    bridges: list[Any] = []  # container networks on this machine (a NIM in docker at 172.17.0.2)
    try:
        import psutil

        for nic, nics in psutil.net_if_addrs().items():
            for a in nics:
                mine.add(a.address.split("%")[0])
                if nic.startswith(_BRIDGES) and a.netmask and a.family == socket.AF_INET:
                    bridges.append(ipaddress.ip_network(f"{a.address}/{a.netmask}", strict=False))
    except Exception:  # noqa: BLE001 - no interface list: only loopback counts as local
        pass
    for a in addrs:
        try:
            ip = ipaddress.ip_address(a)
        except ValueError:
            return None
        if ip.is_loopback or ip.is_unspecified or a in mine or any(ip in net for net in bridges):
            return None
    return host


_BRIDGES = ("docker", "br-", "podman", "cni", "virbr", "nerdctl")


# --------------------------------------------------------------------------- summary


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def summarise(series: Iterable[dict[str, Any]], probes: dict[str, str] | None = None) -> Any:
    """The scorecard's telemetry summary over ``series`` (pure). A field whose reading
    never appeared (or was never a finite number) is None, never 0."""
    from hbench.models import Telemetry

    n = 0
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    maxes: dict[str, float] = {}
    for row in series:
        n += 1
        for key in SUMMARY_FIELDS:
            v = _finite(row.get(key))
            if v is None:
                continue
            sums[key] = sums.get(key, 0.0) + v
            counts[key] = counts.get(key, 0) + 1
            maxes[key] = v if key not in maxes else max(maxes[key], v)
    fields: dict[str, float | None] = {}
    for key, names in SUMMARY_FIELDS.items():
        for fname in names:
            if key not in counts:
                fields[fname] = None
            elif fname.endswith("_mean"):
                fields[fname] = round(sums[key] / counts[key], 3)
            else:
                fields[fname] = round(maxes[key], 3)
    return Telemetry(n_samples=n, probes=dict(probes or {}), memory_source=memory_source(series, probes or {}),
                     throttle=throttle(series), **fields)


def throttle(series: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Thermal/power clock throttling over ``series`` (pure), from the samples that carried a
    ``throttle_reasons`` reading (a list of active reason names, ``[]`` = not throttled):
    ``{"share": throttled / read, "reasons": {reason: samples with it / read}, "source": the
    probe(s), "n_samples": read}``; ``{}`` when no sample carried one (no GPU probe, or the
    GPU cannot tell: the probe's ``unmeasured()`` says why in ``Telemetry.probes``)."""
    read = throttled = 0
    counts: Counter[str] = Counter()
    sources: set[str] = set()
    for row in series:
        reasons = row.get("throttle_reasons")
        if not isinstance(reasons, (list, tuple)):
            continue
        read += 1
        names = {str(r) for r in reasons}
        throttled += bool(names)
        counts.update(names)
        if isinstance(row.get("throttle_source"), str):
            sources.add(row["throttle_source"])
    if not read:
        return {}
    return {"share": round(throttled / read, 3), "reasons": {k: round(v / read, 3) for k, v in sorted(counts.items())},
            "source": ", ".join(sorted(sources)) or "unknown", "n_samples": read}


def memory_source(series: Iterable[dict[str, Any]], probes: dict[str, str]) -> dict[str, str]:
    """Which memory reading the telemetry rests on, and why (pure): the GPU's own memory
    when a probe reported it; MemTotal - MemAvailable as unified memory when a GPU probe
    said its memory is unified (NVML NotSupported, or a total equal to system RAM; GB10);
    as system RAM when no GPU probe ran; else none."""
    rows = list(series)
    if not rows:
        return {}  # nothing was sampled: no source to name
    gpu = any(_finite(r.get("gpu_mem_used_gb")) is not None for r in rows)
    unified = any(r.get("unified_memory") is True for r in rows)
    meminfo = any(_finite(r.get("unified_used_gb")) is not None for r in rows)
    gpu_probes = {k: v for k, v in probes.items() if k in ("nvml", "nvidia-smi")}
    if gpu:
        return {"source": "gpu", "why": "a GPU probe reported dedicated GPU memory"}
    if unified and meminfo:
        return {"source": "meminfo (unified memory)",
                "why": "the GPU reports no memory of its own (NVML NotSupported, [N/A], or a total equal to "
                       "system RAM): memory used is MemTotal - MemAvailable"}
    if meminfo:
        why = "; ".join(f"{k}: {v}" for k, v in gpu_probes.items() if v != "ok") or "no GPU probe installed"
        return {"source": "meminfo (system RAM)", "why": f"no GPU memory reading ({why})"}
    why = "; ".join(f"{k}: {v}" for k, v in probes.items() if v != "ok") or "no sample carried a memory reading"
    return {"source": "none", "why": why}


def thin(series: list[dict[str, Any]], max_len: int) -> list[dict[str, Any]]:
    """At most ``max_len`` evenly spaced samples, the first and the last kept."""
    n = len(series)
    if max_len <= 0 or n <= max_len:
        return list(series)
    if max_len == 1:
        return [series[-1]]
    idx = sorted({round(i * (n - 1) / (max_len - 1)) for i in range(max_len)})
    return [series[i] for i in idx]


def merge_readings(readings: Sequence[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """Merge per-probe readings ``[(priority, readings)]``: for each key the first
    non-None value by priority wins."""
    merged: dict[str, Any] = {}
    for _prio, r in sorted(readings, key=lambda x: x[0]):
        for k, v in r.items():
            if v is not None and k not in merged:
                merged[k] = v
    return merged


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
        self._log = None

    # ----------------------------------------------------------------- logging
    def _logger(self) -> Any:
        if self._log is None:
            from hbench.logging import get_logger

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

    def stop(self) -> Any:
        """Stop sampling, close the probes and return the :class:`Telemetry`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.probe_timeout_s + 2.0)
            self._thread = None
        unmeasured = self.unmeasured()
        self.close_probes()
        series = list(self._series)
        tel = summarise(series, self.statuses())
        tel.probes.update(unmeasured)
        tel.series = thin(series, self.max_series)
        self._logger().debug("sampler.stopped", lane=self.lane_name, n_samples=tel.n_samples)
        return tel

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
