"""hbench.toml: lanes and [run] validated with cattrs; every error names file, key, fix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbench.config import RunDefaults, load_config
from hbench.errors import BadInput, ConfigError

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
        assert cfg.lanes["x"].kind in (None, *KINDS)  # None: the default kind (lanes.with_kind)


# --------------------------------------------------------------------------- issue 15: values


def problems_for(tmp_path, text):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(p, lane_kinds=KINDS)
    return p, exc.value.problems


@pytest.mark.parametrize("line, key", [
    ("timeout_s = inf", "run.timeout_s"),
    ("timeout_s = nan", "run.timeout_s"),
    ("timeout_s = -1", "run.timeout_s"),
    ("sample_hz = inf", "run.sample_hz"),
    ("sample_hz = 0", "run.sample_hz"),
    ("runs = 0", "run.runs"),
    ("concurrency = 0", "run.concurrency"),
    ("max_turns = -2", "run.max_turns"),
    ("memory_headroom_gb = nan", "run.memory_headroom_gb"),
    ('out = ""', "run.out"),
])
def test_run_values_that_would_fail_every_attempt_are_refused_by_their_toml_key(tmp_path, line, key):
    # before: timeout_s = inf was accepted and every attempt died of OverflowError; runs = 0
    # was reported as the flag "--runs 0" the user never typed
    p, probs = problems_for(tmp_path, f"[run]\n{line}\n")
    assert len(probs) == 1 and probs[0].startswith(f"{p}: {key}: "), probs
    assert "--" not in probs[0]


@pytest.mark.parametrize("line, key", [
    ("temperature = nan", "temperature"),
    ("temperature = inf", "temperature"),
    ("temperature = -0.5", "temperature"),
    ("max_tokens = -5", "max_tokens"),
    ("max_tokens = 0", "max_tokens"),
    ("ready_timeout_s = -1", "ready_timeout_s"),
    ("ready_timeout_s = inf", "ready_timeout_s"),
    ("top_p = 1.5", "top_p"),
    ("context_length = 0", "context_length"),
    ("expected_memory_gb = -3", "expected_memory_gb"),
    ("stop_grace_s = nan", "stop_grace_s"),
    ("start = []", "start"),
    ('start = ""', "start"),
    ('start = "   "', "start"),
    ('start = "vllm serve \'unclosed"', "start"),
])
def test_lane_values_that_would_fail_every_attempt_are_refused(tmp_path, line, key):
    p, probs = problems_for(tmp_path, f'[lanes.a]\nkind = "openai"\nbase_url = "http://127.0.0.1:8000/v1"\n{line}\n')
    assert len(probs) == 1 and probs[0].startswith(f"{p}: lanes.a.{key}: "), probs


def test_a_start_string_is_split_as_a_shell_would(tmp_path):
    # before: start = "vllm serve x" became a list of characters
    p = write(tmp_path, '[lanes.a]\nkind = "vllm"\nstart = "vllm serve \'Qwen/Qwen3 8B\' --port 8000"\n')
    assert load_config(p, lane_kinds=KINDS).lanes["a"].start == ["vllm", "serve", "Qwen/Qwen3 8B", "--port", "8000"]


@pytest.mark.parametrize("url", ["localhost:8000", "localhost:8000/v1", "127.0.0.1:8000/v1", "ftp://host/v1",
                                 "http://", "http:///v1", "//host/v1", "http://[::1/v1"])
def test_base_url_must_be_http_with_a_host_and_the_fix_is_shown(tmp_path, url):
    # before: base_url = "localhost:8000" was accepted and the run polled it for 600 s
    p, probs = problems_for(tmp_path, f'[lanes.a]\nkind = "openai"\nbase_url = "{url}"\n')
    assert len(probs) == 1 and probs[0].startswith(f"{p}: lanes.a.base_url: "), probs
    assert "http://localhost:8000/v1" in probs[0]


def test_base_url_with_placeholders_of_a_managed_lane_is_accepted(tmp_path):
    p = write(tmp_path, '[lanes.a]\nkind = "llamacpp"\nbase_url = "http://{host}:{port}/v1"\nstart = "llama-server --port {port}"\n')
    assert load_config(p, lane_kinds=KINDS).lanes["a"].base_url == "http://{host}:{port}/v1"


def test_an_empty_lane_name_is_refused(tmp_path):
    p, probs = problems_for(tmp_path, '[lanes.""]\nkind = "openai"\nbase_url = "http://127.0.0.1:8000/v1"\n')
    assert probs == [f'{p}: lanes."": a lane needs a name (write [lanes.my-lane])']


def test_lane_names_that_share_a_file_name_are_refused_before_anything_runs(tmp_path):
    # before: found only after both lanes ran, and one scorecard was lost
    p, probs = problems_for(tmp_path, '[lanes."qwen/8b"]\nbase_url = "http://127.0.0.1:1/v1"\n'
                                      '[lanes."qwen 8b"]\nbase_url = "http://127.0.0.1:2/v1"\n'
                                      '[lanes.Other]\nbase_url = "http://127.0.0.1:3/v1"\n'
                                      '[lanes.other]\nbase_url = "http://127.0.0.1:4/v1"\n')
    assert len(probs) == 2
    assert "'qwen/8b', 'qwen 8b' would all be written to qwen_8b.json" in probs[0]
    assert "'Other', 'other'" in probs[1]


def test_a_utf8_bom_is_accepted(tmp_path):
    # before: "Invalid statement (at line 1, column 1)"
    p = tmp_path / "hbench.toml"
    p.write_bytes(b"\xef\xbb\xbf[run]\nruns = 2\n")
    assert load_config(p, lane_kinds=KINDS).run.runs == 2


def test_deeply_nested_config_is_one_line_naming_the_file(tmp_path):
    # before: RecursionError traceback
    for body in ("x = " + "[" * 5000 + "]" * 5000 + "\n", "x = " + "[" * 150 + "]" * 150 + "\n",
                 "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n"):
        p = tmp_path / "hbench.toml"
        p.write_text("[run]\n" + body)
        with pytest.raises(ConfigError) as exc:
            load_config(p, lane_kinds=KINDS)
        assert str(exc.value) == f"{p}: nested deeper than 100 levels (flatten it)"


def test_an_oversized_config_is_refused_without_reading_it_all(tmp_path):
    p = tmp_path / "hbench.toml"
    with p.open("wb") as fh:
        fh.write(b"# " + b"x" * (5 * 1024 * 1024) + b"\n")
    with pytest.raises(ConfigError, match=r"hbench.toml: 5.0 MiB is larger than the 4.0 MiB hbench reads"):
        load_config(p, lane_kinds=KINDS)


def test_cli_runs_zero_in_toml_names_the_toml_key_and_exits_2(tmp_path):
    write(tmp_path, "[run]\nruns = 0\n")
    r = subprocess.run([sys.executable, "-m", "hbench", "run", "--lane-url", "http://127.0.0.1:9/v1", "--model", "m",
                        "--no-progress"], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=os.environ)
    assert r.returncode == 2, r.stderr
    assert "hbench.toml: run.runs: 0 is not usable" in r.stderr
    assert "--runs" not in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "results").exists()


def test_cli_a_lane_without_base_url_is_exit_2_naming_the_key(tmp_path):
    # before: exit 1 after the lane was tried
    write(tmp_path, '[lanes.remote]\nkind = "openai"\nmodel = "m"\n')
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "suite.toml").write_text('name = "mini"\nversion = "1"\n')
    (suite / "ground_truth.json").write_text("{}")
    (suite / "prompts.jsonl").write_text('{"id": "p", "prompt": "Hi?", "check": {"kind": "substring", "any": ["hi"]}}\n')
    r = subprocess.run([sys.executable, "-m", "hbench", "run", "--lanes", "remote", "--suite", str(suite),
                        "--no-progress"], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=os.environ)
    assert r.returncode == 2, r.stderr
    assert "hbench.toml: lanes.remote.base_url: missing" in r.stderr and "http://localhost:8000/v1" in r.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("toml, want", [
    ('[run]\nreport = "json,pdf"\n', "hbench.toml: run.report: unknown reporter 'pdf'"),
    ('[run]\nagent = "nobody"\n', "(hbench.toml: run.agent)"),
    ('[lanes.a]\nbase_url = "http://127.0.0.1:9/v1"\nagent = "nobody"\n', "hbench.toml: lanes.a.agent)"),
])
def test_run_settings_from_the_toml_are_named_by_their_key_not_a_flag(tmp_path, toml, want):
    from hbench.runner import RunOptions, Runner

    p = write(tmp_path, toml)
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "suite.toml").write_text('name = "mini"\nversion = "1"\n')
    (suite / "ground_truth.json").write_text("{}")
    (suite / "prompts.jsonl").write_text('{"id": "p", "prompt": "Hi?", "check": {"kind": "substring", "any": ["hi"]}}\n')
    lanes = {"lanes": "a"} if "[lanes.a]" in toml else {"lane_url": "http://127.0.0.1:9/v1", "model": "m"}
    with pytest.raises(BadInput) as exc:
        Runner(RunOptions(config=str(p), suite=str(suite), out=str(tmp_path / "out"), **lanes)).run()
    assert want in str(exc.value) and "--" not in str(exc.value).split("(installed")[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("line,key", [("sweep_depths = 256", "sweep_depths"),
                                      ("sweep_concurrency = 4", "sweep_concurrency"),
                                      ("start = 5", "start")])
def test_a_single_value_where_a_list_belongs_names_the_key_and_the_fix(tmp_path, line, key):
    # before: "lanes.a.sweep_depths: 'int' object is not iterable" (no fix)
    p, probs = problems_for(tmp_path, f'[lanes.a]\nkind = "openai"\nbase_url = "http://127.0.0.1:8000/v1"\n{line}\n')
    assert len(probs) == 1 and probs[0].startswith(f"{p}: lanes.a.{key}: "), probs
    assert "not iterable" not in probs[0] and f"{key} = [" in probs[0], probs


def test_an_unknown_suite_in_the_toml_is_named_by_its_key(tmp_path):
    # before: "no suite 'nope': not an installed suite ..." without saying it came from hbench.toml
    from hbench.runner import RunOptions, Runner

    p = write(tmp_path, '[run]\nsuite = "nope"\n')
    with pytest.raises(BadInput) as exc:
        Runner(RunOptions(config=str(p), lane_url="http://127.0.0.1:9/v1", model="m",
                          out=str(tmp_path / "out"))).run()
    assert str(exc.value).startswith("hbench.toml: run.suite: no suite 'nope'"), exc.value
    assert "installed: " in str(exc.value) and not (tmp_path / "out").exists()
    with pytest.raises(BadInput) as exc:  # the flag is named as the flag
        Runner(RunOptions(config=str(p), suite="nope2", lane_url="http://127.0.0.1:9/v1", model="m",
                          out=str(tmp_path / "out"))).run()
    assert str(exc.value).startswith("--suite: no suite 'nope2'"), exc.value
