"""``nvidia-smi``: the fallback when NVML cannot be used from Python.

One field per query (``--query-gpu=FIELD``): on GB10 ``memory.used`` prints ``[N/A]``,
and a one-row CSV of every field would need every field to parse. A field that is
``[N/A]`` / ``[Not Supported]`` on every GPU is not polled again. Skipped while the
``nvml`` probe is available (``fallback_for``).

Thermal/power throttling comes from the hex clock-event bitmask
(``clocks_event_reasons.active``, ``clocks_throttle_reasons.active`` on older drivers),
named as the nvml probe names the bits; a GPU that prints ``[N/A]`` for it, or a driver that
knows neither field, is said once in :meth:`NvidiaSmiProbe.unmeasured`.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any, ClassVar

from hbench.plugins.probes.nvml import throttle_reasons
from hbench.probes import GIB, Probe, ProbeGone

#: query field -> what it becomes (memory fields are MiB)
FIELDS: dict[str, str] = {
    "utilization.gpu": "gpu_util",
    "temperature.gpu": "gpu_temp_c",
    "power.draw": "power_w",
    "memory.used": "gpu_mem_used_gb",
    "memory.total": "gpu_mem_total_gb",
}
#: the clock-event reasons bitmask (hex), newest field name first
REASON_FIELDS = ("clocks_event_reasons.active", "clocks_throttle_reasons.active")
UNIFIED_TOLERANCE = 0.05
QUERY_TIMEOUT_S = 5.0


def parse_bitmasks(stdout: str) -> list[int | None]:
    """One bitmask per GPU line (``0x0000000000000004``); anything else is None."""
    out: list[int | None] = []
    for line in stdout.splitlines():
        text = line.strip()
        if not text:
            continue
        try:
            out.append(int(text.split()[0], 16))
        except ValueError:
            out.append(None)
    return out


def parse_field(stdout: str) -> list[float | None]:
    """One value per GPU line; ``[N/A]``, ``[Not Supported]``, ``N/A`` or anything that
    is not a number becomes None."""
    out: list[float | None] = []
    for line in stdout.splitlines():
        text = line.strip()
        if not text:
            continue
        try:
            out.append(float(text.split()[0]))
        except ValueError:
            out.append(None)
    return out


class NvidiaSmiProbe(Probe):
    name: ClassVar[str] = "nvidia-smi"
    description: ClassVar[str] = "NVIDIA GPUs through nvidia-smi, one field per query (NVML fallback)"
    priority: ClassVar[int] = 30
    fallback_for: ClassVar[str | None] = "nvml"
    memory_source: ClassVar[str | None] = "gpu"  # a GPU's own memory: decides the memory source

    def __init__(self, binary: str = "nvidia-smi"):
        self._binary_name = binary
        self._binary: str | None = None
        self._off: set[str] = set()
        self._unified = False
        self._reason_field: str | None = None  # found at the first sample (one query per name tried)
        self._reasons_tried = False
        self._unmeasured: dict[str, str] = {}

    def _query(self, field: str) -> tuple[int, str]:
        assert self._binary is not None
        try:
            proc = subprocess.run([self._binary, f"--query-gpu={field}", "--format=csv,noheader,nounits"],
                                  capture_output=True, text=True, timeout=QUERY_TIMEOUT_S, check=False)
        except FileNotFoundError:
            raise ProbeGone(f"{self._binary} disappeared") from None
        return proc.returncode, proc.stdout if proc.returncode == 0 else (proc.stderr or proc.stdout)

    def available(self) -> tuple[bool, str]:
        self._binary = shutil.which(self._binary_name)
        if self._binary is None:
            return False, "nvidia-smi is not on PATH (no NVIDIA driver utilities on this machine)"
        try:
            rc, text = self._query("index")
        except (subprocess.TimeoutExpired, ProbeGone, OSError) as exc:
            return False, f"nvidia-smi did not answer: {exc}"
        if rc != 0:
            first = (text.strip().splitlines() or ["no output"])[0]
            return False, f"nvidia-smi failed (exit {rc}): {first}"
        if not parse_field(text):
            return False, "nvidia-smi lists no GPU"
        rc, text = self._query("memory.total")
        totals = [v for v in parse_field(text) if v is not None] if rc == 0 else []
        import psutil  # here, not at module level: listing plugins must stay fast

        ram_mib = psutil.virtual_memory().total / 2**20
        if not totals or any(abs(t - ram_mib) <= UNIFIED_TOLERANCE * ram_mib for t in totals):
            self._unified = True  # GB10: memory is the system's; meminfo reads it
            self._off |= {"memory.used", "memory.total"}
        return True, "ok"

    def sample(self) -> dict[str, Any]:
        out: dict[str, Any] = {"unified_memory": self._unified}
        errors: list[str] = []
        for field, key in FIELDS.items():
            if field in self._off:
                continue
            try:
                rc, text = self._query(field)
            except subprocess.TimeoutExpired:
                errors.append(f"{field}: timed out")
                continue
            if rc != 0:
                errors.append(f"{field}: exit {rc}: {(text.strip().splitlines() or [''])[0]}")
                continue
            values = parse_field(text)
            known = [v for v in values if v is not None]
            if not known:
                self._off.add(field)  # [N/A] on every GPU: not polled again
                continue
            out["gpu_count"] = len(values)
            if key in ("gpu_util", "gpu_temp_c"):
                out[key] = max(known)
            elif key.endswith("_gb"):
                out[key] = sum(known) * 2**20 / GIB
            else:
                out[key] = sum(known)
        polled = [f for f in FIELDS if f not in self._off]
        if polled and len(errors) == len(polled):
            raise RuntimeError(f"every nvidia-smi query failed ({errors[0]})")
        reasons = self._throttle()
        if reasons is not None:
            out["throttle_reasons"], out["throttle_source"] = reasons, self.name
        return out

    def _throttle(self) -> list[str] | None:
        """The thermal/power reasons active on any GPU now (None = unknown)."""
        fields = [self._reason_field] if self._reason_field else ([] if self._reasons_tried else list(REASON_FIELDS))
        self._reasons_tried = True
        for field in fields:
            try:
                rc, text = self._query(field)
            except subprocess.TimeoutExpired:
                self._reasons_tried = bool(self._reason_field)  # not found yet: try the names again
                return None
            if rc != 0:
                continue  # an older driver does not know the newer name
            bits = [b for b in parse_bitmasks(text) if b is not None]
            if not bits:
                self._reason_field = None
                self._unmeasured["throttle"] = f"nvidia-smi {field}: {(text.strip().splitlines() or [''])[0]}"
                return None
            self._reason_field = field
            return sorted({r for b in bits for r in throttle_reasons(b)})
        if not self._reason_field and "throttle" not in self._unmeasured:
            self._unmeasured["throttle"] = f"this nvidia-smi knows neither {' nor '.join(REASON_FIELDS)}"
        return None

    def unmeasured(self) -> dict[str, str]:
        return dict(self._unmeasured)
