"""The ``hermes`` agent driver.

Pure parts (session bucketing, per-call tool aliases, the export parser, the generated
config, option checks) are tested without Hermes. Everything else runs the real
``hermes`` binary (hermes-agent 0.19.0 in its own venv: ``.ci/hermes-venv.sh``, found
through ``$HBENCH_HERMES_BIN`` or ``./.hermes-venv/bin/hermes``) against
``hbench.testing.ScriptedServer`` on 127.0.0.1, scripted with Hermes' tool names, on
the bundled suite's rendered fixtures: the tools really run, on a fresh scratch copy.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from hbench.agents import AttemptContext
from hbench.models import Attempt, LaneSpec, Prompt, ToolCall
from hbench.plugins.agents import hermes as hm
from hbench.plugins.agents import hermes_sessions as hsess
from hbench.plugins.agents import hermes_setup as hset
from hbench.plugins.agents.hermes import AGENT
from hbench.testing import ScriptedServer, answer, call

REPO = Path(__file__).resolve().parent.parent
HERMES_BIN = Path(os.environ.get("HBENCH_HERMES_BIN") or REPO / ".hermes-venv" / "bin" / "hermes")
HAVE_HERMES = HERMES_BIN.is_file() and os.access(HERMES_BIN, os.X_OK)
needs_hermes = pytest.mark.skipif(
    not HAVE_HERMES,
    reason=f"hermes-agent not installed at {HERMES_BIN}: run .ci/hermes-venv.sh (or set HBENCH_HERMES_BIN)",
)


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _logs_to_real_stderr():
    """CliRunner swaps sys.stderr and ``hbench`` binds structlog to it; rebind after."""
    yield
    from hbench.logging import configure

    configure("json", "warning", stream=sys.__stderr__)


@pytest.fixture(scope="module")
def suite():
    from hbench.suite import load_suite

    return load_suite(REPO / "suites" / "hermes-brain-v1")


@pytest.fixture(scope="module")
def truth(suite) -> dict[str, str]:
    return suite.ground_truth


def prompt_of(suite, pid: str) -> Prompt:
    return next(p for p in suite.prompts if p.id == pid)


@pytest.fixture
def hermes_env(monkeypatch):
    monkeypatch.setenv("HBENCH_HERMES_BIN", str(HERMES_BIN))


def make_ctx(tmp_path: Path, suite, lane: LaneSpec, prompt: Prompt, *, n: int = 1, timeout_s: float = 60,
             max_turns: int = 10, api_key: str | None = None) -> AttemptContext:
    from hbench.suite import render_fixtures

    scratch = tmp_path / "scratch" / prompt.id / str(n)
    render_fixtures(suite, scratch)
    return AttemptContext(lane=lane, prompt=prompt, suite=suite, n=n, scratch=scratch, timeout_s=timeout_s,
                          max_turns=max_turns, max_tokens=512, temperature=0.0, api_key=api_key,
                          work_dir=tmp_path / "work" / lane.name)


def attempt_dir(ctx: AttemptContext) -> Path:
    return ctx.work_dir / "hermes" / ctx.prompt.id / str(ctx.n)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- bucketing (pure)


def test_bucketing_back_to_back_prompts_never_double_count():
    # Prompt B starts the instant A's session ends: the case that double-counted when a
    # padding window let A's bucket reach into B's start.
    starts = [("A", 100.0), ("B", 102.0), ("C", 102.0005)]
    sessions = [
        {"id": "sA", "started_at": 100.01},
        {"id": "sB", "started_at": 102.0},  # exactly at B's start: B, not A
        {"id": "sB2", "started_at": 102.0004},  # 0.1 ms before C starts: still B
        {"id": "sC", "started_at": 102.0005},
        {"id": "early", "started_at": 99.999},  # before every prompt: nobody's
    ]
    out = hsess.bucket_sessions(starts, sessions)
    assert {k: [s["id"] for s in v] for k, v in out.items()} == {"A": ["sA"], "B": ["sB", "sB2"], "C": ["sC"]}


def test_bucketing_equal_starts_later_prompt_wins_and_bad_rows_are_skipped():
    out = hsess.bucket_sessions([("x", 5.0), ("y", 5.0)], [{"started_at": 5.0}, {"started_at": None}, {}])
    assert out == {"x": [], "y": [{"started_at": 5.0}]}


@given(
    starts=st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=8),
    times=st.lists(st.floats(-10, 1010, allow_nan=False), max_size=30),
)
def test_bucketing_rule_property(starts, times):
    prompts = [(f"p{i}", t) for i, t in enumerate(starts)]
    sessions = [{"i": i, "started_at": t} for i, t in enumerate(times)]
    out = hsess.bucket_sessions(prompts, sessions)
    placed = [s["i"] for bucket in out.values() for s in bucket]
    assert len(placed) == len(set(placed))  # mutually exclusive
    for key, bucket in out.items():
        for s in bucket:
            t = s["started_at"]
            mine = dict(prompts)[key]
            assert mine <= t  # no padding: never before its prompt's start
            # the last prompt that started at or before t (ties: later in the list)
            eligible = [i for i, (_k, st_) in enumerate(prompts) if st_ <= t]
            best = max(eligible, key=lambda i: (prompts[i][1], i))
            assert prompts[best][0] == key
    for s in sessions:
        if s["i"] not in placed:
            assert all(t > s["started_at"] for _k, t in prompts)  # only sessions before all prompts


# --------------------------------------------------------------------------- aliases (pure)


@pytest.mark.parametrize(("name", "args", "tokens"), [
    ("search_files", {"pattern": "*.md", "target": "files"}, {"list", "ls", "glob", "grep", "find"}),
    ("read_file", {"path": "a.md"}, {"read"}),
    ("terminal", {"command": "ls -la vendors"}, {"list", "ls"}),
    ("terminal", {"command": "cd vendors && /bin/ls"}, {"list", "ls"}),
    ("terminal", {"command": "cat ops/shipping.md | head -3"}, {"read"}),
    ("terminal", {"command": "python3 -c 'print(1)'"}, set()),
    ("terminal", "not an object", set()),
    ("skills_list", {}, set()),
    ("write_file", {"path": "x"}, set()),
])
def test_aliases_for_call(name, args, tokens):
    assert set(AGENT.aliases_for(ToolCall(name=name, arguments=args))) == tokens


def test_attempt_aliases_let_terminal_ls_satisfy_list_but_not_read():
    from hbench.scoring import tool_satisfied

    calls = [ToolCall("terminal", {"command": "python3 x.py"}), ToolCall("terminal", {"command": "ls"})]
    aliases = AGENT.attempt_aliases(calls)
    names = [c.name for c in calls]
    assert tool_satisfied(["list", "glob", "grep"], names, aliases)
    assert not tool_satisfied(["read"], names, aliases)
    assert tool_satisfied(["grep"], ["search_files"], AGENT.attempt_aliases([ToolCall("search_files", {})]))


# --------------------------------------------------------------------------- export parsing (pure)


def _msg(i: int, role: str, ts: float, content: Any = None, **kw: Any) -> dict[str, Any]:
    return {"id": i, "role": role, "content": content, "timestamp": ts, "tool_calls": None, "tool_name": None,
            "tool_call_id": None, "finish_reason": None, **kw}


def _tc(cid: str, name: str, args: str) -> dict[str, Any]:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


def test_fill_from_sessions_maps_calls_results_unknown_tools_and_format_errors():
    session = {"id": "s1", "started_at": 10.0, "messages": [
        _msg(1, "user", 10.0, "find it"),
        _msg(2, "assistant", 11.5, "", tool_calls=[_tc("c1", "search_files", '{"pattern": "*"}'),
                                                  _tc("c2", "list_dir", '{"path": "."}')],
             finish_reason="tool_calls"),
        _msg(3, "tool", 11.6, '{"total_count": 1, "files": ["a.md"]}', tool_call_id="c1", tool_name="search_files"),
        _msg(4, "tool", 11.7, "Tool 'list_dir' does not exist. Available tools: read_file", tool_call_id="c2"),
        _msg(5, "assistant", 12.0, "", tool_calls=[_tc("c3", "read_file", '{"path": "a.md"')],
             finish_reason="tool_calls"),
        _msg(6, "tool", 12.1, '{"error": "Invalid JSON arguments"}', tool_call_id="c3", tool_name="read_file"),
        _msg(7, "assistant", 13.0, "The answer is 42.", finish_reason="stop"),
    ]}
    a = Attempt(lane="l", prompt_id="p", n=1, agent="hermes")
    hsess.fill_from_sessions(a, [session])
    assert [c.name for c in a.tool_calls] == ["search_files", "list_dir", "read_file"]
    first, unknown, broken = a.tool_calls
    assert first.ok and first.arguments == {"pattern": "*"} and "a.md" in first.result
    assert not unknown.ok and unknown.error == "unknown tool 'list_dir'"
    assert broken.format_error and broken.arguments == '{"path": "a.md"' and broken.error == "Invalid JSON arguments"
    assert a.unknown_tools == 1 and a.format_errors == 1
    assert a.answer == "The answer is 42."
    assert [t.finish_reason for t in a.turns] == ["tool_calls", "tool_calls", "stop"]
    assert [t.wall_s for t in a.turns] == [1.5, 0.3, 0.9]
    assert [m["role"] for m in a.transcript] == ["user", "assistant", "tool", "tool", "assistant", "tool", "assistant"]
    assert a.runaway is None


def test_fill_from_sessions_marks_hermes_iteration_limit_as_max_turns():
    session = {"id": "s", "started_at": 1.0, "messages": [
        _msg(1, "user", 1.0, "go"),
        _msg(2, "assistant", 2.0, "", tool_calls=[_tc("c1", "read_file", "{}")]),
        _msg(3, "tool", 2.1, "{}", tool_call_id="c1"),
        _msg(4, "user", 2.2, "You've reached the maximum number of tool-calling iterations allowed. Please"),
        _msg(5, "assistant", 3.0, "summary"),
    ]}
    a = Attempt(lane="l", prompt_id="p", n=1)
    hsess.fill_from_sessions(a, [session])
    assert a.runaway == "max_turns" and a.answer == "summary"


def test_parse_export_skips_junk_lines():
    text = '{"id": "a", "messages": []}\nnot json\n[1, 2]\n\n{"id": "b"}\n'
    assert [s["id"] for s in hsess.parse_export(text)] == ["a", "b"]


# --------------------------------------------------------------------------- config and options (pure)


def test_config_carries_lane_settings_and_never_the_key():
    cfg = hset.build_config(base_url="http://127.0.0.1:1/v1", model="m", context_length=70000, max_tokens=256,
                          max_turns=7, with_key=True, extra={"agent": {"api_max_retries": 0}, "x": 1})
    assert cfg["model"] == {"provider": "custom", "default": "m", "base_url": "http://127.0.0.1:1/v1",
                            "context_length": 70000, "max_tokens": 256, "api_key": "${HBENCH_HERMES_API_KEY}"}
    assert cfg["agent"] == {"max_turns": 7, "environment_probe": False, "api_max_retries": 0}
    assert cfg["security"] == {"allow_lazy_installs": False} and cfg["x"] == 1
    assert json.loads(hset.render_config(cfg)) == cfg
    assert "api_key" not in hset.build_config(base_url="u", model="m", context_length=1, max_tokens=1,
                                            max_turns=1, with_key=False)["model"]


def test_bad_agent_options_are_named_with_the_fix(tmp_path, suite, monkeypatch):
    fake = tmp_path / "hermes"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    lane = LaneSpec(name="q", base_url="http://127.0.0.1:9/v1", model="m",
                    agent_options={"hermes_bin": str(fake), "context_lenght": 65536, "max_tokens": True})
    a = AGENT.run_attempt(make_ctx(tmp_path, suite, lane, suite.prompts[0]))
    assert "lane 'q' agent_options.context_lenght: unknown option" in a.error
    assert "agent_options.max_tokens: expected int" in a.error
    assert not a.passed and a.answer == ""


def test_small_context_is_refused_before_starting_hermes(tmp_path, suite):
    marker = tmp_path / "ran"
    fake = tmp_path / "hermes"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    lane = LaneSpec(name="small", base_url="http://127.0.0.1:9/v1", model="m", context_length=8192,
                    agent_options={"hermes_bin": str(fake)})
    a = AGENT.run_attempt(make_ctx(tmp_path, suite, lane, suite.prompts[0]))
    assert "context_length 8192 is below the 64000 Hermes requires" in a.error
    assert "agent_options.context_length" in a.error
    assert not marker.exists()


def test_bin_lookup_order_and_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.hermes-venv here
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))  # and no hermes on PATH
    monkeypatch.delenv("HBENCH_HERMES_BIN", raising=False)
    ok, why = AGENT.usable()
    assert not ok
    assert why.startswith("hermes: not found") and hset.INSTALL_HINT in why
    assert "pip install hermes-agent==0.19.0" in why
    default = tmp_path / ".hermes-venv" / "bin" / "hermes"
    default.parent.mkdir(parents=True)
    default.write_text("#!/bin/sh\n")
    default.chmod(0o755)
    assert hset.find_hermes_bin()[0] == default
    envbin = tmp_path / "env-hermes"
    envbin.write_text("#!/bin/sh\n")
    envbin.chmod(0o755)
    monkeypatch.setenv("HBENCH_HERMES_BIN", str(envbin))
    assert hset.find_hermes_bin()[0] == envbin
    lane = LaneSpec(name="l", agent_options={"hermes_bin": str(default)})
    assert hset.find_hermes_bin(lane)[0] == default
    monkeypatch.setenv("HBENCH_HERMES_BIN", str(tmp_path / "missing"))
    path, where = hset.find_hermes_bin()
    assert path is None and "missing" in where


def test_bin_on_path_is_found_after_the_env_var_and_before_the_default_venv(tmp_path, monkeypatch):
    # issue 15: hermes installed with pipx / uv sits on PATH; only $HBENCH_HERMES_BIN and
    # ~/.hermes-venv were looked at, so `--agent hermes` said "hermes: not found"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("HBENCH_HERMES_BIN", raising=False)
    bindir = tmp_path / "pipx-bin"
    bindir.mkdir()
    on_path = bindir / "hermes"
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    path, where = hset.find_hermes_bin()
    assert path == on_path and where == "PATH"
    ok, why = AGENT.usable()
    assert ok and str(on_path) in why
    default = tmp_path / ".hermes-venv" / "bin" / "hermes"  # PATH wins over the default venv
    default.parent.mkdir(parents=True)
    default.write_text("#!/bin/sh\n")
    default.chmod(0o755)
    assert hset.find_hermes_bin()[0] == on_path
    envbin = tmp_path / "env-hermes"  # the env var wins over PATH
    envbin.write_text("#!/bin/sh\n")
    envbin.chmod(0o755)
    monkeypatch.setenv("HBENCH_HERMES_BIN", str(envbin))
    assert hset.find_hermes_bin()[0] == envbin
    monkeypatch.delenv("HBENCH_HERMES_BIN")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    assert hset.find_hermes_bin()[0] == default


def test_hbench_agents_command_lists_drivers_and_the_fix(tmp_path, monkeypatch):
    from hbench.cli import app

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HBENCH_HERMES_BIN", str(tmp_path / "nope"))
    res = CliRunner().invoke(app, ["agents"])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith("hermes"))
    assert "NOT USABLE" in line and "install with python -m venv ~/.hermes-venv" in line
    rows = json.loads(CliRunner().invoke(app, ["agents", "--json"]).output)
    assert {r["name"]: r["usable"] for r in rows}["hermes"] is False


@needs_hermes
def test_usable_reports_the_installed_version(hermes_env):
    ok, why = AGENT.usable()
    assert ok and why.startswith(f"hermes-agent {hset.PINNED_VERSION} at ")
    assert AGENT.describe() == {"name": "hermes", "version": hset.PINNED_VERSION}


# --------------------------------------------------------------------------- the real hermes


def two_prompt_scripts(truth: dict[str, str]) -> dict[str, list]:
    """Scripts for two bundled prompts, in Hermes' tool names (keyed by prompt text)."""
    return {
        "account number with the freight carrier": [
            call("read_file", path="ops/shipping.md"),
            answer(f"Our freight account number is {truth['freight_account']}."),
        ],
        "account manager at Larkspur": [
            call("search_files", pattern="*larkspur*", target="files", path="vendors"),
            call("read_file", path="vendors/v02_larkspur-saddles.txt"),
            answer(truth["larkspur_email"]),
        ],
    }


