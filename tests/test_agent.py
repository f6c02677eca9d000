"""The built-in agent over real HTTP against the scripted server: the tool loop, format
errors, runaways (loop, max_turns, timeout), transport errors and sandbox escapes."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import attrs
import pytest

from hbench.agents import AttemptContext
from hbench.models import LaneSpec
from hbench.plugin_manager import get_registries
from hbench.plugins.agents.builtin import BuiltinAgent
from hbench.sandbox import Sandbox
from hbench.suite import load_suite, render_fixtures
from hbench.testing import answer, call, calls
from hbench.tools import ToolError


@pytest.fixture(scope="module")
def suite():
    return load_suite("hermes-brain-v1")


@pytest.fixture()
def fixtures(tmp_path: Path, suite) -> Path:
    dest = tmp_path / "fixtures"
    render_fixtures(suite, dest)
    return dest


def make_ctx(srv, suite, fixtures: Path, tmp_path: Path, text: str, *, timeout_s: float = 30.0,
             max_turns: int = 10, n: int = 1) -> AttemptContext:
    prompt = attrs.evolve(suite.prompts[0], id="t", prompt=text)
    scratch = tmp_path / "scratch" / f"a{n}"
    Sandbox.create(fixtures, scratch)
    reg = get_registries().tools
    return AttemptContext(
        lane=LaneSpec(name="lane", base_url=srv.url, model="scripted-model"), prompt=prompt, suite=suite, n=n,
        scratch=scratch, timeout_s=timeout_s, max_turns=max_turns, max_tokens=256, temperature=0.0,
        # what a prompt without `tools` offers: every registered tool but the decoy catalogue
        tools={t: reg.get(t) for t in reg.names() if not getattr(reg.get(t), "decoy", False)},
    )


def test_registered() -> None:
    agents = get_registries().agents
    assert "builtin" in agents and isinstance(agents.get("builtin"), BuiltinAgent)


def test_tool_loop_reads_the_scratch_copy(scripted_server, suite, fixtures, tmp_path) -> None:
    srv = scripted_server({"FREIGHT": [call("read_file", path="ops/shipping.md"), answer("CFW-7731-QX")]})
    a = BuiltinAgent().run_attempt(make_ctx(srv, suite, fixtures, tmp_path, "FREIGHT please"))
    assert (a.answer, a.runaway, a.error, a.format_errors) == ("CFW-7731-QX", None, None, 0)
    assert [tc.name for tc in a.tool_calls] == ["read_file"]
    assert "CFW-7731-QX" in a.tool_calls[0].result and a.tool_calls[0].ok
    assert len(a.turns) == 2 and all(t.wall_s > 0 for t in a.turns)
    assert a.completion_tokens > 0 and a.prompt_tokens > 0
    roles = [m["role"] for m in a.transcript]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    second = srv.chat_requests[1].messages
    tool_msg = second[-1]
    assert tool_msg["role"] == "tool" and "CFW-7731-QX" in tool_msg["content"]
    assert second[-2]["tool_calls"][0]["id"] == tool_msg["tool_call_id"]
    assert srv.chat_requests[0].body["tools"][0]["type"] == "function"
    assert {t["function"]["name"] for t in srv.chat_requests[0].body["tools"]} >= {
        "list_dir", "read_file", "glob", "grep", "calculate"}


def test_malformed_arguments_are_a_format_error_never_replayed(scripted_server, suite, fixtures, tmp_path) -> None:
    bad = call("read_file", '{"path": "ops/shipping.md"', turn={})  # raw string: broken JSON
    srv = scripted_server({"BROKEN": [bad, answer("done")]})
    a = BuiltinAgent().run_attempt(make_ctx(srv, suite, fixtures, tmp_path, "BROKEN args"))
    assert a.format_errors == 1 and a.answer == "done" and a.error is None
    assert a.tool_calls[0].format_error and "not valid JSON" in a.tool_calls[0].error
    replayed = srv.chat_requests[1].messages
    assert replayed[-2]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert "not valid JSON" in replayed[-1]["content"]
    assert '{"path": "ops/shipping.md"' not in json.dumps(srv.chat_requests[1].body)


@pytest.mark.parametrize("fault", ["args_object", "calls_in_content", "missing_ids", "stop_finish"])
def test_server_quirks_still_run_the_tool(scripted_server, suite, fixtures, tmp_path, fault: str) -> None:
    srv = scripted_server({"QUIRK": [call("read_file", path="ops/shipping.md", turn={"faults": [fault]}),
                                     answer("CFW-7731-QX")]})
    a = BuiltinAgent().run_attempt(make_ctx(srv, suite, fixtures, tmp_path, "QUIRK"))
    assert a.error is None and a.format_errors == 0
    assert [tc.name for tc in a.tool_calls] == ["read_file"] and "CFW-7731-QX" in a.tool_calls[0].result
    assert a.answer == "CFW-7731-QX"


def test_unknown_tool_is_told_and_counted(scripted_server, suite, fixtures, tmp_path) -> None:
    srv = scripted_server({"UNKNOWN": [call("web_search", query="x"), answer("ok")]})
    a = BuiltinAgent().run_attempt(make_ctx(srv, suite, fixtures, tmp_path, "UNKNOWN"))
    assert a.unknown_tools == 1 and "unknown tool 'web_search'" in a.tool_calls[0].error
    assert "unknown tool" in srv.chat_requests[1].messages[-1]["content"]


def test_loop_is_a_runaway(scripted_server, suite, fixtures, tmp_path) -> None:
    srv = scripted_server({"LOOP": [call("read_file", path="README.txt")]})  # repeats forever
    a = BuiltinAgent().run_attempt(make_ctx(srv, suite, fixtures, tmp_path, "LOOP"))
    assert a.runaway == "loop" and a.error is None
    assert len(srv.chat_requests) == 3 and len(a.tool_calls) == 3
    assert [tc.ok for tc in a.tool_calls] == [True, True, False]


def test_a_retry_after_a_tool_error_is_not_a_loop(scripted_server, suite, fixtures, tmp_path) -> None:
    # the same failing call again and again is recovery, not a loop: only max_turns stops it
    # (before: the third identical call was refused as a loop, so a tool that fails its
    # first two calls on purpose -- suite format 2's fail_first: 2 -- could not be passed)
    srv = scripted_server({"RETRY": [call("read_file", path="no-such-file.txt")]})  # repeats forever
    a = BuiltinAgent().run_attempt(make_ctx(srv, suite, fixtures, tmp_path, "RETRY", max_turns=5))
    assert a.runaway == "max_turns" and len(a.tool_calls) == 5
    assert all(not tc.ok and "not run" not in tc.error for tc in a.tool_calls)
    # errors then successes: only the successful runs count toward the loop
    class Flaky:
        name = "flaky"
        calls = 0

        def schema(self):  # noqa: ANN201
            return {"type": "function", "function": {"name": "flaky", "description": "",
                                                     "parameters": {"type": "object", "properties": {}}}}

        def call(self, args, sandbox):  # noqa: ANN001, ANN201
            Flaky.calls += 1
            if Flaky.calls <= 2:
                raise ToolError("503: try again")
            return "ok"

    srv = scripted_server({"FLAKY": [call("flaky")]})  # repeats forever
    ctx = attrs.evolve(make_ctx(srv, suite, fixtures, tmp_path, "FLAKY", n=2), tools={"flaky": Flaky()})
    a = BuiltinAgent().run_attempt(ctx)
    assert a.runaway == "loop" and [tc.ok for tc in a.tool_calls] == [False, False, True, True, False]
    assert a.tool_calls[-1].error == "not run: the same call already succeeded 2 times (loop)"


def test_max_turns_is_a_runaway(scripted_server, suite, fixtures, tmp_path) -> None:
    srv = scripted_server({"TURNS": [call("list_dir", path="."), call("glob", pattern="*"),
                                     call("grep", pattern="x"), answer("late")]})
    a = BuiltinAgent().run_attempt(make_ctx(srv, suite, fixtures, tmp_path, "TURNS", max_turns=2))
    assert a.runaway == "max_turns" and len(srv.chat_requests) == 2


def test_stall_times_out_and_closes_the_request(scripted_server, suite, fixtures, tmp_path) -> None:
    srv = scripted_server({"STALL": [{"content": "never arrives " * 20,
                                      "faults": [{"kind": "stall_mid_stream", "after_chunks": 2}]}]})
    t = time.monotonic()
    a = BuiltinAgent().run_attempt(make_ctx(srv, suite, fixtures, tmp_path, "STALL", timeout_s=1.5))
    took = time.monotonic() - t
    assert a.runaway == "timeout" and a.error is None
    assert 1.4 < took < 1.5 + 1.5
    assert srv.wait_for(lambda reqs: reqs and reqs[-1].disconnected, timeout=3)


def test_transport_error_is_recorded_not_raised(scripted_server, suite, fixtures, tmp_path) -> None:
    srv = scripted_server({"DOWN": [{"content": "x", "faults": [{"kind": "http", "status": 500}]}]})
    a = BuiltinAgent().run_attempt(make_ctx(srv, suite, fixtures, tmp_path, "DOWN"))
    assert a.error and "TransportError" in a.error and a.runaway is None
    assert 1 < len(srv.chat_requests) <= 6  # bounded retries


def test_cancel_ends_the_attempt(scripted_server, suite, fixtures, tmp_path) -> None:
    srv = scripted_server({"CANCEL": [{"content": "x", "faults": [{"kind": "stall"}]}]})
    ctx = make_ctx(srv, suite, fixtures, tmp_path, "CANCEL", timeout_s=30)
    threading.Timer(0.5, ctx.cancel.set).start()
    t = time.monotonic()
    a = BuiltinAgent().run_attempt(ctx)
    assert a.error == "cancelled" and time.monotonic() - t < 3


def test_escapes_are_refused_and_the_attempt_goes_on(scripted_server, suite, fixtures, tmp_path) -> None:
    """../, /etc/passwd, a symlink out, /dev/zero, a 1 GB file, a catastrophic regex."""
    srv = scripted_server({"ESCAPE": [
        calls(("read_file", {"path": "../../../../etc/passwd"}), ("read_file", {"path": "/etc/passwd"}),
              ("list_dir", {"path": ".."})),
        calls(("read_file", {"path": "out"}), ("read_file", {"path": "zero"}), ("read_file", {"path": "big.txt"})),
        calls(("grep", {"pattern": "(a+)+$", "path": "evil.txt"}), ("glob", {"pattern": "../**"})),
        answer("still here"),
    ]})
    ctx = make_ctx(srv, suite, fixtures, tmp_path, "ESCAPE")
    os.symlink(tmp_path, ctx.scratch / "out")
    os.symlink("/dev/zero", ctx.scratch / "zero")
    with open(ctx.scratch / "big.txt", "wb") as f:
        f.write(b"text\n" * 30_000)
        f.truncate(1 << 30)
    (ctx.scratch / "evil.txt").write_text("a" * 100_000 + "!\n")
    t = time.monotonic()
    a = BuiltinAgent().run_attempt(ctx)
    assert time.monotonic() - t < 10
    assert a.answer == "still here" and a.error is None and a.runaway is None
    res = {i: (tc.ok, tc.error or tc.result) for i, tc in enumerate(a.tool_calls)}
    assert not res[0][0] and "'..'" in res[0][1]
    assert not res[1][0] and "absolute" in res[1][1]
    assert not res[2][0] and "'..'" in res[2][1]
    assert not res[3][0] and "outside the workspace" in res[3][1]
    assert not res[4][0] and "outside the workspace" in res[4][1]
    assert res[5][0] and "[truncated: showing the first 32.0 KiB of 1.0 GiB]" in res[5][1]
    assert len(res[5][1]) < 40_000
    assert res[6][0] and "no lines match" in res[6][1]
    assert not res[7][0] and "'..'" in res[7][1]
    sent = json.dumps([r.body for r in srv.chat_requests])
    assert "root:x:0:0" not in sent  # /etc/passwd never reached the model
