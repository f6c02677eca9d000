"""Lane kinds against loopback servers that imitate each kind (tests/lane_imitations.py)."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lane_imitations import LaneImitation

from hbench.config import load_config
from hbench.errors import BadInput, ConfigError, LaneError
from hbench.lanes import adhoc_lane, lane_http, lookup_lane, open_lane, parse_metrics, server_root, wait_ready
from hbench.models import LaneSpec
from hbench.plugin_manager import get_registries


def kind(name: str):
    return get_registries().lane_kinds.get(name)


def spec_for(srv: LaneImitation, kind_name: str, **kw) -> LaneSpec:
    return LaneSpec(name=f"t-{kind_name}", kind=kind_name, base_url=srv.base_url, **kw)


def test_every_builtin_kind_is_registered():
    names = set(get_registries().lane_kinds.names())
    assert {"openai", "llamacpp", "vllm", "nim", "ollama"} <= names


# --------------------------------------------------------------------------- readiness


def test_llamacpp_health_503_while_loading_then_ready():
    # The server loads when the test says so, not after a fixed 0.8 s: under CI load the first
    # poll could come after the timer had run out, and /health was already 200.
    with LaneImitation(kind="llamacpp", never_ready=True) as srv:
        spec = spec_for(srv, "llamacpp")
        with lane_http(spec) as http:
            ok, detail = kind("llamacpp").ready(spec, http)
        assert not ok and "loading model" in detail.lower() and "503" in detail
        statuses: list[str] = []

        def on_status(line: str) -> None:
            statuses.append(line)
            srv.state.never_ready = False  # loaded only after hbench has reported the 503

        wait_ready(kind("llamacpp"), spec, timeout_s=60, on_status=on_status)
        # it really waited for the 503s to end: ready only after a loading status was reported
        # (the elapsed seconds in it depend on the machine's load, the form does not)
        assert statuses and re.match(r"loading, \d+ s of 60 s \(.*503", statuses[0]), statuses
        with lane_http(spec) as http:
            assert kind("llamacpp").ready(spec, http) == (True, "/health -> 200")
            assert kind("llamacpp").context_length(spec, http) == 16384  # from /props


def test_vllm_connection_refused_while_loading_then_health():
    # loads (binds its port) once hbench has reported waiting, not on a 0.8 s timer that a
    # busy machine can outrun before the first check
    with LaneImitation(kind="vllm", load_s=600, ctx=32768) as srv:
        spec = spec_for(srv, "vllm")
        with lane_http(spec) as http:
            ok, detail = kind("vllm").ready(spec, http)
        assert not ok and "connection refused" in detail
        statuses: list[str] = []
        wait_ready(kind("vllm"), spec, timeout_s=60, on_status=lambda s: (statuses.append(s), srv.finish_loading()))
        assert statuses and "connection refused" in statuses[0]  # it polled through the refusal
        with lane_http(spec) as http:
            assert kind("vllm").ready(spec, http)[0]
            assert kind("vllm").context_length(spec, http) == 32768  # max_model_len


def test_nim_is_live_before_it_is_ready():
    with LaneImitation(kind="nim", never_ready=True) as srv:  # loads when the test says (no timer race)
        spec = spec_for(srv, "nim")
        with lane_http(spec) as http:
            assert http.get(f"{server_root(srv.base_url)}/v1/health/live").status_code == 200
            ok, detail = kind("nim").ready(spec, http)
            assert not ok and "live, model still loading" in detail
            # the generic openai readiness would be fooled by a live server; nim is not
        statuses: list[str] = []
        wait_ready(kind("nim"), spec, timeout_s=60, on_status=lambda s: (statuses.append(s), srv.finish_loading()))
        assert statuses and "live, model still loading" in statuses[0]
        with lane_http(spec) as http:
            assert kind("nim").ready(spec, http) == (True, "/v1/health/ready -> 200")


def test_ollama_ready_on_root_and_openai_ready_on_models():
    with LaneImitation(kind="ollama") as srv:
        spec = spec_for(srv, "ollama")
        with lane_http(spec) as http:
            assert kind("ollama").ready(spec, http)[0]
            assert not kind("llamacpp").ready(spec, http)[0]  # no /health on ollama
    with LaneImitation(kind="openai") as srv:
        spec = spec_for(srv, "openai")
        with lane_http(spec) as http:
            assert kind("openai").ready(spec, http) == (True, "/v1/models -> 200")
            assert not kind("ollama").ready(spec, http)[0]


def test_not_ready_in_time_is_a_lane_error_naming_the_fix():
    with LaneImitation(kind="llamacpp", never_ready=True) as srv:
        with pytest.raises(LaneError, match=r"not ready after 1 s .*loading model.*raise ready_timeout_s"):
            wait_ready(kind("llamacpp"), spec_for(srv, "llamacpp"), timeout_s=1)


# --------------------------------------------------------------------------- model id


def test_open_lane_records_served_model_and_warns_on_mismatch(tmp_path: Path):
    with LaneImitation(kind="vllm", model="Qwen/Qwen3-8B") as srv:
        with open_lane(spec_for(srv, "vllm"), kind("vllm"), out_dir=tmp_path) as running:
            assert running.served_model == "Qwen/Qwen3-8B"
            assert running.spec.model == "Qwen/Qwen3-8B"  # None -> what the server serves
            assert running.warnings == []
        with open_lane(spec_for(srv, "vllm", model="qwen3-8b"), kind("vllm"), out_dir=tmp_path) as running:
            assert running.served_model == "Qwen/Qwen3-8B"
            assert running.warnings and "configured model 'qwen3-8b'" in running.warnings[0]
            assert "'Qwen/Qwen3-8B'" in running.warnings[0]


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("old", [False, True])
def test_vllm_metrics_by_name_old_and_new(old: bool):
    with LaneImitation(kind="vllm", old_metric_names=old, token_latency=0.002) as srv:
        spec = spec_for(srv, "vllm")
        with lane_http(spec) as http:
            before = kind("vllm").server_metrics(spec, http)
            r = http.post(f"{srv.base_url}/chat/completions",
                          json={"messages": [], "stream": True, "max_tokens": 20, "ignore_eos": True})
            assert r.status_code == 200
            after = kind("vllm").server_metrics(spec, http)
    assert before is not None and after is not None
    assert after["vllm:kv_cache_usage_perc"] == 0.25
    assert after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"] == 20
    assert after["vllm:inter_token_latency_seconds_count"] - before["vllm:inter_token_latency_seconds_count"] == 19
    rate = kind("vllm").server_decode_tok_s(before, after)
    assert rate is not None and 250 < rate < 520  # 2 ms a token, plus scheduling noise
    assert not any(k.endswith("_bucket") for k in after)


def test_nim_metrics_found_at_v1_metrics_and_llamacpp_names():
    with LaneImitation(kind="nim") as srv:
        spec = spec_for(srv, "nim")
        with lane_http(spec) as http:
            m = kind("nim").server_metrics(spec, http)
        assert m is not None and "vllm:generation_tokens_total" in m
    with LaneImitation(kind="llamacpp") as srv:
        spec = spec_for(srv, "llamacpp")
        with lane_http(spec) as http:
            m = kind("llamacpp").server_metrics(spec, http)
            assert m is not None and m["llamacpp:tokens_predicted_total"] == 0
            assert kind("openai").server_metrics(spec, http) is None  # unsupported, not a crash


def test_missing_or_garbage_metrics_are_unsupported_not_a_crash():
    with LaneImitation(kind="openai") as srv:  # 404 on /metrics
        spec = spec_for(srv, "vllm")
        with lane_http(spec) as http:
            assert kind("vllm").server_metrics(spec, http) is None
    spec = LaneSpec(name="gone", kind="vllm", base_url="http://127.0.0.1:9/v1")
    with lane_http(spec, timeout=1) as http:
        assert kind("vllm").server_metrics(spec, http) is None


@given(st.dictionaries(st.sampled_from(["a", "b", "c"]),
                       st.lists(st.integers(0, 10**6), min_size=1, max_size=4), min_size=1))
def test_parse_metrics_sums_label_sets(values: dict[str, list[int]]):
    lines = []
    for name, vals in values.items():
        lines.append(f"# TYPE m_{name} gauge")
        lines += [f'm_{name}{{slot="{i}"}} {v}' for i, v in enumerate(vals)]
    parsed = parse_metrics("\n".join(lines) + "\n")
    assert parsed == {f"m_{n}": float(sum(v)) for n, v in values.items()}


def test_parse_metrics_files_old_vllm_names_under_new_ones():
    text = ("# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc 0.5\n"
            "# TYPE vllm:time_per_output_token_seconds histogram\n"
            'vllm:time_per_output_token_seconds_bucket{le="+Inf"} 4\n'
            "vllm:time_per_output_token_seconds_sum 0.2\nvllm:time_per_output_token_seconds_count 4\n")
    m = parse_metrics(text, kind("vllm").metric_aliases)
    assert m["vllm:kv_cache_usage_perc"] == 0.5
    assert m["vllm:inter_token_latency_seconds_count"] == 4
    assert "vllm:kv_cache_usage_perc" not in parse_metrics(text)  # the aliases are vLLM's, not core's
    with pytest.raises(ValueError):
        parse_metrics("this is { not prometheus\n")


def test_metric_names_belong_to_their_lane_kinds():
    """Issue 16: the base LaneKind names no server's metrics; each kind declares its own."""
    import hbench.lanes

    source = Path(hbench.lanes.__file__).read_text()
    assert not re.search(r"(vllm|llamacpp|sglang):", source)
    base = hbench.lanes.LaneKind
    assert base.metric_aliases == {} and base.decode_rate_counters == ()
    assert base().server_decode_tok_s({"vllm:inter_token_latency_seconds_count": 0.0},
                                      {"vllm:inter_token_latency_seconds_count": 9.0}) is None
    before = {"llamacpp:tokens_predicted_total": 10.0, "llamacpp:tokens_predicted_seconds_total": 1.0}
    after = {"llamacpp:tokens_predicted_total": 110.0, "llamacpp:tokens_predicted_seconds_total": 3.0}
    assert kind("llamacpp").server_decode_tok_s(before, after) == 50.0
    assert kind("vllm").server_decode_tok_s(before, after) is None
    assert kind("nim").decode_rate_counters == kind("vllm").decode_rate_counters