@pytest.mark.hermes
@needs_hermes
def test_two_bundled_prompts_through_real_hermes(tmp_path, suite, truth, hermes_env):
    from hbench.journal import Journal, transcripts
    from hbench.scoring import attempt_outcome, score_lane, score_prompt

    with ScriptedServer(two_prompt_scripts(truth), model="scripted-hermes") as srv:
        lane = LaneSpec(name="scripted", base_url=srv.url, model="scripted-hermes")
        prompts = [prompt_of(suite, "ground-freight-account"), prompt_of(suite, "chain-vendor-email")]
        attempts = []
        for p in prompts:
            a = AGENT.run_attempt(make_ctx(tmp_path, suite, lane, p))
            a.check = p.check.check(a.answer)
            a.tool_ok, a.passed = attempt_outcome(a, p, AGENT.attempt_aliases(a.tool_calls))
            attempts.append(a)
        chat = srv.chat_requests
    freight, vendor = attempts
    for a in attempts:
        assert a.error is None and a.runaway is None, (a.error, a.runaway)
        assert a.agent == "hermes" and a.passed and a.tool_ok

    # the calls Hermes really executed on the scratch copy, read from its session export
    assert [(c.name, c.arguments) for c in freight.tool_calls] == [("read_file", {"path": "ops/shipping.md"})]
    assert truth["freight_account"] in freight.tool_calls[0].result  # Hermes read the real file
    assert freight.answer == f"Our freight account number is {truth['freight_account']}."
    assert [c.name for c in vendor.tool_calls] == ["search_files", "read_file"]
    assert "vendors/v02_larkspur-saddles.txt" in vendor.tool_calls[0].result
    assert truth["larkspur_email"] in vendor.tool_calls[1].result
    assert vendor.answer == truth["larkspur_email"]
    assert [m["role"] for m in vendor.transcript] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert len(vendor.turns) == 3 and vendor.turns[-1].finish_reason == "stop"
    assert vendor.prompt_tokens > 0 and vendor.completion_tokens > 0
    assert all(a.started_at and a.finished_at and a.wall_s > 0 for a in attempts)

    # what Hermes sent: streamed, usage asked for, no temperature, the pinned toolsets only
    assert len(chat) == 5
    offered = {t["function"]["name"] for t in chat[0].body["tools"]}
    assert {"read_file", "search_files", "terminal"} <= offered
    assert not offered & {"memory", "skills_list", "session_search", "execute_code"}
    for r in chat:
        assert r.body["stream"] is True and r.body["stream_options"] == {"include_usage": True}
        assert "temperature" not in r.body and "tool_choice" not in r.body
        assert r.body["model"] == "scripted-hermes" and r.body["max_tokens"] == 512

    # the journal keeps the tool calls and answers from the session export
    suite_info = {"name": suite.name, "version": suite.version, "sha256": suite.sha256,
                  "fixtures_sha256": suite.fixtures_sha256}
    with Journal.open(tmp_path / "out" / "journal.jsonl", suite=suite_info, resume=False) as j:
        for a in attempts:
            j.append_attempt(a)
    back = {a.prompt_id: a for a in transcripts(tmp_path / "out" / "journal.jsonl", "scripted")}
    assert [c.name for c in back["chain-vendor-email"].tool_calls] == ["search_files", "read_file"]
    assert back["ground-freight-account"].answer == freight.answer and back["chain-vendor-email"].passed

    # and the scorecard those attempts make
    scores = [score_prompt(p, [a]) for p, a in zip(prompts, attempts)]
    card = score_lane({"name": "scripted", "kind": "openai", "model": "scripted-hermes"},
                      {"name": suite.name, "version": suite.version}, scores, runs=1)
    assert (card.core_pass, card.core_n) == (2, 2)
    assert card.pass_rate == 1.0 and card.correct_tool_rate == 1.0 and card.runaway_rate == 0.0


