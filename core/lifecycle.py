"""The managed lifecycle: start a lane's server, wait until it is ready, stop it for good.

One brain at a time on a unified-memory box, so a managed lane is:

1. **checked against the memory envelope** - ``MemAvailable`` must cover the lane's
   ``expected_memory_gb`` plus a headroom, or the start is refused with the numbers;
2. **started in its own process group** (``start_new_session=True``), stdout and stderr
   appended to ``OUT/logs/<lane>.log``;
3. **waited on** until its kind says ready, with a live "loading, 40 s" status; a server
   that exits or never gets ready raises :class:`LaneError` carrying the log tail;
4. **stopped**: the kind's stop command (``docker stop``) first, then SIGTERM to the
   group, SIGKILL after ``stop_grace_s``, then a check that no process of the group (or
   a descendant that left it) is left;
5. **waited out** until ``MemAvailable`` is back near where it was before the start
   (bounded by ``memory_return_timeout_s``; a warning when it does not come back).
"""

from __future__ import annotations

import os
import re
import signal
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import psutil

from hbench.errors import LaneError
from hbench.logging import get_logger, scrub
from hbench.meminfo import mem_available_bytes
from hbench.models import LaneSpec
from hbench.outdir import mark
from hbench.readiness import RunningLane, check_served_model, prove_generation, ready_timeout, wait_ready

if TYPE_CHECKING:  # pragma: no cover
    from hbench.lanes import LaneKind  # only a type here: lanes hands managed lanes to this module

MEMINFO = Path("/proc/meminfo")
KILL_WAIT_S = 5.0  # after SIGKILL, how long the group gets to disappear
#: the floor where memory is unified and nothing is configured: running out of unified
#: memory livelocks a GB10 box instead of swapping (LANES.md), so people keep 8 GiB free
UNIFIED_FLOOR_GIB = 8.0
#: seconds between MemAvailable readings while a managed lane runs
FLOOR_POLL_S = 1.0
UNIFIED_ENV = "HBENCH_UNIFIED_MEMORY"  # 1/0: say whether memory is unified (overrides detection)
#: files naming the machine: a unified-memory board names itself there
MACHINE_FILES = (Path("/sys/class/dmi/id/product_name"), Path("/proc/device-tree/model"))
UNIFIED_MACHINES = ("dgx spark", "gb10", "jetson", "thor", "grace blackwell")


def mem_available_gb(meminfo: Path | None = None) -> float | None:
    """``MemAvailable`` from /proc/meminfo in GB (10^9 bytes), or None when unreadable."""
    avail = mem_available_bytes(meminfo or MEMINFO)
    return None if avail is None else avail / 1e9


def unified_memory() -> tuple[bool, str]:
    """(is memory unified?, why): ``$HBENCH_UNIFIED_MEMORY``, else the machine's own name
    (DMI product name or device-tree model: DGX Spark, GB10, Jetson, Thor)."""
    env = os.environ.get(UNIFIED_ENV, "").strip().lower()
    if env in ("1", "true", "yes"):
        return True, f"${UNIFIED_ENV}={env}"
    if env in ("0", "false", "no"):
        return False, f"${UNIFIED_ENV}={env}"
    for path in MACHINE_FILES:
        try:
            name = path.read_text(errors="replace").strip("\x00\n ")
        except OSError:
            continue
        if any(m in name.lower() for m in UNIFIED_MACHINES):
            return True, f"{path} says {name!r}"
    return False, "no unified-memory machine named in " + " or ".join(str(p) for p in MACHINE_FILES)


def memory_floor(spec: LaneSpec) -> tuple[float, str]:
    """(floor in GiB, where it came from); 0 = no floor."""
    if spec.memory_floor_gb is not None:
        return float(spec.memory_floor_gb), f"lanes.{spec.name}.memory_floor_gb (or [run].memory_floor_gb)"
    unified, why = unified_memory()
    if unified:
        return UNIFIED_FLOOR_GIB, f"the default where memory is unified ({why})"
    return 0.0, f"none: memory is not unified ({why}); set memory_floor_gb to have one"