# --------------------------------------------------------------------------- starting


def test_prepare_fills_port_and_base_url(tmp_path: Path):
    spec = LaneSpec(name="x", kind="openai", start=["srv", "--port", "{port}", "--host", "{host}"],
                    env={"BIND": "{host}:{port}"})
    out = kind("openai").prepare(spec, tmp_path)
    port = out.start[2]
    assert port.isdigit() and out.start[4] == "127.0.0.1"
    assert out.base_url == f"http://127.0.0.1:{port}/v1" and out.env["BIND"] == f"127.0.0.1:{port}"
    assert spec.start[2] == "{port}"  # the configured spec is not changed
    fixed = kind("openai").prepare(attrs.evolve(spec, options={"port": 8099}), tmp_path)
    assert fixed.start[2] == "8099" and fixed.base_url == "http://127.0.0.1:8099/v1"
    unmanaged = LaneSpec(name="y", base_url="http://h:1/v1")
    assert kind("openai").prepare(unmanaged, tmp_path) is unmanaged


def test_kinds_build_start_commands_from_options(tmp_path: Path, monkeypatch):
    from hbench.plugins.lanes import llamacpp

    monkeypatch.setattr(llamacpp, "find_binary", lambda: (None, "none here"))  # CI has a built one
    ll = kind("llamacpp").prepare(LaneSpec(name="q", kind="llamacpp", model="qwen", context_length=16384,
                                           options={"model_path": "/m/q.gguf", "args": ["-ngl", "99"]}), tmp_path)
    assert ll.start[:3] == ["llama-server", "-m", "/m/q.gguf"]
    assert {"--jinja", "--metrics"} <= set(ll.start) and ll.start[-2:] == ["-ngl", "99"]
    assert ll.start[ll.start.index("-c") + 1] == "16384" and ll.start[ll.start.index("-a") + 1] == "qwen"
    assert ll.base_url == f"http://127.0.0.1:{ll.start[ll.start.index('--port') + 1]}/v1"

    vl = kind("vllm").prepare(LaneSpec(name="v", kind="vllm", options={"serve": "Qwen/Qwen3-8B"}), tmp_path)
    assert vl.start[:3] == ["vllm", "serve", "Qwen/Qwen3-8B"]
    i = vl.start.index("--tool-call-parser")
    assert "--enable-auto-tool-choice" in vl.start and vl.start[i + 1] == "hermes"

    nim_spec = LaneSpec(name="nem o", kind="nim", options={"image": "nvcr.io/nim/x:1", "cache_dir": "/c"})
    nm = kind("nim").prepare(nim_spec, tmp_path)
    assert nm.start[:2] == ["docker", "run"] and nm.start[-1] == "nvcr.io/nim/x:1"
    port = nm.base_url.split(":")[2].split("/")[0]
    assert f"127.0.0.1:{port}:8000" in nm.start and "NIM_ENABLE_AUTO_TOOL_CHOICE=1" in nm.start
    assert kind("nim").stop_command(nm) == ["docker", "stop", "-t", "20", "hbench-nem-o"]
    assert kind("nim").stop_command(LaneSpec(name="n", kind="nim", base_url="http://h/v1")) is None

    ol = kind("ollama").prepare(LaneSpec(name="o", kind="ollama", options={"serve": True}), tmp_path)
    assert ol.start == ["ollama", "serve"] and ol.env["OLLAMA_HOST"] == ol.base_url[len("http://"):-len("/v1")]