@pytest.mark.hermes
@needs_hermes
def test_dead_endpoint_is_an_error_not_a_pass(tmp_path, suite, hermes_env):
    from hbench.scoring import attempt_outcome

    p = prompt_of(suite, "ground-freight-account")
    lane = LaneSpec(name="dead", base_url=f"http://127.0.0.1:{free_port()}/v1", model="m",
                    agent_options={"hermes_config": {"agent": {"api_max_retries": 0}}})
    ctx = make_ctx(tmp_path, suite, lane, p)
    a = AGENT.run_attempt(ctx)
    assert a.error and a.error.startswith("hermes run failed:") and "Connection error" in a.error
    assert a.answer == "" and a.runaway is None
    # Hermes exited 0 and printed its error where the answer goes; the usage file said failed
    assert "API call failed" in (attempt_dir(ctx) / "stdout.txt").read_text()
    assert json.loads((attempt_dir(ctx) / "usage.json").read_text())["failed"] is True
    a.check = p.check.check(a.answer)
    assert attempt_outcome(a, p, AGENT.attempt_aliases(a.tool_calls))[1] is False


def _procs_with(text: str) -> list[psutil.Process]:
    out = []
    for q in psutil.process_iter(["cmdline", "environ"]):
        blob = " ".join(q.info["cmdline"] or []) + " " + " ".join(f"{k}={v}" for k, v in (q.info["environ"] or {}).items())
        if text in blob:
            out.append(q)
    return out


