"""``host`` (psutil): whole-machine CPU percent and the lane server's process-tree RSS.

Never blocks (no ``interval``): a percent needs two readings, so the probe primes its
counters in ``available()`` / ``set_target()`` and caches its Process objects across
samples (a fresh Process's first ``cpu_percent`` is 0.0 and is not reported). Children that vanish between listing and reading are skipped.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from hbench.probes import GIB, Probe

if TYPE_CHECKING:  # psutil is imported where it is used: listing plugins must stay fast
    import psutil


def _gone() -> tuple[type[BaseException], ...]:
    """psutil's 'that process is gone' errors."""
    import psutil

    return (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess)


def _busy_total(t: Any) -> tuple[float, float]:
    """(busy, total) seconds from ``psutil.cpu_times()`` (guest time is already in user)."""
    total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
    idle = t.idle + getattr(t, "iowait", 0.0)
    return total - idle, total


class HostProbe(Probe):
    name: ClassVar[str] = "host"
    description: ClassVar[str] = "CPU percent and the lane server's process-tree RSS (psutil)"
    priority: ClassVar[int] = 50
    #: seconds between re-listings of the lane's process tree
    rescan_s: ClassVar[float] = 5.0

    def __init__(self) -> None:
        self._pid: int | None = None
        self._root: psutil.Process | None = None
        self._procs: dict[int, psutil.Process] = {}  # pid -> cached Process (cpu counters)
        self._root_gone = False
        self._last_cpu: tuple[float, float] | None = None
        self._listed_at: float | None = None

    def set_target(self, pid: int | None = None, lane: Any = None) -> None:
        import psutil

        self._pid = pid
        self._root = None
        self._procs = {}
        self._root_gone = False
        self._listed_at = None
        if pid is not None:
            try:
                self._root = psutil.Process(pid)
                self._root.cpu_percent(None)
                self._root._hbench_primed = True  # type: ignore[attr-defined]
                self._procs[pid] = self._root
            except _gone():
                self._root_gone = True

    def available(self) -> tuple[bool, str]:
        import psutil

        try:
            self._last_cpu = _busy_total(psutil.cpu_times())  # prime: a percent needs two readings
        except Exception as exc:  # noqa: BLE001 - psutil on an odd platform
            return False, f"psutil cannot read CPU times: {exc}"
        return True, "ok"

    def _cpu_percent(self) -> float | None:
        """Whole-machine busy percent since the last call, from this probe's own
        counters (psutil.cpu_percent keeps one process-wide baseline that any other
        caller would reset)."""
        import psutil

        now = _busy_total(psutil.cpu_times())
        last, self._last_cpu = self._last_cpu, now
        if last is None:
            return None
        d_total = now[1] - last[1]
        if d_total <= 0:
            return None
        return max(0.0, min(100.0, 100.0 * (now[0] - last[0]) / d_total))

    def _tree(self) -> list[psutil.Process]:
        """The cached root plus its children. Listing children scans every process on
        the machine (/proc/*/stat), so the tree is re-listed only every
        ``rescan_s`` seconds; in between the cached members are read. Re-listing reuses
        cached objects (same pid and create time) so their CPU counters carry over."""
        assert self._root is not None
        now = time.monotonic()
        if self._listed_at is not None and now - self._listed_at < self.rescan_s:
            return list(self._procs.values())
        try:
            children = self._root.children(recursive=True)
        except _gone():
            return []
        self._listed_at = now
        fresh: dict[int, psutil.Process] = {self._root.pid: self._root}
        for child in children:
            cached = self._procs.get(child.pid)
            fresh[child.pid] = cached if cached is not None and cached == child else child
        self._procs = fresh
        return list(fresh.values())

    def sample(self) -> dict[str, Any]:
        import psutil

        out: dict[str, Any] = {"cpu_percent": self._cpu_percent()}
        if self._root is None or self._root_gone:
            return out
        if not self._root.is_running():
            self._root_gone = True
            return out
        rss = 0
        cpu = 0.0
        seen = 0
        n = 0
        for proc in self._tree():
            try:
                with proc.oneshot():
                    if proc.status() == psutil.STATUS_ZOMBIE:
                        continue  # exited, not yet reaped: holds no memory
                    rss += proc.memory_info().rss
                    first = not getattr(proc, "_hbench_primed", False)
                    pct = proc.cpu_percent(None)
                n += 1
                if first:
                    proc._hbench_primed = True  # type: ignore[attr-defined]
                else:
                    cpu += pct
                    seen += 1
            except _gone():
                self._procs.pop(proc.pid, None)  # vanished since it was listed
                continue
        if n == 0:
            return out
        out["rss_gb"] = rss / GIB
        out["lane_procs"] = n
        if seen:
            out["lane_cpu_percent"] = cpu  # percent of one core, summed over the tree
        return out
