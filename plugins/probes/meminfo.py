"""``meminfo``: memory used = MemTotal - MemAvailable, from /proc/meminfo.

On a unified-memory box (GB10 / DGX Spark) this is the number that decides whether a
brain fits: the GPU's memory is the system's memory, and NVML / nvidia-smi cannot say.
Elsewhere it is system RAM in use, which is what a CPU lane (llama.cpp) consumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from hbench.meminfo import parse_meminfo
from hbench.probes import GIB, Probe

KIB = 1024.0


def used_bytes(fields: dict[str, int]) -> tuple[int, int] | None:
    """(total, used) in bytes, or None when MemTotal is missing. Kernels older than 3.14
    lack MemAvailable: then MemFree + Buffers + Cached stands in."""
    total = fields.get("MemTotal")
    if not total:
        return None
    avail = fields.get("MemAvailable")
    if avail is None:
        avail = fields.get("MemFree", 0) + fields.get("Buffers", 0) + fields.get("Cached", 0)
    return total, max(0, total - avail)


class MeminfoProbe(Probe):
    name: ClassVar[str] = "meminfo"
    description: ClassVar[str] = "unified / system memory used (MemTotal - MemAvailable)"
    priority: ClassVar[int] = 40
    path: ClassVar[str] = "/proc/meminfo"

    def __init__(self, path: str | None = None):
        self._path = Path(path or self.path)

    def _read(self) -> tuple[int, int]:
        got = used_bytes(parse_meminfo(self._path.read_text()))
        if got is None:
            raise ValueError(f"{self._path} has no MemTotal line")
        return got

    def available(self) -> tuple[bool, str]:
        if not self._path.exists():
            return False, f"{self._path} does not exist (not Linux): no unified/system memory reading"
        try:
            self._read()
        except (OSError, ValueError) as exc:
            return False, f"cannot read {self._path}: {exc}"
        return True, "ok"

    def sample(self) -> dict[str, Any]:
        total, used = self._read()
        return {"unified_used_gb": used / GIB, "mem_total_gb": total / GIB}