@pytest.mark.hermes
@needs_hermes
def test_timeout_is_a_runaway_and_leaves_no_hermes_running(tmp_path, suite, hermes_env):
    p = Prompt(id="stalled", prompt="Is the model there", check=suite.prompts[0].check)
    stall = {"turns": [{"content": "never", "faults": [{"kind": "stall"}]}]}  # no byte, ever
    with ScriptedServer([{"match": "model there", **stall}], model="m") as srv:
        ctx = make_ctx(tmp_path, suite, LaneSpec(name="stall", base_url=srv.url, model="m"), p, timeout_s=3)
        t0 = time.monotonic()
        a = AGENT.run_attempt(ctx)
        took = time.monotonic() - t0
    assert a.runaway == "timeout" and a.error is None and a.answer == ""
    assert took < 3 + 2 * hm.KILL_GRACE_S + 5
    assert not _procs_with(str(attempt_dir(ctx) / "hermes_home"))


@pytest.mark.hermes
@needs_hermes
def test_stopping_an_attempt_kills_the_commands_hermes_started(tmp_path, suite, hermes_env):
    """Hermes' terminal runs each command in a session of its own: a process-group kill
    alone would leave it running. The attempt is stopped (cancel) once the command runs."""
    import threading

    p = Prompt(id="slow", prompt="Run the slow job please", check=suite.prompts[0].check)
    sleeper = "sleep 91.4375"
    with ScriptedServer({"slow job": [call("terminal", command=sleeper), answer("done")]}, model="m") as srv:
        ctx = make_ctx(tmp_path, suite, LaneSpec(name="slow", base_url=srv.url, model="m"), p, timeout_s=120)
        result: list[Attempt] = []
        worker = threading.Thread(target=lambda: result.append(AGENT.run_attempt(ctx)))
        worker.start()
        deadline = time.monotonic() + 90
        while not _procs_with(sleeper) and time.monotonic() < deadline and worker.is_alive():
            time.sleep(0.1)
        assert _procs_with(sleeper), "hermes never ran the scripted terminal command"
        ctx.cancel.set()
        worker.join(30)
    (a,) = result
    assert a.error == "cancelled" and not a.passed
    assert not _procs_with(sleeper)
    # the partial trace still comes back (no usage file: found by bucketing the sessions)
    assert [(c.name, c.arguments) for c in a.tool_calls] == [("terminal", {"command": sleeper})]