# --------------------------------------------------------------------------- lookup, keys, config


def test_lookup_and_adhoc_lanes_give_clear_errors():
    kinds = get_registries().lane_kinds
    lanes = {"a": LaneSpec(name="a", kind="vllm"), "b": LaneSpec(name="b", kind="nope")}
    assert lookup_lane("a", lanes, kinds)[1] is kind("vllm")
    with pytest.raises(BadInput, match=r"unknown lane 'zz' \(known: a, b\).*--lane-url"):
        lookup_lane("zz", lanes, kinds)
    with pytest.raises(BadInput, match=r"unknown lane kind 'nope'"):
        lookup_lane("b", lanes, kinds)
    assert adhoc_lane("http://h:8000", "m").base_url == "http://h:8000/v1"
    with pytest.raises(BadInput, match="expected http://HOST:PORT/v1"):
        adhoc_lane("h:8000", "m")


def test_api_key_goes_only_into_the_authorization_header(tmp_path: Path, monkeypatch):
    key = "sk-lane-secret-123456"
    monkeypatch.setenv("HB_TEST_KEY", key)
    with LaneImitation(kind="openai", require_key=key) as srv:
        with pytest.raises(LaneError):
            wait_ready(kind("openai"), spec_for(srv, "openai"), timeout_s=0.5)  # no key: 401
        spec = spec_for(srv, "openai", api_key_env="HB_TEST_KEY")
        with open_lane(spec, kind("openai"), out_dir=tmp_path) as running:
            assert running.served_model == "imit-model"
        seen = [r for r in srv.requests if r["headers"].get("Authorization") == f"Bearer {key}"]
        assert seen
        for r in srv.requests:
            others = {k: v for k, v in r["headers"].items() if k != "Authorization"}
            assert key not in r["path"] and key not in str(others) and key not in str(r["body"])


