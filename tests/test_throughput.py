"""The throughput probe against loopback servers with a known per-token latency."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lane_imitations import LaneImitation
from typer.testing import CliRunner

from hbench.cli import app, main
from hbench.lanes import RunningLane
from hbench.models import LaneSpec
from hbench.plugin_manager import get_registries
from hbench.plugins.throughput.measure import disagrees, measure, sample_from


@pytest.fixture(autouse=True)
def _logging_back_to_real_stderr():
    """`main()` configures structlog onto the captured stderr of this test; point it back at
    the real one afterwards, or a later test logs into a closed file."""
    yield
    from hbench.logging import configure

    configure(stream=sys.__stderr__)


def running_for(srv: LaneImitation, kind: str, **kw) -> RunningLane:
    spec = LaneSpec(name=f"t-{kind}", kind=kind, base_url=srv.base_url, model="imit-model", **kw)
    return RunningLane(spec=spec, kind=get_registries().lane_kinds.get(kind))


def chat_requests(srv: LaneImitation) -> list[dict]:
    return [r["body"] for r in srv.requests if r["path"] == "/v1/chat/completions"]


def test_decode_rate_within_5_percent_of_the_true_rate():
    latency = 0.02  # 50 tok/s exactly (absolute schedule in the server)
    with LaneImitation(kind="llamacpp", token_latency=latency) as srv:
        # the lane turns the sweeps off ([]): only the single-stream requests are sent
        result = measure(running_for(srv, "llamacpp", sweep_depths=[], sweep_concurrency=[]), max_tokens=48, runs=3)
        bodies = chat_requests(srv)
    assert result.error is None and result.sweeps == {}
    assert result.tok_s == pytest.approx(1 / latency, rel=0.05)
    assert len(result.samples) == 3 and all(s["tokens"] == 48 and s["token_source"] == "usage" for s in result.samples)
    assert result.ttft_ms is not None and result.ttft_ms < 500
    assert result.server_tok_s == pytest.approx(1 / latency, rel=0.05)  # llama.cpp timings
    assert result.disagreement is False
    # one warm-up + 3 measured, each behind its own nonce, temperature 0, fixed max_tokens
    assert len(bodies) == 4
    assert len({b["messages"][0]["content"].split("]")[0] for b in bodies}) == 4
    assert all(b["temperature"] == 0 and b["max_tokens"] == 48 and b["stream"] and b["ignore_eos"] for b in bodies)


def test_server_figure_that_differs_by_more_than_10_percent_is_flagged():
    with LaneImitation(kind="llamacpp", token_latency=0.01, server_rate_factor=1.3) as srv:
        result = measure(running_for(srv, "llamacpp"), max_tokens=32, runs=3)
    assert result.tok_s == pytest.approx(100, rel=0.05)
    assert result.server_tok_s == pytest.approx(130, rel=0.05)
    assert result.disagreement is True


def test_vllm_server_figure_comes_from_metric_deltas():
    with LaneImitation(kind="vllm", token_latency=0.01, old_metric_names=True) as srv:
        result = measure(running_for(srv, "vllm"), max_tokens=32, runs=3)
    assert result.tok_s == pytest.approx(100, rel=0.05)
    assert result.server_tok_s == pytest.approx(100, rel=0.08)
    assert result.disagreement is False


def test_server_that_rejects_ignore_eos_is_asked_again_without_it():
    with LaneImitation(kind="openai", token_latency=0.01, reject_extras=True, eos_after=30) as srv:
        result = measure(running_for(srv, "openai"), max_tokens=64, runs=3)
        bodies = chat_requests(srv)
    assert result.error is None and result.tok_s == pytest.approx(100, rel=0.05)
    assert all(s["ignore_eos"] is False and s["tokens"] == 30 for s in result.samples)
    assert result.server_tok_s is None and result.disagreement is False
    assert "ignore_eos" in bodies[0] and "ignore_eos" not in bodies[-1]


def test_unreachable_lane_is_an_error_value_not_an_exception():
    spec = LaneSpec(name="gone", kind="openai", base_url="http://127.0.0.1:9/v1", model="m")
    result = measure(RunningLane(spec=spec, kind=get_registries().lane_kinds.get("openai")), runs=1)
    assert result.tok_s is None and "ConnectError" in (result.error or "")


def test_throughput_command_prints_median_and_samples(tmp_path: Path):
    with LaneImitation(kind="llamacpp", token_latency=0.01) as srv:
        r = CliRunner().invoke(app, ["throughput", "--lane-url", srv.base_url, "--model", "imit-model",
                                     "--kind", "llamacpp", "--max-tokens", "24", "--json",
                                     "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["lane"] == "imit-model" and data["tok_s"] == pytest.approx(100, rel=0.05)
    assert len(data["samples"]) == 3


def test_throughput_command_on_a_dead_lane_exits_1_quickly(tmp_path: Path, capsys):
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as info:
        main(["throughput", "--lane-url", "http://127.0.0.1:9/v1", "--model", "m", "--wait", "1",
              "--out", str(tmp_path)])
    assert info.value.code == 1 and time.monotonic() - t0 < 10
    err = capsys.readouterr().err
    # a server hbench does not start that refuses the connection ends at once (issue 15)
    assert "error: lane 'm': cannot connect to http://127.0.0.1:9/v1 (" in err and "refused" in err
    assert "Traceback" not in err


def test_sample_from_prefers_usage_then_timings_then_chunks():
    raw = {"t0": 0.0, "t_first": 0.5, "t_last": 1.5, "chunks": 11, "usage": None, "timings": None,
           "finish_reason": "length"}
    s = sample_from(raw, 1)
    assert (s["tokens"], s["token_source"], s["tok_s"], s["ttft_ms"]) == (11, "chunks", 10.0, 500.0)
    s = sample_from({**raw, "timings": {"predicted_n": 21, "predicted_per_second": 19.0}}, 1)
    assert (s["tokens"], s["token_source"], s["tok_s"], s["server_tok_s"]) == (21, "timings", 20.0, 19.0)
    s = sample_from({**raw, "usage": {"completion_tokens": 6}, "timings": {"predicted_n": 21}}, 1)
    assert (s["tokens"], s["token_source"], s["tok_s"]) == (6, "usage", 5.0)
    s = sample_from({**raw, "t_first": None, "t_last": None, "chunks": 0}, 2)
    assert s["tok_s"] is None and s["ttft_ms"] is None


@given(st.floats(0.1, 1e4), st.floats(0.1, 1e4))
def test_disagreement_is_symmetric_in_meaning(client: float, server: float):
    assert disagrees(client, server) == (abs(client - server) / server > 0.10)
    assert disagrees(client, None) is False and disagrees(None, server) is False


def test_within_5_percent_against_the_scripted_server(scripted_server):
    srv = scripted_server({}, token_latency_s=0.01, timings=True)
    spec = LaneSpec(name="scripted", kind="llamacpp", base_url=srv.url, model="scripted-model")
    result = measure(RunningLane(spec=spec, kind=get_registries().lane_kinds.get("llamacpp")),
                     max_tokens=40, runs=3)
    assert result.error is None, result.error
    assert result.tok_s == pytest.approx(100, rel=0.05)
    assert all(s["tokens"] == 40 for s in result.samples)  # ignore_eos honoured: exactly max_tokens
    assert result.server_tok_s is not None and result.disagreement is False


def test_throughput_help_says_the_bounded_sweeps_run_without_the_sweep_flags():
    # before: "with --depth / --concurrency-sweep, the sweeps too", though without them the
    # lane's bounded sweeps ran as well (measure(): None = the lane's settings, else the defaults)
    r = CliRunner().invoke(app, ["throughput", "--help"])
    assert r.exit_code == 0 and "bounded" in r.stdout and "sweep_budget_s" in r.stdout, r.stdout
