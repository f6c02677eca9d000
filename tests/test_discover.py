"""``hbench discover`` and the ``sglang`` lane kind, against loopback servers that imitate
each kind's signature (tests/lane_imitations.py). The real llama-server half is in
tests/test_llama_server.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib

import pytest
from lane_imitations import LaneImitation

from hbench.config import load_config
from hbench.lanes import lane_http, open_lane, wait_ready
from hbench.models import LaneSpec
from hbench.plugin_manager import get_registries
from hbench.plugins.lanes import discover as disc
from hbench.testing import ScriptedServer

SIGNATURES = {  # imitation kind -> (server named, lane kind)
    "llamacpp": ("llama.cpp", "llamacpp"),
    "vllm": ("vLLM", "vllm"),
    "sglang": ("SGLang", "sglang"),
    "ollama": ("Ollama", "ollama"),
    "lmstudio": ("LM Studio", "openai"),
    "litellm": ("LiteLLM", "openai"),
    "nim": ("OpenAI-compatible", "openai"),  # the imitation has no /v1/metadata: a plain endpoint
    "openai": ("OpenAI-compatible", "openai"),
}


def kind(name: str):
    return get_registries().lane_kinds.get(name)


def test_each_signature_names_its_kind_on_any_port():
    servers = [LaneImitation(kind=k, model=f"model-{k}") for k in SIGNATURES]
    for s in servers:
        s.__enter__()
    try:
        by_port = {s.port: k for s, k in zip(servers, SIGNATURES)}
        t0 = time.monotonic()
        found = disc.discover(sorted(by_port))
        assert time.monotonic() - t0 < 5
        got = {f.port: f for f in found}
        assert set(got) == set(by_port)
        for port, k in by_port.items():
            f = got[port]
            assert (f.server, f.kind) == SIGNATURES[k], (k, f)
            assert f.models == [f"model-{k}"] and f.base_url == f"http://127.0.0.1:{port}/v1"
    finally:
        for s in servers:
            s.__exit__(None, None, None)


def test_the_scripted_server_is_a_plain_openai_endpoint():
    with ScriptedServer(model="scripted-1") as srv:
        (f,) = disc.discover([srv.port])
    assert (f.server, f.kind, f.models) == ("OpenAI-compatible", "openai", ["scripted-1"])


def test_closed_ports_and_non_http_listeners_are_skipped_quickly():
    import socket
    import threading

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts, never answers
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    stop = threading.Event()
    try:
        t0 = time.monotonic()
        assert disc.discover([silent.getsockname()[1], closed_port], read_s=0.5) == []
        assert time.monotonic() - t0 < 3
    finally:
        stop.set()
        silent.close()


def test_a_server_that_wants_a_key_is_listed_with_a_hint():
    with LaneImitation(kind="openai", require_key="sekret") as srv:
        (f,) = disc.discover([srv.port])
    assert f.needs_key and f.kind == "openai" and f.models == []
    text = disc.to_toml([f])
    assert "api_key_env" in text and "sekret" not in text


def test_toml_is_valid_one_lane_per_model_and_loads_as_config(tmp_path):
    found = [disc.Found("127.0.0.1", 11434, "Ollama", "ollama", "http://127.0.0.1:11434/v1",
                        ["qwen3:8b", "llama3.2:3b"], "GET /"),
             disc.Found("127.0.0.1", 8080, "llama.cpp", "llamacpp", "http://127.0.0.1:8080/v1",
                        ['odd "name"'], "GET /props")]
    text = disc.to_toml(found)
    data = tomllib.loads(text)
    assert set(data["lanes"]) == {"ollama-11434-qwen3-8b", "ollama-11434-llama3-2-3b", "llamacpp-8080"}
    assert data["lanes"]["llamacpp-8080"] == {"kind": "llamacpp", "base_url": "http://127.0.0.1:8080/v1",
                                              "model": 'odd "name"'}
    cfg = tmp_path / "hbench.toml"
    cfg.write_text(text)
    loaded = load_config(cfg, get_registries().lane_kinds.names())
    assert set(loaded.lanes) == set(data["lanes"])


def test_discover_command_prints_toml_and_json():
    with LaneImitation(kind="llamacpp", model="gemma") as srv:
        cmd = [sys.executable, "-m", "hbench", "discover", "--port", str(srv.port), "--timeout", "1"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        js = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lanes = tomllib.loads(out.stdout)["lanes"]
    assert lanes[f"llamacpp-{srv.port}"]["kind"] == "llamacpp"
    assert "paste into hbench.toml" in out.stderr
    doc = json.loads(js.stdout)
    mine = [f for f in doc["found"] if f["port"] == srv.port]
    assert mine and mine[0]["server"] == "llama.cpp" and mine[0]["models"] == ["gemma"]
    assert doc["host"] == "127.0.0.1"


def test_discover_command_with_nothing_found_exits_1():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = subprocess.run([sys.executable, "-m", "hbench", "discover", "--port", str(port), "--host", "127.0.0.1",
                        "--timeout", "0.5"], capture_output=True, text=True, timeout=60)
    # the default ports may hold a teammate's server; ours is closed, so it is never listed
    assert str(port) not in r.stdout
    bad = subprocess.run([sys.executable, "-m", "hbench", "discover", "--port", "70000"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a TCP port" in bad.stderr


# --------------------------------------------------------------------------- sglang


def test_sglang_refused_while_loading_then_ready_with_context_and_metrics(tmp_path):
    # binds its port once hbench has reported waiting, not on a 0.6 s timer a busy machine
    # can outrun before the first check
    with LaneImitation(kind="sglang", load_s=600, ctx=32768, model="qwen") as srv:
        spec = LaneSpec(name="sg", kind="sglang", base_url=srv.base_url, model="qwen")
        with lane_http(spec) as http:
            ok, detail = kind("sglang").ready(spec, http)
        assert not ok and "connection refused" in detail
        statuses: list[str] = []
        wait_ready(kind("sglang"), spec, timeout_s=60, on_status=lambda s: (statuses.append(s), srv.finish_loading()))
        assert statuses and "connection refused" in statuses[0]
        with lane_http(spec) as http:
            assert kind("sglang").context_length(spec, http) == 32768  # from /get_model_info
            before = kind("sglang").server_metrics(spec, http)
            assert before is not None and kind("sglang").prefix_cache_hit_rate(before) == 0.125
        with open_lane(spec, kind("sglang"), out_dir=tmp_path) as running:
            assert running.served_model == "qwen" and running.ready_s is not None


@pytest.mark.parametrize("old", [False, True])
def test_sglang_decode_rate_from_its_metrics_old_and_new_names(old):
    import httpx

    with LaneImitation(kind="sglang", token_latency=0.01, old_metric_names=old) as srv:
        spec = LaneSpec(name="sg", kind="sglang", base_url=srv.base_url, model="imit-model")
        with lane_http(spec) as http:
            before = kind("sglang").server_metrics(spec, http)
            with httpx.stream("POST", f"{srv.base_url}/chat/completions", timeout=10,
                              json={"model": "imit-model", "stream": True, "max_tokens": 21, "ignore_eos": True,
                                    "messages": [{"role": "user", "content": "x"}]}) as r:
                list(r.iter_lines())
            after = kind("sglang").server_metrics(spec, http)
    rate = kind("sglang").server_decode_tok_s(before, after)
    assert rate is not None and 80 < rate < 101  # 20 gaps of 10 ms: 100 tok/s, less the overhead


def test_sglang_builds_its_start_command(tmp_path):
    sg = kind("sglang").prepare(LaneSpec(name="s", kind="sglang", model="qwen", context_length=8192,
                                         options={"model_path": "Qwen/Qwen3-8B", "mem_fraction_static": 0.8}),
                                tmp_path)
    assert sg.start[:5] == ["python3", "-m", "sglang.launch_server", "--model-path", "Qwen/Qwen3-8B"]
    assert "--enable-metrics" in sg.start and sg.start[sg.start.index("--tool-call-parser") + 1] == "qwen25"
    assert sg.start[sg.start.index("--served-model-name") + 1] == "qwen"
    assert sg.start[sg.start.index("--context-length") + 1] == "8192"
    assert sg.start[sg.start.index("--mem-fraction-static") + 1] == "0.8"
    assert sg.base_url == f"http://127.0.0.1:{sg.start[sg.start.index('--port') + 1]}/v1"


# --------------------------------------------------------------------------- hbench run --discover


def test_run_discover_runs_what_it_finds_when_nothing_is_configured(tmp_path):
    """The built-in hbench_discover_lanes finder, through `hbench run --discover` with no
    hbench.toml: the scripted server on an extra port becomes the lane."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent / "reliability"))
    from relhelp import PYTHON, hbench_env, write_suite

    suite = write_suite(tmp_path / "s", [{"id": "a", "prompt": "Say hi."}])
    with ScriptedServer({"Say hi.": ["hi"]}, model="found-model") as srv:
        r = subprocess.run([PYTHON, "-m", "hbench", "run", "--discover", "--suite", str(suite), "--runs", "1",
                            "--out", str(tmp_path / "out"), "--no-history", "--no-progress"],
                           cwd=tmp_path, env=hbench_env(HBENCH_DISCOVER_PORTS=str(srv.port)),
                           capture_output=True, text=True, timeout=120)
        assert srv.chat_requests, r.stderr[-2000:]
    assert r.returncode == 0, r.stderr[-3000:]
    name = f"openai-{srv.port}"
    card = json.loads((tmp_path / "out" / f"{name}.json").read_text())
    assert card["lane"]["model"] == "found-model" and card["lane"]["source"] == "--discover"
    assert card["lane"]["ready_s"] is not None  # the canary ran


def test_run_discover_with_a_plugin_finder_and_with_nothing_found(tmp_path, hbench_plugin):
    from hbench import hookimpl
    from hbench.runner import discovered_lanes
    from hbench.plugin_manager import get_plugins
    from hbench.errors import BadInput

    class Finder:
        @hookimpl
        def hbench_discover_lanes(self, register, host):
            register(LaneSpec(name="from-plugin", kind="openai", base_url=f"http://{host}:1/v1", model="x"))

    hbench_plugin(Finder(), name="finder")
    lanes = discovered_lanes(get_plugins(), host="127.0.0.2")
    names = [s.name for s in lanes]
    assert "from-plugin" in names
    mine = lanes[names.index("from-plugin")]
    assert mine.source == "--discover" and mine.base_url == "http://127.0.0.2:1/v1"

    get_plugins().unregister("finder")
    with pytest.raises(BadInput, match="--discover: no model server answered on 127.0.0.3"):
        discovered_lanes(get_plugins(), host="127.0.0.3")  # nothing listens on 127.0.0.3's default ports