@pytest.mark.hermes
@needs_hermes
def test_more_model_calls_than_max_turns_is_a_runaway(tmp_path, suite, hermes_env):
    p = prompt_of(suite, "ground-freight-account")
    turns = [call("read_file", path="ops/shipping.md")] * 3 + [answer("CFW-7731-QX")]
    with ScriptedServer({"freight carrier": turns}, model="m") as srv:
        a = AGENT.run_attempt(make_ctx(tmp_path, suite, LaneSpec(name="l", base_url=srv.url, model="m"), p,
                                       max_turns=2))
    assert a.runaway == "max_turns" and len(a.turns) == 4 and a.answer == "CFW-7731-QX"


@pytest.mark.hermes
@needs_hermes
def test_hallucinated_tool_is_recorded_and_counted(tmp_path, suite, hermes_env):
    p = prompt_of(suite, "chain-vendor-email")
    with ScriptedServer({"Larkspur": [call("list_dir", path="vendors"), answer("not sure")]}, model="m") as srv:
        a = AGENT.run_attempt(make_ctx(tmp_path, suite, LaneSpec(name="l", base_url=srv.url, model="m"), p))
    assert a.error is None and a.unknown_tools == 1
    (tc,) = a.tool_calls
    assert tc.name == "list_dir" and not tc.ok and tc.error == "unknown tool 'list_dir'"