def mem_available_gib(meminfo: Path | None = None) -> float | None:
    """``MemAvailable`` in GiB (2^30 bytes), or None when unreadable."""
    avail = mem_available_bytes(meminfo or MEMINFO)
    return None if avail is None else avail / 2**30


def check_floor(spec: LaneSpec) -> None:
    """Refuse to start a managed lane while MemAvailable is below its floor (or would be,
    once its ``expected_memory_gb`` is taken)."""
    floor, why = memory_floor(spec)
    if floor <= 0:
        return
    avail = mem_available_gib(MEMINFO)
    if avail is None:
        get_logger().warning("lane.memory_floor_unchecked", lane=spec.name, why=f"{MEMINFO} unreadable")
        return
    expected = (spec.expected_memory_gb or 0.0) * 1e9 / 2**30
    if avail - expected < floor:
        after = f", {avail - expected:.1f} GiB once its expected_memory_gb is taken" if expected else ""
        raise LaneError(
            f"lane {spec.name!r} not started: {avail:.1f} GiB available (MemAvailable){after}, below the memory "
            f"floor of {floor:.1f} GiB ({why}). Running out of unified memory can livelock the box: stop other "
            f"model servers, or lower lanes.{spec.name}.memory_floor_gb / [run].memory_floor_gb (0 = off)")


class FloorWatch:
    """While a managed lane runs: read MemAvailable every ``FLOOR_POLL_S``; below the floor,
    stop the lane's process group and say why (``reason``)."""

    def __init__(self, spec: LaneSpec, proc: subprocess.Popen, running: RunningLane):
        self.spec, self.proc, self.running = spec, proc, running
        self.floor, self.why = memory_floor(spec)
        self.reason: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "FloorWatch":
        if self.floor > 0:
            self._thread = threading.Thread(target=self._watch, name=f"floor:{self.spec.name}", daemon=True)
            self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(FLOOR_POLL_S):
            if self.proc.poll() is not None:
                return
            avail = mem_available_gib(MEMINFO)
            if avail is not None and avail < self.floor:
                self.reason = (f"lane {self.spec.name!r} stopped: MemAvailable fell to {avail:.1f} GiB, below the "
                               f"memory floor of {self.floor:.1f} GiB ({self.why}); it was stopped before the box "
                               f"ran out of memory. Free memory, or lower memory_floor_gb (0 = off)")
                self.running.stop_reason = self.reason
                get_logger().error("lane.memory_floor", lane=self.spec.name, available_gib=round(avail, 2),
                                   floor_gib=self.floor)
                stop_group(self.proc, self.spec.stop_grace_s, self.spec.name)
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.spec.stop_grace_s + KILL_WAIT_S + 5)


def check_envelope(spec: LaneSpec, headroom_gb: float, available_gb: float | None) -> None:
    """Refuse to start a lane that does not fit in the memory available now."""
    if spec.expected_memory_gb is None:
        return
    if available_gb is None:
        get_logger().warning("lane.memory_unknown", lane=spec.name,
                             detail="MemAvailable unreadable; starting without the envelope check")
        return
    need = spec.expected_memory_gb + headroom_gb
    if available_gb < need:
        raise LaneError(
            f"lane {spec.name!r} does not fit: it needs {spec.expected_memory_gb:.1f} GB "
            f"(expected_memory_gb) + {headroom_gb:.1f} GB headroom = {need:.1f} GB, but only "
            f"{available_gb:.1f} GB is available (MemAvailable). Stop other model servers, "
            f"or lower lanes.{spec.name}.expected_memory_gb or [run].memory_headroom_gb"
        )


