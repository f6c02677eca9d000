"""One timed streamed chat completion: the request both the throughput probe
(:mod:`hbench.plugins.throughput.measure`) and its sweeps (:mod:`hbench.plugins.throughput.sweep`)
send. It keeps a timestamp per token-bearing chunk and the raw ``usage`` / ``timings`` objects,
which a chat response does not keep; each caller turns them into its own figures. The body
(and its cache-busting nonce) is the caller's.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from hbench.sse import json_chunks


class Cut(Exception):
    """A sweep request was still running when the sweep's budget ran out."""


class Rejected(RuntimeError):
    """The server answered the request with an HTTP error status (kept in ``status``)."""

    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status


def timed_stream(http: httpx.Client, url: str, body: dict[str, Any],
                 deadline: float | None = None) -> dict[str, Any]:
    """POST ``body`` streamed to ``url``: ``t0`` (sent), ``times`` (one per chunk carrying
    content, reasoning or a tool-call delta), ``t_finish`` (the first finish_reason),
    ``finish_reason`` (the last one given), ``usage`` and ``timings`` (the last of each, else
    ``{}``); all times ``time.perf_counter()``. An HTTP error status raises :class:`Rejected`.
    With a ``deadline``, a request still running then raises :class:`Cut`."""
    t0 = time.perf_counter()
    times: list[float] = []
    t_finish: float | None = None
    finish: str | None = None
    usage: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    kw: dict[str, Any] = {}
    if deadline is not None:
        if deadline <= t0:
            raise Cut("no budget left")
        kw["timeout"] = httpx.Timeout(deadline - t0, connect=min(10.0, deadline - t0))
    try:
        with http.stream("POST", url, json=body, **kw) as r:
            if r.status_code >= 400:
                raise Rejected(r.status_code, r.read().decode(errors="replace"))
            for obj in json_chunks(r.iter_bytes()):  # hbench.sse: the one SSE reader
                now = time.perf_counter()
                if deadline is not None and now > deadline:
                    raise Cut(f"still streaming after {now - t0:.1f} s")
                if isinstance(obj.get("usage"), dict):
                    usage = obj["usage"]
                if isinstance(obj.get("timings"), dict):
                    timings = obj["timings"]
                for choice in obj.get("choices") or []:
                    d = choice.get("delta") or {}
                    if d.get("content") or d.get("reasoning_content") or d.get("reasoning") or d.get("tool_calls"):
                        times.append(now)
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                        t_finish = now if t_finish is None else t_finish
    except httpx.TimeoutException as exc:
        if deadline is not None and time.perf_counter() >= deadline - 0.05:
            raise Cut(f"no answer within the {deadline - t0:.1f} s left") from exc
        raise
    return {"t0": t0, "times": times, "t_finish": t_finish, "finish_reason": finish,
            "usage": usage, "timings": timings}
