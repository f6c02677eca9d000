"""``nvml`` (nvidia-ml-py): utilisation, temperature, power and memory of every GPU.

``pynvml`` is imported inside :meth:`NvmlProbe.available`, never at import time. Facts
(LANES.md, Telemetry):

* no driver -> ``NVMLError_LibraryNotFound``: the probe is unavailable, and says why once;
* a metric that raises ``NotSupported`` (or NoPermission) is None from then on and is no
  longer polled;
* GB10 / DGX Spark memory is unified: ``nvmlDeviceGetMemoryInfo`` is NotSupported, or
  "succeeds" with a total equal to system RAM. Then the probe reports
  ``unified_memory=True`` and no GPU memory; the ``meminfo`` probe reads it instead;
* a GPU lost mid-run is dropped (logged once); when none is left the probe is done.

Per-process GPU memory of the lane server's process tree (``lane_gpu_mem_gb``) comes
from ``nvmlDeviceGetComputeRunningProcesses``, which works on unified boxes too.

Thermal/power throttling (``throttle_reasons``): each sample reads the clock-event
(formerly clock-throttle) reasons bitmask, ``nvmlDeviceGetCurrentClocksEventReasons``
(``nvmlDeviceGetCurrentClocksThrottleReasons`` in nvidia-ml-py releases before it, the
same bits), and names the thermal/power bits (:data:`THROTTLE_REASONS`). A GPU that answers
NotSupported (GB10) is not asked again, and :meth:`NvmlProbe.unmeasured` says why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from hbench.logging import get_logger
from hbench.probes import GIB, Probe, ProbeGone

if TYPE_CHECKING:  # psutil is imported where it is used: listing plugins must stay fast
    import psutil

#: a memory total within this fraction of system RAM means unified memory
UNIFIED_TOLERANCE = 0.05

_UNSUPPORTED = ("NVMLError_NotSupported", "NVMLError_NoPermission", "NVMLError_FunctionNotFound")
_LOST = ("NVMLError_GpuIsLost", "NVMLError_GpuNotFound", "NVMLError_ResetRequired", "NVMLError_Uninitialized",
         "NVMLError_DriverNotLoaded")
_INIT_WHY = {
    "NVMLError_LibraryNotFound": "NVML library (libnvidia-ml.so.1) not found: no NVIDIA driver on this machine",
    "NVMLError_DriverNotLoaded": "the NVIDIA kernel driver is not loaded (no GPU, or the driver is not installed)",
    "NVMLError_NoPermission": "no permission to open the NVIDIA device files (/dev/nvidia*)",
    "NVMLError_LibRmVersionMismatch": "NVML library and kernel driver versions differ (reboot after a driver update)",
}


#: clock-event reason bit -> the name hbench reports, for the bits that mean thermal or power
#: throttling. Bits and meanings: NVML API reference, "NvmlClocksEventReasons" (nvml.h; the same
#: values as nvidia-ml-py's ``nvmlClocksEventReason*`` / ``nvmlClocksThrottleReason*``, and as
#: DCGM's ``DCGM_CLOCKS_THROTTLE_REASON_*``). Not throttling, so left out: GpuIdle 0x1 (nothing
#: runs), ApplicationsClocksSetting 0x2 and DisplayClockSetting 0x100 (clocks someone set),
#: SyncBoost 0x10 (a sync-boost group), BoardLimit 0x200 and Reliability 0x400 (newer drivers,
#: documented only by name).
THROTTLE_REASONS: dict[int, str] = {
    0x4: "sw_power_cap",  # SW power scaling holds the clocks under the power limit
    0x8: "hw_slowdown",  # HW slowdown (clocks / 2 or more): too hot, power brake, or fast power trigger
    0x20: "sw_thermal_slowdown",  # SW thermal: GPU or memory temperature above its max operating one
    0x40: "hw_thermal_slowdown",  # HW thermal slowdown (clocks / 2 or more): too hot
    0x80: "hw_power_brake_slowdown",  # HW power brake (clocks / 2 or more): the external power brake
}
#: the pynvml functions that read the bitmask, newest name first
REASON_FUNCTIONS = ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")


def throttle_reasons(bits: int) -> list[str]:
    """The thermal/power reasons set in a clock-event bitmask (``[]`` = not throttled)."""
    return [name for bit, name in THROTTLE_REASONS.items() if bits & bit]


def _errors(nv: Any, names: tuple[str, ...]) -> tuple[type, ...]:
    return tuple(c for c in (getattr(nv, n, None) for n in names) if isinstance(c, type))


@attrs.define
class _Gpu:
    index: int
    handle: Any
    name: str
    unified: bool
    unified_why: str = ""
    off: set[str] = attrs.field(factory=set)  # metrics no longer polled


class NvmlProbe(Probe):
    name: ClassVar[str] = "nvml"
    description: ClassVar[str] = "NVIDIA GPUs through NVML: util, temperature, power, memory"
    priority: ClassVar[int] = 20
    memory_source: ClassVar[str | None] = "gpu"  # a GPU's own memory: decides the memory source

    def __init__(self) -> None:
        self._nv: Any = None
        self._gpus: list[_Gpu] = []
        self._pid: int | None = None
        self._root: psutil.Process | None = None
        self._said: set[tuple[int, str, str]] = set()
        self._log = get_logger()
        self._reasons_fn: Any = None  # the pynvml function that reads the clock-event reasons
        self._reasons_name: str | None = None
        self._unmeasured: dict[str, str] = {}

    # ----------------------------------------------------------------- set-up
    def set_target(self, pid: int | None = None, lane: Any = None) -> None:
        import psutil

        self._pid = pid
        self._root = None
        if pid is not None:
            try:
                self._root = psutil.Process(pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                self._root = None

    def available(self) -> tuple[bool, str]:
        try:
            import pynvml
        except ImportError:
            return False, "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
        nv = pynvml
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            kind = type(exc).__name__
            return False, _INIT_WHY.get(kind, f"nvmlInit failed: {kind}: {exc}")
        except OSError as exc:  # a broken libnvidia-ml.so
            return False, f"NVML could not be loaded: {exc}"
        self._nv = nv
        self._unmeasured = {}
        self._reasons_name = next((f for f in REASON_FUNCTIONS if callable(getattr(nv, f, None))), None)
        self._reasons_fn = getattr(nv, self._reasons_name) if self._reasons_name else None
        if self._reasons_fn is None:
            self._unmeasured["throttle"] = (f"this nvidia-ml-py has neither {' nor '.join(REASON_FUNCTIONS)} "
                                            "(pip install -U nvidia-ml-py)")
        try:
            count = nv.nvmlDeviceGetCount()
            gpus = [self._open_gpu(i) for i in range(count)]
        except nv.NVMLError as exc:
            self.close()
            return False, f"NVML could not list the GPUs: {type(exc).__name__}: {exc}"
        if not gpus:
            self.close()
            return False, "NVML works but finds no GPU"
        self._gpus = gpus
        return True, "ok"

    def _open_gpu(self, index: int) -> _Gpu:
        import psutil

        nv = self._nv
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        try:
            name = nv.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
        except nv.NVMLError:
            name = f"GPU {index}"
        unified, why = False, ""
        try:
            total = int(nv.nvmlDeviceGetMemoryInfo(handle).total)
            ram = psutil.virtual_memory().total
            if total <= 0:
                unified, why = True, "NVML reports no memory total"
            elif abs(total - ram) <= UNIFIED_TOLERANCE * ram:
                unified, why = True, f"NVML memory total {total / GIB:.1f} GiB equals system RAM"
        except _errors(nv, _UNSUPPORTED):
            unified, why = True, "NVML memory info is NotSupported"
        return _Gpu(index=index, handle=handle, name=name, unified=unified, unified_why=why)

    @property
    def gpus(self) -> list[dict[str, Any]]:
        """What ``hbench probe`` shows about each GPU."""
        return [{"index": g.index, "name": g.name, "unified_memory": g.unified, "why": g.unified_why}
                for g in self._gpus]

    # ----------------------------------------------------------------- sampling
    def _read(self, gpu: _Gpu, metric: str) -> Any:
        nv, h = self._nv, gpu.handle
        if metric == "util":
            return float(nv.nvmlDeviceGetUtilizationRates(h).gpu)
        if metric == "temp":
            return float(nv.nvmlDeviceGetTemperature(h, getattr(nv, "NVML_TEMPERATURE_GPU", 0)))
        if metric == "power":
            return nv.nvmlDeviceGetPowerUsage(h) / 1000.0  # mW -> W
        if metric == "mem":
            m = nv.nvmlDeviceGetMemoryInfo(h)
            return (m.used / GIB, m.total / GIB)
        if metric == "throttle":
            return throttle_reasons(int(self._reasons_fn(h)))
        if metric == "procs":
            pids = self._tree_pids()
            if not pids:
                return None
            used = [p.usedGpuMemory for p in nv.nvmlDeviceGetComputeRunningProcesses(h) if p.pid in pids]
            used = [u for u in used if isinstance(u, int) and 0 <= u < 2**63]  # NVML_VALUE_NOT_AVAILABLE
            return sum(used) / GIB if used else None
        raise ValueError(metric)

    def _tree_pids(self) -> set[int]:
        import psutil

        if self._root is None:
            return set()
        try:
            return {self._root.pid} | {c.pid for c in self._root.children(recursive=True)}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return set()

    def _say_once(self, gpu: _Gpu, event: str, **kw: Any) -> None:
        key = (gpu.index, event, str(kw.get("metric", "")))
        if key not in self._said:
            self._said.add(key)
            level = "warning" if event == "probe.gpu_lost" else "info"
            getattr(self._log, level)(event, probe=self.name, gpu=gpu.index, gpu_name=gpu.name, **kw)

    def sample(self) -> dict[str, Any]:
        nv = self._nv
        if nv is None or not self._gpus:
            raise ProbeGone("no GPU left to read")
        unsupported, lost = _errors(nv, _UNSUPPORTED), _errors(nv, _LOST)
        got: dict[str, list[Any]] = {m: [] for m in ("util", "temp", "power", "mem", "procs", "throttle")}
        for gpu in list(self._gpus):
            metrics = (["util", "temp", "power"] + ([] if gpu.unified else ["mem"]) + (["procs"] if self._root else [])
                       + (["throttle"] if self._reasons_fn is not None else []))
            for metric in metrics:
                if metric in gpu.off:
                    continue
                try:
                    value = self._read(gpu, metric)
                except unsupported as exc:
                    gpu.off.add(metric)
                    self._say_once(gpu, "probe.metric_unsupported", metric=metric, error=type(exc).__name__)
                    if metric == "mem":  # unified memory on drivers that refuse it mid-run
                        gpu.unified, gpu.unified_why = True, "NVML memory info is NotSupported"
                    if metric == "throttle" and all("throttle" in g.off for g in self._gpus):
                        self._unmeasured["throttle"] = (
                            f"clock-throttle reasons: NVML {self._reasons_name} answered "
                            f"{type(exc).__name__} on GPU {gpu.index} ({gpu.name})")
                    continue
                except lost as exc:
                    self._gpus.remove(gpu)
                    self._say_once(gpu, "probe.gpu_lost", error=f"{type(exc).__name__}: {exc}")
                    break
                except nv.NVMLError:
                    continue  # a transient error: unknown this time
                if value is not None:
                    got[metric].append(value)
        if not self._gpus:
            raise ProbeGone("every GPU was lost (NVML: GPU is lost); NVML readings stop here")
        mem, throttle = got["mem"], got["throttle"]
        return {
            "gpu_count": len(self._gpus),
            "unified_memory": any(g.unified for g in self._gpus),
            "gpu_util": max(got["util"]) if got["util"] else None,
            "gpu_temp_c": max(got["temp"]) if got["temp"] else None,
            "power_w": sum(got["power"]) if got["power"] else None,
            "gpu_mem_used_gb": sum(u for u, _t in mem) if mem else None,
            "gpu_mem_total_gb": sum(t for _u, t in mem) if mem else None,
            "lane_gpu_mem_gb": sum(got["procs"]) if got["procs"] else None,
            # any GPU's reasons count: one throttled GPU slows a tensor-parallel server down
            "throttle_reasons": sorted({r for rs in throttle for r in rs}) if throttle else None,
            "throttle_source": self.name if throttle else None,
        }

    def unmeasured(self) -> dict[str, str]:
        return dict(self._unmeasured)

    def close(self) -> None:
        if self._nv is not None:
            try:
                self._nv.nvmlShutdown()
            except Exception:  # noqa: BLE001 - shutting down a lost driver
                pass
            self._nv = None