def tree_rss_gb(pid: int) -> float | None:
    """Resident memory of ``pid`` and its descendants in GB, or None when unreadable."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total / 1e9 if total else None


def log_path_for(out_dir: Path, lane_name: str) -> Path:
    return Path(out_dir) / "logs" / f"{re.sub(r'[^A-Za-z0-9._-]', '_', lane_name)}.log"


def _live(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def group_members(pgid: int, tracked: list[psutil.Process] = ()) -> list[psutil.Process]:
    """Live (non-zombie) processes in process group ``pgid``, plus ``tracked`` ones still
    running (descendants that called setsid and so left the group)."""
    found: dict[int, psutil.Process] = {}
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid:
                found[p.pid] = p
        except OSError:
            continue
    for p in tracked:
        found.setdefault(p.pid, p)
    return [p for p in found.values() if _live(p)]


def _die_with_us(cmd: list[str]) -> list[str]:
    """Prefix ``cmd`` so the server gets SIGTERM if hbench itself is killed (kill -9, OOM):
    a managed brain holding tens of GB must not outlive the run that started it. Linux's
    parent-death signal survives the exec, and ``setpriv`` (util-linux) execs in place, so
    the pid stays the server's. Where setpriv is missing the command runs as it is."""
    setpriv = shutil.which("setpriv")
    # an unknown program stays unwrapped, so Popen itself says it cannot run it
    if setpriv is None or not sys.platform.startswith("linux") or not cmd or shutil.which(cmd[0]) is None:
        return list(cmd)
    return [setpriv, "--pdeathsig", "SIGTERM", "--", *cmd]


