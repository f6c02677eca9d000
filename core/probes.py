"""The telemetry-probe interface and the background sampler.

Probes live in plugins/probes/. A probe reports a flat dict of readings using the
standard keys below (others are kept in the series as they are).
"""

from __future__ import annotations

from typing import Any, ClassVar

#: standard reading keys (None = unknown, never 0)
READINGS = (
    "gpu_util",  # percent, max over GPUs
    "gpu_mem_used_gb",
    "gpu_temp_c",
    "power_w",
    "unified_used_gb",  # MemTotal - MemAvailable
    "cpu_percent",
    "rss_gb",  # the lane server's process-tree RSS
)


class Probe:
    name: ClassVar[str]
    description: ClassVar[str] = ""

    def available(self) -> tuple[bool, str]:
        """(usable?, why not). Called once before sampling; import heavy libs here."""
        return True, "ok"

    def sample(self) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def set_target(self, pid: int | None = None, lane: Any = None) -> None:
        """The lane being measured (server pid for RSS, lane spec for remote metrics)."""

    def close(self) -> None:
        """Release resources (NVML shutdown)."""
