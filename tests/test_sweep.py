"""Throughput v2 sweeps (plugins/throughput/sweep.py) against hbench.testing's scripted server with a known
prefill rate, a known decode rate and a prefix cache that answers repeats fast: the sweep
recovers both rates within 5% and never hits the cache."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hbench.plugins.throughput import sweep
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


# --------------------------------------------------------------------------- bounded, at the end of a lane


def test_a_budget_runs_the_cheap_points_and_lists_the_rest_with_why():
    """Prefill 2000 tok/s, decode 50 tok/s, 3 s of budget: the deep depths cannot fit; they
    are skipped before they start (predicted), and the whole sweep stays inside the budget."""
    with ScriptedServer(token_latency_s=0.02) as srv:
        srv.prefill_tok_s = 2000.0
        t0 = time.monotonic()
        out = sweep.sweep(running_for(srv), [0, 256, 1024, 4096, 16384], [1, 2, 4, 8], budget_s=3.0,
                          base_ttft_ms=20.0, base_tok_s=50.0, runs=1, max_tokens=16, level_max_tokens=16)
        took = time.monotonic() - t0
    assert took < 3.0 + 1.5, out  # the budget, plus the metrics request and teardown
    assert out["budget_s"] == 3.0 and out["elapsed_s"] <= 3.5
    done = [p["depth"] for p in out["depth"]["points"]]
    assert done[:2] == [0, 256] and 16384 not in done
    skipped = {s["depth"]: s["why"] for s in out["depth"]["skipped"]}
    assert 16384 in skipped and "sweep budget" in skipped[16384]
    assert set(done) | set(skipped) == {0, 256, 1024, 4096, 16384}
    levels = [p["concurrency"] for p in out["concurrency"]["points"]]
    assert levels and levels[0] == 1 and levels == sorted(levels)
    assert out["depth"]["cache_hits"] == 0 and all(r.cached_tokens == 0 for r in srv.chat_requests)


def test_one_stream_at_depth_0_is_measured_once_for_both_sweeps(srv):
    out = sweep.sweep(running_for(srv), [0], [1, 2], runs=1, max_tokens=16, level_max_tokens=16)
    assert len(srv.chat_requests) == 1 + 2  # depth 0 (also level 1), then level 2's two streams
    one = out["concurrency"]["points"][0]
    d0 = out["depth"]["points"][0]
    assert one["from"] == "depth 0" and one["per_stream_tok_s"] == d0["decode_tok_s"] and one["streams_ok"] == 1


def test_a_request_still_running_at_the_end_of_the_budget_is_cut():
    with ScriptedServer(token_latency_s=0.5) as srv:  # 2 tok/s: 16 tokens take 8 s
        t0 = time.monotonic()
        out = sweep.sweep(running_for(srv), [0], [1], budget_s=1.5, runs=1, max_tokens=16, level_max_tokens=16)
        took = time.monotonic() - t0
    assert took < 1.5 + 1.5
    whys = [s["why"] for s in out["depth"].get("skipped", []) + out["concurrency"].get("skipped", [])]
    assert any(w.startswith("cut at the end of the 1.5 s sweep budget") for w in whys), out
    assert any("budget was spent" in w for w in whys), out
    assert out["depth"]["points"] == [] or out["concurrency"]["points"] == []


def test_depths_the_lanes_context_cannot_hold_are_skipped(srv):
    running = running_for(srv)
    running.spec.context_length = 2048
    out = sweep.sweep(running, [0, 1024, 4096], [], runs=1, max_tokens=8)
    assert [p["depth"] for p in out["depth"]["points"]] == [0, 1024]
    assert out["depth"]["skipped"] == [{"depth": 4096, "why": "deeper than the lane's 2048-token context holds"}]
    assert "concurrency" not in out


def test_a_depth_the_server_refuses_is_skipped_with_the_reason_and_so_are_deeper_ones(srv):
    from hbench.testing import Fault, Turn

    out = sweep.sweep(running_for(srv), [0, 512, 2048], [1], runs=1, max_tokens=8)
    assert [p["depth"] for p in out["depth"]["points"]] == [0, 512, 2048]  # the control
    # "people" is a filler word: every depth above 0 is refused, as past a context limit
    srv.set_scripts({"people": [Turn(faults=(Fault("http", status=400),))]})
    out = sweep.sweep(running_for(srv), [0, 512, 2048], [], runs=1, max_tokens=8)
    assert [p["depth"] for p in out["depth"]["points"]] == [0]
    out = sweep.sweep(running_for(srv), [512, 2048], [], runs=1, max_tokens=8)
    assert out["depth"]["points"] == []
    assert out["depth"]["skipped"][0]["depth"] == 512 and "HTTP 400" in out["depth"]["skipped"][0]["why"]
    assert out["depth"]["skipped"][1] == {"depth": 2048, "why": "a shallower depth (512) failed"}


def test_a_reply_that_ends_at_once_still_times_the_prefill():
    """llama-cpp-python ignores ignore_eos: after a long prompt the small model may answer with
    nothing but the end of the reply; the wait for it is still the prefill."""
    raw = {"t0": 10.0, "times": [], "t_finish": 10.8, "tokens": 0, "prompt_tokens": 400, "cached_tokens": None}
    f = sweep.figures(raw)
    assert f["ttft_ms"] == 800.0 and f["ended_at_once"] is True and f["prefill_tok_s"] == 500.0
    assert f["decode_tok_s"] is None


def test_the_fit_falls_back_to_filler_words_when_the_server_counts_no_prompt_tokens():
    pts = [{"depth": d, "prompt_tokens": None, "ttft_ms": 100 + d / 2, "samples": []} for d in (0, 1000, 4000)]
    out = sweep.depth_summary(pts)
    assert out["prefill_tok_s_fit"] == pytest.approx(2000.0) and "filler words" in out["fit_over"]


def test_a_cached_template_head_is_not_a_cache_hit():
    """The real llama-server reports 1 cached token (BOS) for every cache-busted prompt."""
    pts = [{"depth": 0, "samples": [{"cached_tokens": 1}, {"cached_tokens": None}]},
           {"depth": 256, "samples": [{"cached_tokens": 16}, {"cached_tokens": 300}]}]
    out = sweep.depth_summary(pts)
    assert out["cache_hits"] == 1 and out["cached_tokens_max"] == 300


def test_predicted_costs_grow_with_depth_and_streams():
    kw = dict(ttft_s=0.5, decode_tok_s=10.0, prefill_tok_s=None, aggregate_tok_s=None, runs=1, max_tokens=16)
    assert sweep.predict_s(("depth", 0), **kw) == pytest.approx(0.5 + 1.6)
    assert sweep.predict_s(("depth", 400), **kw) == pytest.approx(0.5 + 400 / 40 + 1.6)  # prefill = 4x decode
    assert sweep.predict_s(("concurrency", 4), **kw) == pytest.approx(4 * 0.5 + 4 * 1.6)
    assert sweep.predict_s(("depth", 4096), **{**kw, "decode_tok_s": None}) == 0.0  # nothing known yet


def test_a_runs_scorecard_carries_the_sweeps_every_request_cache_busted(tmp_path):
    """A plain `hbench run` (no sweep settings): the end-of-lane probe runs the default sweeps
    within the default budget; the scripted prefix cache never answers one of them."""
    from hbench.runner import RunOptions, run
    from test_runner import steady_scripts

    with ScriptedServer(steady_scripts()) as srv:
        srv.prefill_tok_s = 200_000.0  # fast, but with a prefix cache that would show a repeat
        result = run(RunOptions(lane_url=srv.url, model=srv.model, suite="hermes-brain-v1", runs=1,
                                out=str(tmp_path / "r"), report="json", progress=False))
        sweep_requests = [r for r in srv.chat_requests if "Now continue counting" in json.dumps(r.body)]
    (sc,) = result.scorecards
    card = json.loads((tmp_path / "r" / f"{sc.lane['name']}.json").read_text())
    sw = card["throughput"]["sweeps"]
    assert [p["depth"] for p in sw["depth"]["points"]] == list(sweep.DEFAULT_DEPTHS)
    assert [p["concurrency"] for p in sw["concurrency"]["points"]] == list(sweep.DEFAULT_LEVELS)
    assert sw["budget_s"] == sweep.DEFAULT_BUDGET_S and sw["elapsed_s"] < sweep.DEFAULT_BUDGET_S
    assert sw["depth"]["cache_hits"] == 0 and sw["depth"]["prefill_tok_s_fit"] is not None
    assert len(sweep_requests) == len(sweep.DEFAULT_DEPTHS) + sum(sweep.DEFAULT_LEVELS) - 1  # level 1 = depth 0
    assert all(r.cached_tokens == 0 for r in sweep_requests)
    heads = [r.body["messages"][0]["content"].split()[0] for r in sweep_requests]
    assert len(set(heads)) == len(heads)  # each opens with its own nonce


def test_a_lane_turns_the_sweeps_off_or_sets_them_in_hbench_toml(tmp_path, monkeypatch):
    from hbench.runner import RunOptions, run
    from test_runner import steady_scripts

    with ScriptedServer(steady_scripts()) as srv:
        (tmp_path / "hbench.toml").write_text(
            f'[lanes.off]\nbase_url = "{srv.url}"\nmodel = "{srv.model}"\nsweep_depths = []\nsweep_concurrency = []\n\n'
            f'[lanes.small]\nbase_url = "{srv.url}"\nmodel = "{srv.model}"\nsweep_depths = [0, 300]\n'
            'sweep_concurrency = [2]\nsweep_budget_s = 0\n')
        monkeypatch.chdir(tmp_path)
        result = run(RunOptions(lanes="all", suite="hermes-brain-v1", runs=1, out=str(tmp_path / "r"),
                                report="json", progress=False))
    cards = {sc.lane["name"]: sc for sc in result.scorecards}
    assert cards["off"].throughput.sweeps == {} and cards["off"].throughput.tok_s
    small = cards["small"].throughput.sweeps
    assert [p["depth"] for p in small["depth"]["points"]] == [0, 300]
    assert [p["concurrency"] for p in small["concurrency"]["points"]] == [2] and "budget_s" not in small


@pytest.mark.parametrize("line, says", [
    ("sweep_depths = [0, -5]", "lanes.x: sweep_depths: -5 is not usable"),
    ("sweep_depths = [0, 99999999]", "lanes.x: sweep_depths: 99999999 is not usable"),
    ("sweep_concurrency = [0]", "lanes.x: sweep_concurrency: 0 is not usable: streams at once must be whole numbers "
                                "from 1 to 256"),
    ("sweep_concurrency = [1, 2.5]", "lanes.x.sweep_concurrency.1: expected an integer"),
    ("sweep_budget_s = -1", "lanes.x: sweep_budget_s: -1.0 is not usable: seconds from 0 (no limit)"),
    ("sweep_depths = 4096", "lanes.x.sweep_depths"),
])
def test_bad_sweep_settings_name_the_file_and_key(tmp_path, monkeypatch, line, says):
    from hbench.config import ConfigError, load_config

    (tmp_path / "hbench.toml").write_text(f'[lanes.x]\nbase_url = "http://127.0.0.1:9/v1"\n{line}\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_config()
    assert f"hbench.toml: {says}" in str(err.value)
