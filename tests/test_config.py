"""hbench.toml: lanes and [run] validated with cattrs; every error names file, key, fix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbench.config import RunDefaults, load_config
from hbench.errors import ConfigError

KINDS = ["llamacpp", "nim", "ollama", "openai", "vllm"]


def write(tmp_path, text):
    p = tmp_path / "hbench.toml"
    p.write_text(text)
    return p


def test_valid_config(tmp_path):
    p = write(tmp_path, """
[run]
runs = 3
concurrency = 2

[lanes.qwen]
kind = "vllm"
base_url = "http://127.0.0.1:8000/v1"
model = "Qwen/Qwen3-8B"
api_key_env = "QWEN_KEY"
start = ["vllm", "serve", "Qwen/Qwen3-8B"]
expected_memory_gb = 24
ready_timeout_s = 900
tags = ["qwen", "fp8"]
""")
    cfg = load_config(p, lane_kinds=KINDS)
    lane = cfg.lanes["qwen"]
    assert lane.name == "qwen" and lane.kind == "vllm" and lane.expected_memory_gb == 24.0
    assert lane.start == ["vllm", "serve", "Qwen/Qwen3-8B"] and lane.source == str(p)
    assert cfg.run.runs == 3 and cfg.run.concurrency == 2 and cfg.run.suite == RunDefaults().suite


def test_unknown_kind_names_file_key_and_installed(tmp_path):
    p = write(tmp_path, '[lanes.qwen]\nkind = "vlm"\nbase_url = "http://x/v1"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(p, lane_kinds=KINDS)
    assert str(exc.value) == (
        f"{p}: lanes.qwen.kind: unknown lane kind 'vlm' (installed: llamacpp, nim, ollama, openai, vllm)"
    )


def test_unknown_key_names_allowed_keys(tmp_path):
    p = write(tmp_path, '[lanes.qwen]\nkind = "vllm"\nbsae_url = "http://x/v1"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(p, lane_kinds=KINDS)
    msg = str(exc.value)
    assert msg.startswith(f"{p}: lanes.qwen: unknown key 'bsae_url' (allowed: ")
    assert "base_url" in msg and "source" not in msg


def test_every_problem_reported(tmp_path):
    p = write(tmp_path, """
[run]
runs = "five"
[lanes.a]
kind = "nope"
[lanes.b]
expected_memory_gb = "lots"
[extra]
x = 1
""")
    with pytest.raises(ConfigError) as exc:
        load_config(p, lane_kinds=KINDS)
    probs = exc.value.problems
    assert any("unknown table 'extra'" in x for x in probs)
    assert any("run.runs" in x and "expected an integer" in x for x in probs)
    assert any("lanes.a.kind" in x for x in probs)
    assert any("lanes.b.expected_memory_gb" in x and "expected a number" in x for x in probs)


def test_key_itself_instead_of_env_name_is_refused(tmp_path):
    p = write(tmp_path, '[lanes.a]\nkind = "openai"\napi_key_env = "sk-abc123-secret!"\n')
    with pytest.raises(ConfigError, match="must name an environment variable"):
        load_config(p, lane_kinds=KINDS)


def test_bad_toml_is_a_clear_error(tmp_path):
    p = write(tmp_path, "[lanes.a\nkind=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p, lane_kinds=KINDS)


def test_missing_explicit_config(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")


def test_no_config_is_empty(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(lane_kinds=KINDS)
    assert cfg.lanes == {} and cfg.path is None


def test_cli_exit_2_and_message(tmp_path):
    write(tmp_path, '[lanes.qwen]\nkind = "vlm"\n')
    r = subprocess.run([sys.executable, "-m", "hbench", "lanes"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60, env=os.environ)
    assert r.returncode == 2
    assert "hbench.toml: lanes.qwen.kind: unknown lane kind 'vlm' (installed: " in r.stderr
    assert "Traceback" not in r.stderr


toml_values = st.recursive(
    st.one_of(st.integers(-10, 10**6), st.text(max_size=8), st.booleans(), st.floats(allow_nan=False, allow_infinity=False)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _toml(v):
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(x)}" for k, x in v.items()) + "}"


@settings(max_examples=300, deadline=None)
@given(table=st.dictionaries(st.sampled_from(["kind", "base_url", "model", "start", "tags", "ready_timeout_s",
                                              "expected_memory_gb", "options", "bogus", "api_key_env", "env"]),
                             toml_values, max_size=5),
       run=st.dictionaries(st.sampled_from(["runs", "concurrency", "suite", "adaptive", "nope"]), toml_values, max_size=3))
def test_fuzzed_config_is_loaded_or_refused_clearly(tmp_path_factory, table, run):
    d = tmp_path_factory.mktemp("fuzz")
    body = "[run]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in run.items())
    body += "[lanes.x]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in table.items())
    p = d / "hbench.toml"
    p.write_text(body)
    try:
        cfg = load_config(p, lane_kinds=KINDS)
    except ConfigError as exc:
        assert exc.problems and all(line.startswith(str(p)) for line in exc.problems)
    else:
        assert cfg.lanes["x"].kind in KINDS