@pytest.mark.hermes
@needs_hermes
def test_key_reaches_the_server_but_no_file_env_or_transcript(tmp_path, suite, hermes_env, monkeypatch):
    key = "sk-hbench-test-7f3a9c"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-user-other-key-do-not-pass")
    p = Prompt(id="env", prompt="Show me the environment", check=suite.prompts[0].check)
    with ScriptedServer({"environment": [call("terminal", command="env; echo HOME=$HOME"), answer("shown")]},
                        model="m", api_key=key) as srv:
        lane = LaneSpec(name="keyed", base_url=srv.url, model="m", api_key_env="HBENCH_TEST_KEY",
                        agent_options={"keep_home": True})
        ctx = make_ctx(tmp_path, suite, lane, p, api_key=key)
        a = AGENT.run_attempt(ctx)
        statuses = {r.status for r in srv.chat_requests}
    assert a.error is None and statuses == {200}  # the key was sent: no 401
    env_out = a.tool_calls[0].result
    assert "sk-user-other-key" not in env_out  # the user's other keys never reach the agent
    assert f"HOME={attempt_dir(ctx) / 'home'}" in env_out  # a private HOME
    everything = json.dumps([a.answer, a.transcript, [c.result for c in a.tool_calls]])
    assert key not in everything
    for f in attempt_dir(ctx).rglob("*"):
        if f.is_file() and f.name not in ("state.db", "state.db-wal", "state.db-shm"):
            assert key.encode() not in f.read_bytes(), f


