"""The telemetry-probe interface and the pure summaries of what probes read.

Probes live in plugins/probes/ and are registered as classes; :class:`hbench.sampler.Sampler`
makes one instance of each per run (probes hold state: NVML handles, cached processes),
samples them in the background and hands the series to :func:`summarise`.

A probe reports a flat dict of readings using the standard keys in :data:`READINGS`
(others are kept in the series as they are). ``None`` means unknown and is never
replaced by 0. Memory is in GiB (2**30 bytes) throughout, named ``_gb``.
"""

from __future__ import annotations

import ipaddress
import math
import socket
from collections import Counter
from typing import Any, ClassVar, Iterable, Sequence
from urllib.parse import urlsplit

from hbench.models import Telemetry

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
    #: "gpu" for a probe that reads a GPU's own memory: whether its readings (or why it has
    #: none) decide the telemetry's memory source (:func:`memory_source`); None otherwise
    memory_source: ClassVar[str | None] = None

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
        import psutil  # here, not at the top: listing plugins imports this module and must stay fast

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


def summarise(series: Iterable[dict[str, Any]], probes: dict[str, str] | None = None,
              gpu_probes: Iterable[str] = ()) -> Telemetry:
    """The scorecard's telemetry summary over ``series`` (pure). A field whose reading
    never appeared (or was never a finite number) is None, never 0. ``probes``: each
    probe's status; ``gpu_probes``: the names of those whose ``memory_source`` is "gpu"."""
    series = list(series)
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
    return Telemetry(n_samples=n, probes=dict(probes or {}),
                     memory_source=memory_source(series, probes or {}, gpu_probes), throttle=throttle(series),
                     **fields)


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


def memory_source(series: Iterable[dict[str, Any]], probes: dict[str, str],
                  gpu_probes: Iterable[str] = ()) -> dict[str, str]:
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
    gpu_status = {k: v for k, v in probes.items() if k in set(gpu_probes)}
    if gpu:
        return {"source": "gpu", "why": "a GPU probe reported dedicated GPU memory"}
    if unified and meminfo:
        return {"source": "meminfo (unified memory)",
                "why": "the GPU reports no memory of its own (NVML NotSupported, [N/A], or a total equal to "
                       "system RAM): memory used is MemTotal - MemAvailable"}
    if meminfo:
        why = "; ".join(f"{k}: {v}" for k, v in gpu_status.items() if v != "ok") or "no GPU probe installed"
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
