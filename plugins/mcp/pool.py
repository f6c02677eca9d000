"""Warm hbench MCP servers, leased one per attempt and re-rooted per attempt.

A fresh ``hbench mcp-serve`` per attempt costs a Python start and the ``mcp`` import
(~1.2 s of CPU; seconds of wall time on a loaded box: BENCHMARKS.md, "MCP"). So the
``builtin-mcp`` agent leases a server that is already up. The server runs in
``--attempt-roots`` mode with the run's scratch folder as its root, and every call
names its attempt's own scratch copy and a fresh attempt token in ``_meta``
(:mod:`hbench.plugins.mcp.server`): an attempt's calls run in a sandbox on its copy
only, with its own tool state, and a leased server serves one attempt at a time. A
server that failed a call is closed, not returned. Servers beyond ``ahead`` idle ones
are stopped; the rest are stopped when the run ends (``hbench_run_finished``) or the
process exits.
"""

from __future__ import annotations

import atexit
import threading
from collections import deque
from pathlib import Path
from typing import Any

from hbench.plugins.mcp.launch import hbench_server_argv, server_env
from hbench.plugins.mcp.session import McpConnection

#: idle warm servers kept per pool (one more than attempts in flight is started ahead)
AHEAD = 1
MAX_IDLE = 8  # idle servers kept for the next attempts (one per attempt in flight)
START_TIMEOUT_S = 60.0  # a cold Python + mcp import on a loaded 2-core box takes seconds

_pools: dict[tuple[str, str | None], ServerPool] = {}
_lock = threading.Lock()


class ServerPool:
    def __init__(self, base: Path, suite: str | None, *, ahead: int = AHEAD):
        self.base = Path(base)
        self.suite = suite
        self.ahead = ahead
        self._idle: deque[McpConnection] = deque()
        self._starting = 0
        self._cv = threading.Condition()
        self._closed = False
        self._leased = 0

    def _new(self) -> McpConnection:
        return McpConnection("hbench", hbench_server_argv(self.base, suite=self.suite, attempt_roots=True),
                             env=server_env(hbench=True), cwd=str(self.base), start_timeout_s=START_TIMEOUT_S)

    def _warm_one(self) -> None:
        try:
            conn = self._new().start()
        except Exception:  # noqa: BLE001 - lease() starts one itself and reports its error
            conn = None
        with self._cv:
            self._starting -= 1
            if conn is not None and not self._closed:
                self._idle.append(conn)
                conn = None
            self._cv.notify_all()
        if conn is not None:
            conn.close()

    def _top_up(self) -> None:
        with self._cv:
            if self._closed or len(self._idle) + self._starting >= self.ahead:
                return
            self._starting += 1
        threading.Thread(target=self._warm_one, name="hbench-mcp-warm", daemon=True).start()

    def lease(self) -> McpConnection:
        """A started server for one attempt (a warm one, or one started now)."""
        with self._cv:
            conn = self._idle.popleft() if self._idle else None
            if conn is None and self._starting:
                self._cv.wait_for(lambda: bool(self._idle) or not self._starting, timeout=START_TIMEOUT_S)
                conn = self._idle.popleft() if self._idle else None
            self._leased += 1
        if conn is None:
            conn = self._new().start()  # raises McpStartError with the reason
        self._top_up()
        return conn

    def release(self, conn: McpConnection) -> None:
        """Give a server back after its attempt; a broken one, or one too many, is stopped."""
        with self._cv:
            self._leased -= 1
            keep = (not self._closed and conn.dead is None and not conn.stats.exited_early
                    and len(self._idle) < MAX_IDLE)
            if keep:
                self._idle.append(conn)
        if not keep:
            conn.close()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
        for conn in idle:
            conn.close()


def pool_for(base: Path, suite: str | None) -> ServerPool:
    key = (str(base), suite)
    with _lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = ServerPool(base, suite)
        return pool


def close_all() -> None:
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


atexit.register(close_all)


def scratch_base(scratch: Path) -> Path:
    """The folder a pooled server is confined to for an attempt's scratch copy: the
    run's ``scratch`` folder when the copy lies under one, else the copy's parent."""
    scratch = Path(scratch).absolute()
    for parent in scratch.parents:
        if parent.name == "scratch":
            return parent
    return scratch.parent


def describe() -> dict[str, Any]:
    with _lock:
        return {"pools": len(_pools)}
