"""`hbench doctor` against loopback servers that behave well, leak tool calls into content,
refuse tools, serve another model or a small context."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lane_imitations import LEAKED, LaneImitation

from hbench.cli import main
from hbench.plugins.commands.diagnosis import doctor, looks_leaked
from hbench.lifecycle import group_members
from hbench.models import LaneSpec
from hbench.plugin_manager import get_registries

IMITATION = str(Path(__file__).with_name("lane_imitations.py"))


@pytest.fixture(autouse=True)
def _logging_back_to_real_stderr():
    """`main()` configures structlog onto the captured stderr of this test; point it back at
    the real one afterwards, or a later test logs into a closed file."""
    yield
    from hbench.logging import configure

    configure(stream=sys.__stderr__)


def run_doctor(srv: LaneImitation, kind: str, tmp_path: Path, **kw):
    spec = LaneSpec(name=f"t-{kind}", kind=kind, base_url=srv.base_url, **kw)
    found = doctor(spec, get_registries().lane_kinds.get(kind), out_dir=tmp_path, wait_s=3)
    return {f.check: f for f in found}


def test_healthy_lane_passes_every_check(tmp_path: Path):
    with LaneImitation(kind="llamacpp", model="qwen3-8b") as srv:
        f = run_doctor(srv, "llamacpp", tmp_path, model="qwen3-8b")
    assert [f[c].status for c in ("ready", "model", "context", "tool_calls")] == ["ok"] * 4
    assert f["model"].detail == "serves 'qwen3-8b'" and "16384" in f["context"].detail
    assert f["tool_calls"].detail == "structured tool_calls (read_file)"


@pytest.mark.parametrize(("kind", "fix"), [
    ("llamacpp", "start llama-server with --jinja"),
    ("vllm", "vLLM needs --enable-auto-tool-choice --tool-call-parser hermes"),
    ("nim", "NIM_ENABLE_AUTO_TOOL_CHOICE=1 and NIM_TOOL_CALL_PARSER=hermes"),
    ("openai", "llama-server needs --jinja; vLLM needs --enable-auto-tool-choice --tool-call-parser hermes"),
])
def test_tool_calls_leaked_into_content_name_the_kinds_fix(tmp_path: Path, kind: str, fix: str):
    with LaneImitation(kind=kind, tool_mode="leak") as srv:
        f = run_doctor(srv, kind, tmp_path)
    assert f["ready"].status == "ok"
    assert f["tool_calls"].status == "fail" and "leaked into content" in f["tool_calls"].detail
    assert fix in f["tool_calls"].fix


@pytest.mark.parametrize(("mode", "fix"), [
    ("jinja_error", "start llama-server with --jinja"),
    ("vllm_reject", "vLLM needs --enable-auto-tool-choice --tool-call-parser hermes"),
])
def test_refused_tool_requests_are_read_for_their_fix(tmp_path: Path, mode: str, fix: str):
    with LaneImitation(kind="openai", tool_mode=mode) as srv:  # kind unknown to the user: read the error
        f = run_doctor(srv, "openai", tmp_path)
    assert f["tool_calls"].status == "fail" and "HTTP 400" in f["tool_calls"].detail
    assert f["tool_calls"].fix.startswith(fix)


@pytest.mark.parametrize(("kind", "fix"), [
    ("nim", "set NIM_ENABLE_AUTO_TOOL_CHOICE=1"),  # needs_auto_tool_choice: its own fix answers the refusal
    ("llamacpp", "vLLM needs --enable-auto-tool-choice"),  # not its kind of error: the vLLM-style fix
])
def test_a_vllm_style_refusal_gets_the_fix_of_a_kind_that_says_it_needs_auto_tool_choice(
        tmp_path: Path, kind: str, fix: str):
    from hbench.plugins.commands.diagnosis import _fix_from_error

    kinds = get_registries().lane_kinds
    assert [n for n in kinds.names() if kinds.get(n).needs_auto_tool_choice] == ["nim", "vllm"]
    text = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
    assert _fix_from_error(text, kinds.get(kind)).startswith(fix)


def test_the_tool_call_probe_offers_the_registered_tool():
    from hbench.plugins.commands.diagnosis import TOOL, probe_tool

    tools = get_registries().tools
    assert probe_tool(tools) == tools.get("read_file").schema()
    assert probe_tool(None) == TOOL and TOOL["function"]["name"] == "read_file"


def test_prose_instead_of_a_call_is_a_warning(tmp_path: Path):
    with LaneImitation(kind="ollama", tool_mode="plain") as srv:
        f = run_doctor(srv, "ollama", tmp_path)
    assert f["tool_calls"].status == "warn" and "without calling the tool" in f["tool_calls"].detail


def test_wrong_model_and_small_context_come_with_fixes(tmp_path: Path):
    with LaneImitation(kind="vllm", model="Qwen/Qwen3-8B", ctx=4096) as srv:
        f = run_doctor(srv, "vllm", tmp_path, model="qwen3")
    assert f["model"].status == "fail" and "set model = 'Qwen/Qwen3-8B' in [lanes.t-vllm]" in f["model"].fix
    assert f["context"].status == "warn" and "4096" in f["context"].detail
    assert "--max-model-len" in f["context"].fix


def test_lane_that_is_down_fails_ready_and_stops_there(tmp_path: Path):
    spec = LaneSpec(name="down", kind="llamacpp", base_url="http://127.0.0.1:9/v1")
    found = doctor(spec, get_registries().lane_kinds.get("llamacpp"), out_dir=tmp_path, wait_s=0.5)
    assert [(x.check, x.status) for x in found] == [("ready", "fail")]
    assert "start the server" in found[0].fix


def test_doctor_command_names_the_fix_for_a_leaking_server(tmp_path: Path, monkeypatch, capsys):
    with LaneImitation(kind="llamacpp", tool_mode="leak") as srv:
        cfg = tmp_path / "hbench.toml"
        cfg.write_text(f'[lanes.leaky]\nkind = "llamacpp"\nbase_url = "{srv.base_url}"\nmodel = "imit-model"\n')
        with pytest.raises(SystemExit) as info:
            main(["--config", str(cfg), "doctor", "leaky", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert info.value.code == 1
    assert "FAIL tool_calls the tool call leaked into content" in out
    assert "fix: start llama-server with --jinja" in out
    assert "OK   model      serves 'imit-model'" in out


def test_doctor_command_json_and_exit_0_for_a_good_lane(tmp_path: Path, capsys):
    with LaneImitation(kind="nim") as srv:
        main(["doctor", "--lane-url", srv.base_url, "--kind", "nim", "--json", "--out", str(tmp_path)])  # no exit
    data = json.loads(capsys.readouterr().out)
    assert {d["check"]: d["status"] for d in data} == {"ready": "ok", "model": "ok", "context": "ok", "tool_calls": "ok"}


def test_doctor_unknown_lane_is_bad_input(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["doctor", "nosuch"])
    assert info.value.code == 2 and "unknown lane 'nosuch'" in capsys.readouterr().err


def test_doctor_starts_and_stops_a_managed_lane(tmp_path: Path):
    spec = LaneSpec(name="managed-leak", kind="llamacpp", stop_grace_s=1.0, ready_timeout_s=20,
                    start=[sys.executable, IMITATION, "--kind", "llamacpp", "--port", "{port}",
                           "--load-s", "0.5", "--tool-mode", "leak"])
    statuses: list[str] = []
    found = doctor(spec, get_registries().lane_kinds.get("llamacpp"), out_dir=tmp_path, on_status=statuses.append)
    assert any(s.startswith("loading, ") for s in statuses) and statuses[-1] == "stopping"
    by = {f.check: f for f in found}
    assert by["ready"].status == "ok" and by["tool_calls"].status == "fail"
    assert "--jinja" in by["tool_calls"].fix
    log = (tmp_path / "logs" / "managed-leak.log").read_text()
    leader = int(log.split("(pid ")[1].split(")")[0])
    assert group_members(leader) == []  # stopped after the checks


def test_looks_leaked_spots_common_leak_shapes():
    assert looks_leaked(LEAKED)
    assert looks_leaked('```json\n{"name": "read_file", "arguments": {"path": "notes.txt"}}\n```')
    assert looks_leaked('[TOOL_CALLS][{"name": "read_file"}]')
    assert looks_leaked("read_file(path='notes.txt')")
    assert not looks_leaked("The file says hello. I read notes.txt for you.")


@given(st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd", "Zs")), max_size=200))
def test_plain_prose_is_never_called_a_leak(text: str):
    assert not looks_leaked(text)