def stop_group(proc: subprocess.Popen, grace_s: float, lane_name: str) -> list[int]:
    """SIGTERM the group of ``proc``, SIGKILL it after ``grace_s``; return survivor pids."""
    log = get_logger()
    pgid = proc.pid  # start_new_session=True: the leader's pid is the group id
    try:
        tracked = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        tracked = []
    members = group_members(pgid, tracked)
    if not members and proc.poll() is not None:
        return []
    log.info("lane.stopping", lane=lane_name, pids=sorted(p.pid for p in members))
    _signal_all(pgid, members, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader as soon as it exits
        if not group_members(pgid, tracked):
            break
        time.sleep(0.05)
    left = group_members(pgid, tracked)
    if left:
        log.warning("lane.stop_sigkill", lane=lane_name, grace_s=grace_s, pids=sorted(p.pid for p in left))
        _signal_all(pgid, left, signal.SIGKILL)
        deadline = time.monotonic() + KILL_WAIT_S
        while time.monotonic() < deadline and group_members(pgid, tracked):
            proc.poll()
            time.sleep(0.05)
    try:
        proc.wait(timeout=KILL_WAIT_S)
    except subprocess.TimeoutExpired:
        pass
    return sorted(p.pid for p in group_members(pgid, tracked))


def _signal_all(pgid: int, procs: list[psutil.Process], sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for p in procs:  # descendants that left the group
        try:
            if os.getpgid(p.pid) != pgid:
                p.send_signal(sig)
        except (OSError, psutil.Error):
            pass


def wait_memory_returned(spec: LaneSpec, baseline_gb: float | None,
                         on_status: Callable[[str], None] | None = None) -> str | None:
    """Wait (bounded) until MemAvailable is back near ``baseline_gb``; a warning, or None."""
    if baseline_gb is None:
        return None
    slack = max(1.0, 0.1 * (spec.expected_memory_gb or 0.0))
    start = time.monotonic()
    now = mem_available_gb()
    while now is not None and now < baseline_gb - slack:
        waited = time.monotonic() - start
        if waited > spec.memory_return_timeout_s:
            msg = (f"lane {spec.name!r}: memory not returned {waited:.0f} s after stop "
                   f"({now:.1f} GB available, {baseline_gb:.1f} GB before start)")
            get_logger().warning("lane.memory_not_returned", lane=spec.name, available_gb=round(now, 2),
                                 before_gb=round(baseline_gb, 2))
            return msg
        if on_status:
            on_status(f"waiting for memory, {waited:.0f} s ({now:.1f}/{baseline_gb:.1f} GB)")
        time.sleep(0.5)
        now = mem_available_gb()
    get_logger().info("lane.memory_returned", lane=spec.name, waited_s=round(time.monotonic() - start, 2))
    return None


@contextmanager
def managed_lane(spec: LaneSpec, kind: LaneKind, *, out_dir: Path, headroom_gb: float = 2.0,
                 on_status: Callable[[str], None] | None = None,
                 cancel: threading.Event | None = None) -> Iterator[RunningLane]:
    """Start ``spec.start``, yield the ready lane, and stop it (see the module docstring)."""
    log = get_logger()
    assert spec.start, "managed_lane needs a start command"
    baseline = mem_available_gb()
    check_envelope(spec, headroom_gb, baseline)
    check_floor(spec)
    log_path = log_path_for(Path(out_dir), spec.name)
    if not Path(out_dir).exists() or not any(Path(out_dir).iterdir()):
        mark(Path(out_dir))  # a folder hbench creates (`hbench doctor`'s logs) is marked as its own
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logf = open(log_path, "ab")  # noqa: SIM115 - closed in finally
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    logf.write(scrub(f"=== hbench {stamp}: starting lane {spec.name}: {' '.join(spec.start)}\n").encode())
    logf.flush()
    try:
        proc = subprocess.Popen(  # noqa: S603 - the user's own start command
            _die_with_us(spec.start), stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            env={**os.environ, **spec.env}, start_new_session=True,
        )
    except OSError as exc:
        logf.close()
        raise LaneError(
            f"lane {spec.name!r}: cannot run start command {spec.start[0]!r} ({exc.strerror or exc}); "
            f"install it or give its full path in lanes.{spec.name}.start"
        ) from None
    t_start = time.monotonic()
    log.info("lane.started", lane=spec.name, pid=proc.pid, log=str(log_path))
    running = RunningLane(spec=spec, kind=kind, pid=proc.pid, log_path=log_path,
                          alive=lambda: proc.poll() is None, returncode=proc.poll)
    body_failed = False
    try:
        try:
            wait_ready(kind, spec, ready_timeout(spec, managed=True), on_status, alive=running.is_alive,
                       cancel=cancel)
            if not running.is_alive():
                raise LaneError(f"lane {spec.name!r}: server exited right after it answered ready")
            check_served_model(running)
            if on_status:
                on_status("generation canary (1 token)")
            prove_generation(running, ready_timeout(spec, managed=True), cancel)
            running.ready_s = time.monotonic() - t_start
            running.resting_memory_gb = tree_rss_gb(proc.pid)
            running.resting_memory_source = "server process tree RSS" if running.resting_memory_gb is not None else None
            log.info("lane.ready_for_prompts", lane=spec.name, ready_s=round(running.ready_s, 2),
                     resting_memory_gb=running.resting_memory_gb)
        except LaneError as exc:
            body_failed = True
            logf.flush()
            raise LaneError(f"{exc}{_tail_note(running, proc)}") from None
        watch = FloorWatch(spec, proc, running).start()
        try:
            yield running
        except BaseException:
            body_failed = True
            raise
        finally:
            watch.stop()
    finally:
        survivors = _stop(spec, kind, proc, on_status)
        logf.close()
        if survivors:
            msg = (f"lane {spec.name!r}: processes {survivors} of its group survived SIGKILL; "
                   f"stop them by hand before the next lane starts")
            log.error("lane.stop_failed", lane=spec.name, pids=survivors)
            if not body_failed:
                raise LaneError(msg)
        else:
            log.info("lane.stopped", lane=spec.name, returncode=proc.returncode)
            warning = wait_memory_returned(spec, baseline, on_status)
            if warning:
                running.warnings.append(warning)


def _tail_note(running: RunningLane, proc: subprocess.Popen) -> str:
    code = proc.poll()
    exited = f"; exit code {code}" if code is not None else ""
    tail = running.log_tail()
    where = f"\n--- last lines of {running.log_path} ---\n{tail}" if tail else f" (log {running.log_path} is empty)"
    return f"{exited}{where}"


def _stop(spec: LaneSpec, kind: LaneKind, proc: subprocess.Popen,
          on_status: Callable[[str], None] | None) -> list[int]:
    if on_status:
        on_status("stopping")
    stop_cmd = kind.stop_command(spec)
    if stop_cmd and proc.poll() is None:
        try:
            subprocess.run(stop_cmd, stdin=subprocess.DEVNULL, capture_output=True,  # noqa: S603
                           timeout=spec.stop_grace_s + 15, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            get_logger().warning("lane.stop_command_failed", lane=spec.name, command=stop_cmd,
                                 error=f"{type(exc).__name__}: {exc}")
    return stop_group(proc, spec.stop_grace_s, spec.name)
