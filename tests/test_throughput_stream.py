"""The one timed streamed request (plugins/throughput/stream.py) that the throughput probe and
its sweeps both send, against hbench.testing's scripted server on 127.0.0.1."""

from __future__ import annotations

import time

import httpx
import pytest

from hbench.plugins.throughput.stream import Cut, Rejected, timed_stream
from hbench.testing import Fault, ScriptedServer, Turn


def _body(srv: ScriptedServer, text: str, max_tokens: int = 8) -> dict:
    return {"model": srv.model, "stream": True, "max_tokens": max_tokens, "ignore_eos": True,
            "stream_options": {"include_usage": True}, "messages": [{"role": "user", "content": text}]}


def test_a_stream_times_each_token_and_keeps_usage_and_the_finish():
    with ScriptedServer(token_latency_s=0.01) as srv, httpx.Client(timeout=30) as http:
        raw = timed_stream(http, f"{srv.url}/chat/completions", _body(srv, "count"))
    times = raw["times"]
    assert len(times) >= 2 and times == sorted(times) and raw["t0"] < times[0]
    assert raw["usage"].get("completion_tokens") == 8 and raw["finish_reason"] == "stop"
    assert raw["t_finish"] is not None and raw["t_finish"] >= times[-1]


def test_an_http_error_is_rejected_with_its_status_and_is_a_runtime_error():
    """The probe walks its extras ladder on 400/422 (it reads ``status``); a sweep reports any
    RuntimeError as a failed point."""
    with ScriptedServer() as srv, httpx.Client(timeout=30) as http:
        srv.set_scripts({"refuse": [Turn(faults=(Fault("http", status=422),))]})
        with pytest.raises(Rejected) as info:
            timed_stream(http, f"{srv.url}/chat/completions", _body(srv, "refuse me"))
    assert info.value.status == 422 and str(info.value).startswith("HTTP 422: ")
    assert isinstance(info.value, RuntimeError)


def test_a_request_past_its_deadline_is_cut():
    with ScriptedServer(token_latency_s=0.2) as srv, httpx.Client(timeout=30) as http:
        url = f"{srv.url}/chat/completions"
        with pytest.raises(Cut, match="no budget left"):
            timed_stream(http, url, _body(srv, "count"), deadline=time.perf_counter() - 1)
        t0 = time.perf_counter()
        with pytest.raises(Cut):
            timed_stream(http, url, _body(srv, "count", max_tokens=50), deadline=t0 + 0.5)
    assert time.perf_counter() - t0 < 3