@pytest.mark.slow
@pytest.mark.hermes
@needs_hermes
def test_nothing_carries_over_between_attempts(tmp_path, suite, hermes_env):
    p = Prompt(id="carry", prompt="Remember this for later", check=suite.prompts[0].check)
    script = {"Remember": {"attempts": [
        [call("terminal", command="echo secret-note > ~/note.txt && mkdir -p $HERMES_HOME/memories && "
                                  "echo remembered > $HERMES_HOME/memories/MEMORY.md"), answer("saved")],
        [call("terminal", command="cat ~/note.txt $HERMES_HOME/memories/MEMORY.md; echo rc=$?"), answer("checked")],
    ]}}
    with ScriptedServer([{"match": k, **v} for k, v in script.items()], model="m") as srv:
        lane = LaneSpec(name="l", base_url=srv.url, model="m")
        first = AGENT.run_attempt(make_ctx(tmp_path, suite, lane, p, n=1))
        second = AGENT.run_attempt(make_ctx(tmp_path, suite, lane, p, n=2))
    assert first.error is None and second.error is None
    out = second.tool_calls[0].result
    assert "No such file" in out and "secret-note" not in out and "remembered" not in out
    assert not (tmp_path / "work" / "l" / "hermes" / "carry" / "1" / "hermes_home").exists()


