"""Throughput v2 sweeps (core/sweep.py) against hbench.testing's scripted server with a known
prefill rate, a known decode rate and a prefix cache that answers repeats fast: the sweep
recovers both rates within 5% and never hits the cache."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hbench import sweep
from hbench.lanes import RunningLane
from hbench.models import LaneSpec
from hbench.plugin_manager import get_registries
from hbench.testing import ScriptedServer

PREFILL = 4000.0  # prompt tokens per second
TOKEN_S = 0.01  # 100 tok/s decode


def running_for(srv: ScriptedServer) -> RunningLane:
    spec = LaneSpec(name="s", kind="openai", base_url=srv.url, model=srv.model)
    return RunningLane(spec=spec, kind=get_registries().lane_kinds.get("openai"))


@pytest.fixture
def srv():
    with ScriptedServer(token_latency_s=TOKEN_S) as s:
        s.prefill_tok_s = PREFILL
        yield s


def test_the_scripted_cache_really_answers_a_repeat_fast(srv):
    """The control: without cache busting, the second identical prompt skips its prefill."""
    body = {"model": srv.model, "stream": True, "max_tokens": 4, "ignore_eos": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": sweep.filler(2000)}]}
    with httpx.Client(timeout=30) as http:
        cold = sweep.figures(sweep.stream(http, f"{srv.url}/chat/completions", body))
        warm = sweep.figures(sweep.stream(http, f"{srv.url}/chat/completions", body))
    assert cold["cached_tokens"] == 0 and warm["cached_tokens"] == 2000
    assert warm["ttft_ms"] < cold["ttft_ms"] / 4  # 2000 tokens at 4000 tok/s = 500 ms saved


def test_depth_sweep_recovers_prefill_and_decode_within_5_percent_and_never_hits_the_cache(srv):
    result = sweep.depth_sweep(running_for(srv), [0, 800, 3200], max_tokens=24, runs=2)
    assert result["cache_hits"] == 0
    assert all(r.cached_tokens == 0 for r in srv.chat_requests)
    fit = result["prefill_tok_s_fit"]
    assert fit == pytest.approx(PREFILL, rel=0.05), result
    for p in result["points"]:
        assert p["decode_tok_s"] == pytest.approx(1 / TOKEN_S, rel=0.05), p
        assert p["tpot_ms"] == pytest.approx(TOKEN_S * 1000, rel=0.05)
        assert p["itl_p50_ms"] == pytest.approx(TOKEN_S * 1000, rel=0.1)
        assert p["itl_p95_ms"] >= p["itl_p50_ms"]
    deep = result["points"][-1]
    assert deep["prompt_tokens"] >= 3200 and deep["ttft_ms"] > result["points"][0]["ttft_ms"] + 700
    prompts = [r.body["messages"][0]["content"] for r in srv.chat_requests]
    assert len({p.split()[0] for p in prompts}) == len(prompts)  # every prompt opens with its own nonce


def test_concurrency_sweep_per_stream_and_aggregate(srv):
    # 4 client and 4 server threads in one process on a busy box: a late first chunk makes the
    # rest arrive bunched, so per-stream figures get 10% here (the rates themselves: 5% above)
    result = sweep.concurrency_sweep(running_for(srv), [1, 4], max_tokens=100)
    one, four = result["points"]
    assert one["streams_ok"] == 1 and four["streams_ok"] == 4 and not four["errors"]
    assert one["per_stream_tok_s"] == pytest.approx(100, rel=0.05)
    assert four["per_stream_tok_s"] == pytest.approx(100, rel=0.1)
    assert four["aggregate_tok_s"] == pytest.approx(400, rel=0.1)


def test_hbench_throughput_with_sweeps_prints_json(srv):
    r = subprocess.run([sys.executable, "-m", "hbench", "throughput", "--lane-url", srv.url, "--model", srv.model,
                        "--runs", "1", "--max-tokens", "16", "--depth", "0,1000", "--concurrency-sweep", "1,2",
                        "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    sw = doc["sweeps"]
    assert [p["depth"] for p in sw["depth"]["points"]] == [0, 1000] and sw["depth"]["cache_hits"] == 0
    assert [p["concurrency"] for p in sw["concurrency"]["points"]] == [1, 2]
    assert sw["prefix_cache_hit_rate"] is None  # a plain endpoint publishes none


@given(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=50), st.floats(0, 100))
def test_percentile_is_within_the_range_and_monotone(values, q):
    p = sweep.percentile(values, q)
    assert min(values) <= p <= max(values)
    assert sweep.percentile(values, 0) == min(values) and sweep.percentile(values, 100) == max(values)


@given(st.floats(10, 1e5), st.floats(0, 2))
def test_fit_rate_recovers_a_linear_rate(rate, overhead):
    pts = [(n, overhead + n / rate) for n in (0, 1000, 5000, 20000)]
    assert sweep.fit_rate(pts) == pytest.approx(rate, rel=1e-6)