def test_hbench_toml_lanes_of_each_kind_validate(tmp_path: Path):
    cfg = tmp_path / "hbench.toml"
    cfg.write_text(
        '[lanes.q]\nkind = "llamacpp"\nexpected_memory_gb = 20\nstop_grace_s = 5\n'
        '[lanes.q.options]\nmodel_path = "/m/q.gguf"\n'
        '[lanes.v]\nkind = "vllm"\nbase_url = "http://127.0.0.1:8000/v1"\n'
        '[lanes.n]\nkind = "nim"\nstart = ["docker", "run", "x"]\n'
    )
    c = load_config(cfg, lane_kinds=get_registries().lane_kinds.names())
    assert c.lanes["q"].stop_grace_s == 5.0 and c.lanes["n"].start == ["docker", "run", "x"]
    cfg.write_text('[lanes.q]\nkind = "vlm"\n')
    with pytest.raises(ConfigError, match=r"lanes.q.kind: unknown lane kind 'vlm' \(installed: .*vllm"):
        load_config(cfg, lane_kinds=get_registries().lane_kinds.names())


def test_unreachable_lane_reports_not_reachable():
    spec = LaneSpec(name="gone", kind="openai", base_url="http://127.0.0.1:9/v1")
    with httpx.Client(timeout=1) as http:
        ok, detail = kind("openai").ready(spec, http)
    assert not ok and "not reachable (ConnectError)" == detail
