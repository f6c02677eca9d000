"""Cancellation: a deadline or a cancel event closes the in-flight request's socket, so the
server stops decoding and the waiting thread wakes (also mid-stall and mid-stream).

This reaches into httpcore: a custom ``httpcore.NetworkBackend`` records which network
stream each thread uses (httpx offers no public way to find the socket of a request in
flight). ``tests/test_client.py`` pins it against the installed httpx/httpcore, and
pyproject.toml caps both at the versions it was tested on.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import httpcore
import httpx


class StreamRegistry:
    """Which network stream each thread is using right now (see :class:`_TrackingBackend`)."""

    def __init__(self) -> None:
        self._by_thread: dict[int, Any] = {}
        self._lock = threading.Lock()

    def claim(self, stream: Any) -> None:
        tid = threading.get_ident()
        if self._by_thread.get(tid) is not stream:
            with self._lock:
                self._by_thread[tid] = stream

    def forget(self, tid: int) -> None:
        with self._lock:
            self._by_thread.pop(tid, None)

    def get(self, tid: int) -> Any:
        with self._lock:
            return self._by_thread.get(tid)


class _TrackedStream(httpcore.NetworkStream):
    """A network stream that records the thread reading or writing it, so a watchdog can
    shut down the socket a request is using, also on a reused kept-alive connection."""

    def __init__(self, inner: Any, registry: StreamRegistry):
        self._inner, self._registry = inner, registry

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._registry.claim(self)
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._registry.claim(self)
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> "_TrackedStream":
        return _TrackedStream(self._inner.start_tls(ssl_context, server_hostname, timeout), self._registry)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _TrackingBackend(httpcore.NetworkBackend):
    def __init__(self, inner: Any, registry: StreamRegistry):
        self._inner, self._registry = inner, registry

    def connect_tcp(self, *args: Any, **kwargs: Any) -> _TrackedStream:
        return _TrackedStream(self._inner.connect_tcp(*args, **kwargs), self._registry)

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> _TrackedStream:
        return _TrackedStream(self._inner.connect_unix_socket(*args, **kwargs), self._registry)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def install_tracking(http: httpx.Client, registry: StreamRegistry) -> bool:
    """Wrap the pool's network backend (httpx has no public hook for it). Without it the
    watchdog still closes a request once its response has started, and the per-read
    timeout (capped at the deadline) bounds a stall before the first byte."""
    pool = getattr(getattr(http, "_transport", None), "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is None or not hasattr(backend, "connect_tcp"):
        return False
    pool._network_backend = _TrackingBackend(backend, registry)
    return True


class _Monitor:
    """One thread that watches every request in flight for its deadline, its cancel event
    and its tail grace (a thread per request cost ~0.3 ms of CPU a request, and the
    thread churn grew glibc's per-thread arenas: BENCHMARKS.md 1 and 7). It sleeps until
    the earliest due time, polls cancel events every 20 ms while a request that has one
    is in flight, and waits without waking when nothing is in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dogs: set[Watchdog] = set()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, dog: Watchdog) -> None:
        with self._lock:
            self._dogs.add(dog)
            if self._thread is None or not self._thread.is_alive():  # first use, or after a fork
                self._thread = threading.Thread(target=self._run, name="hbench-client-watchdog", daemon=True)
                self._thread.start()
        self._wake.set()

    def remove(self, dog: Watchdog) -> None:
        with self._lock:
            self._dogs.discard(dog)

    def poke(self) -> None:
        """A due time changed: look again now."""
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.clear()  # before the snapshot: an add() after it wakes the wait below
            with self._lock:
                dogs = list(self._dogs)
            wait: float | None = None  # None: nothing in flight, sleep until an add()
            now = time.monotonic()
            for dog in dogs:
                w = dog._poll(now)
                if w is not None:
                    wait = w if wait is None else min(wait, w)
            self._wake.wait(None if wait is None else max(0.001, min(wait, 0.25)))


_MONITOR = _Monitor()


class Watchdog:
    """Shuts the request's socket down when the deadline passes, the cancel event is set,
    or the tail grace after ``finish_reason`` runs out. Shutting down (not closing) wakes
    a read blocked in another thread, and the server sees the connection end. Watched by
    the shared :class:`_Monitor` thread from creation until :meth:`finish`."""

    def __init__(self, deadline: float | None, cancel: threading.Event | None,
                 registry: StreamRegistry | None = None):
        self.deadline, self.cancel = deadline, cancel
        self._tail_deadline: float | None = None
        self.fired: str | None = None  # "timeout" | "cancel" | "tail"
        self._sock: socket.socket | None = None
        self._registry = registry
        self._tid = threading.get_ident()
        if registry is not None:
            registry.forget(self._tid)  # only streams this request touches from now on
        self._lock = threading.Lock()
        self._done = False
        _MONITOR.add(self)

    @property
    def tail_deadline(self) -> float | None:
        return self._tail_deadline

    @tail_deadline.setter
    def tail_deadline(self, value: float | None) -> None:
        self._tail_deadline = value
        _MONITOR.poke()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            self.attach(info.get("return_value"))

    def attach(self, stream: Any) -> None:
        sock = _socket_of(stream)
        if sock is None:
            return
        with self._lock:
            self._sock = sock
            if self.fired:
                self._shutdown()

    def _shutdown(self) -> None:
        socks = [self._sock]
        if self._registry is not None:
            socks.append(_socket_of(self._registry.get(self._tid)))
        for sock in {id(s): s for s in socks if s is not None}.values():
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _fire(self, why: str) -> None:
        with self._lock:
            if self.fired or self._done:
                return
            self.fired = why
            self._shutdown()

    def _poll(self, now: float) -> float | None:
        """(the monitor thread) Fire when due; else the seconds until this request needs
        another look. None: it fired or finished."""
        if self._done or self.fired:
            return None
        if self.cancel is not None and self.cancel.is_set():
            self._fire("cancel")
            return None
        if self.deadline is not None and now >= self.deadline:
            self._fire("timeout")
            return None
        tail = self._tail_deadline
        if tail is not None and now >= tail:
            self._fire("tail")
            return None
        due = [d for d in (self.deadline, tail) if d is not None]
        wait = min(due) - now if due else 0.25
        if self.cancel is not None:
            wait = min(wait, 0.02)
        return wait

    def finish(self) -> None:
        with self._lock:
            self._done = True
        _MONITOR.remove(self)
        if self._registry is not None:
            self._registry.forget(self._tid)


def _socket_of(stream: Any) -> socket.socket | None:
    try:
        sock = stream.get_extra_info("socket") if stream is not None else None
    except Exception:  # noqa: BLE001 - an unusual transport: no early close, timeouts still bound it
        return None
    return sock if isinstance(sock, socket.socket) else None