@pytest.mark.slow
@pytest.mark.hermes
@needs_hermes
def test_hbench_run_with_the_hermes_agent(tmp_path, suite, truth, hermes_env, monkeypatch):
    """``hbench run --agent hermes --lane-url ... --model ...``: two prompts of the bundled
    suite (a copy of it holding only those two), scored and reported with the agent."""
    import shutil

    from hbench.cli import main

    two = tmp_path / "hermes-brain-2"
    shutil.copytree(suite.path, two)
    keep = ("ground-freight-account", "chain-vendor-email")
    rows = [ln for ln in (two / "prompts.jsonl").read_text().splitlines() if json.loads(ln)["id"] in keep]
    (two / "prompts.jsonl").write_text("\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results"
    with ScriptedServer(two_prompt_scripts(truth), model="m") as srv:
        try:  # a relative --out: HERMES_HOME must still resolve
            main(["run", "--agent", "hermes", "--lane-url", srv.url, "--model", "m", "--suite", str(two),
                  "--runs", "1", "--out", "results", "--no-progress"])
            code = 0
        except SystemExit as exc:
            code = exc.code
    assert code == 0
    (card_path,) = [p for p in out.glob("*.json")]
    card = json.loads(card_path.read_text())
    assert card["agent"] == {"name": "hermes", "version": hset.PINNED_VERSION}
    assert (card["core_pass"], card["core_n"], card["pass_rate"]) == (2, 2, 1.0)
    assert card["correct_tool_rate"] == 1.0 and card["runaway_rate"] == 0.0
    by_id = {p["id"]: p for p in card["prompts"]}
    assert [a["tools"] for a in by_id["chain-vendor-email"]["attempts"]] == [["search_files", "read_file"]]
    assert by_id["ground-freight-account"]["attempts"][0]["answer"].endswith(f"{truth['freight_account']}.")
    journal = [json.loads(ln) for ln in (out / "journal.jsonl").read_text().splitlines()]
    att = [r["attempt"] for r in journal if r.get("type") == "attempt"]
    assert len(att) == 2 and all(a["agent"] == "hermes" and a["passed"] for a in att)
    assert [t["name"] for t in next(a for a in att if a["prompt_id"] == "chain-vendor-email")["tool_calls"]] == [
        "search_files", "read_file"]
    assert "hermes" in (out / "summary.md").read_text()
