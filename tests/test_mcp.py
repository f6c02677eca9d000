"""MCP (DESIGN.md, "MCP"): ``hbench mcp-serve`` over the real ``mcp`` client, the
``builtin-mcp`` agent end to end against the scripted server on 127.0.0.1, a suite's
own MCP servers (healthy and faulty: each fault recorded, no process left behind), and
the Hermes driver's MCP config. Real processes, real stdio, the real SDK on both ends."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

pytest.importorskip("mcp")

from hbench.plugins.mcp.launch import BASE_ENV, hbench_server_argv, server_env  # noqa: E402
from hbench.plugins.mcp.session import McpConnection  # noqa: E402
from hbench.runner import RunOptions, run  # noqa: E402
from hbench.testing import answer, call  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "reliability"))
from benchmarks._brain_scripts import all_wrong, scripts  # noqa: E402
from relhelp import CANARY, attempts_of, read_journal, write_suite  # noqa: E402

FAKE = ROOT / "tests" / "data" / "mcp" / "suite_server.py"
BUILTINS = {"list_dir", "read_file", "glob", "grep", "calculate"}
TOKEN_PROMPT = "Using one of your MCP tools"
TOKEN = json.loads((ROOT / "suites" / "hermes-brain" / "ground_truth.json").read_text())["mcp_token"]


def serve(root: Path, **kw: Any) -> McpConnection:
    return McpConnection("hbench", hbench_server_argv(root, **kw), env=server_env(hbench=True),
                         start_timeout_s=120).start()


def processes_with(marker: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in a for a in (p.info["cmdline"] or [])) and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            continue
    return out


# --------------------------------------------------------------------------- mcp-serve


def test_mcp_serve_offers_the_builtin_tools_and_a_refusal_is_an_error_result(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("alpha\n")
    conn = serve(tmp_path)
    try:
        tools = {t.name: t for t in conn.list_tools()}
        assert set(tools) == BUILTINS  # the decoy catalogue is not served by default
        assert tools["read_file"].input_schema["required"] == ["path"]
        assert conn.call_tool("read_file", {"path": "notes/a.md"}) == (True, "alpha\n")
        ok, text = conn.call_tool("read_file", {"path": "../../etc/passwd"})
        assert not ok and "'..'" in text
        ok, text = conn.call_tool("no_such_tool", {})
        assert not ok and "unknown tool" in text
        ok, text = conn.call_tool("read_file", {})
        assert not ok and "needs a 'path'" in text
        assert conn.call_tool("calculate", {"expression": "6*7"})[0]  # still serving after the refusals
    finally:
        conn.close()
    # stdin closed: it exits by itself (or, on a loaded box, by the SIGTERM after the grace)
    assert conn.stats.returncode in (0, -15) and not conn.stats.exited_early and not processes_with(str(tmp_path))


def test_mcp_serve_tools_option_and_bad_root(tmp_path: Path) -> None:
    import subprocess

    conn = serve(tmp_path, tools=["read_file", "calculate"])
    try:
        assert {t.name for t in conn.list_tools()} == {"read_file", "calculate"}
    finally:
        conn.close()
    r = subprocess.run([sys.executable, "-m", "hbench", "mcp-serve", "--root", str(tmp_path / "nope")],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode == 2 and "not a folder" in r.stderr


def test_pooled_server_confines_each_call_to_its_attempt_root(tmp_path: Path) -> None:
    base = tmp_path / "scratch"
    a, b = base / "lane" / "p" / "1", base / "lane" / "p" / "2"
    for d, word in ((a, "first"), (b, "second")):
        d.mkdir(parents=True)
        (d / "f.txt").write_text(word)
    (tmp_path / "outside.txt").write_text("outside")
    conn = serve(base, attempt_roots=True)
    try:
        meta = lambda root, tok: {"dev.hbench/root": str(root), "dev.hbench/attempt": tok}  # noqa: E731
        assert conn.call_tool("read_file", {"path": "f.txt"}, meta=meta(a, "t1")) == (True, "first")
        assert conn.call_tool("read_file", {"path": "f.txt"}, meta=meta(b, "t2")) == (True, "second")
        ok, text = conn.call_tool("read_file", {"path": "f.txt"})
        assert not ok and "must name its attempt's root" in text
        for bad in (tmp_path, base, tmp_path / "scratch-evil", Path("/etc")):
            ok, text = conn.call_tool("read_file", {"path": "outside.txt"}, meta=meta(bad, "t3"))
            assert not ok and "not a folder inside" in text
    finally:
        conn.close()


def test_canary_key_reaches_neither_the_server_environment_nor_its_output(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.setenv("HBENCH_TEST_SECRET_TOKEN", CANARY)
    (tmp_path / "f.txt").write_text("x")
    conn = serve(tmp_path)
    try:
        env = psutil.Process(conn.stats.pid).environ()
        assert CANARY not in json.dumps(env)
        assert set(env) <= set(BASE_ENV) | {"HBENCH_LOAD_PLUGINS", "HBENCH_DISABLE_PLUGINS"}
        outputs = [conn.call_tool("read_file", {"path": p})[1] for p in ("/proc/self/environ", "f.txt", "../x")]
        outputs.append(conn.call_tool("grep", {"pattern": "sk-"})[1])
        assert not any(CANARY in o for o in outputs)
    finally:
        conn.close()
    assert CANARY not in conn.stderr_tail(10_000)


# --------------------------------------------------------------------------- builtin-mcp end to end


def _run(tmp_path: Path, srv: Any, agent: str, **kw: Any) -> Any:
    base = dict(lane_url=srv.url, model="scripted-model", suite="hermes-brain", runs=1, out=str(tmp_path / agent),
                report="json", progress=False, agent=agent)
    base.update(kw)
    result = run(RunOptions(**base))
    (sc,) = result.scorecards
    return result, sc


def _verdicts(result: Any) -> dict[tuple[str, int], tuple[Any, ...]]:
    out = {}
    for key, a in attempts_of(read_journal(result.journal)).items():
        check = a.get("check") or {}
        out[key] = (a["passed"], a["tool_ok"], check.get("passed"), check.get("why"), a["runaway"], a["error"],
                    [(t["name"], t["ok"], t["result"]) for t in a["tool_calls"]], a["answer"])
    return out


@pytest.mark.parametrize("plan", ["right", "wrong"])
def test_bundled_suite_gives_the_same_verdicts_in_process_and_over_mcp(tmp_path: Path, scripted_server, plan: str) -> None:
    script = scripts(None if plan == "right" else all_wrong())
    script.append({"match": TOKEN_PROMPT, "attempts": [[call("read_file", path="mcp/handshake.txt"),
                                                         answer(f"The token is {TOKEN}.")]]})
    res_in, sc_in = _run(tmp_path, scripted_server(script), "builtin")
    res_mcp, sc_mcp = _run(tmp_path, scripted_server(script), "builtin-mcp")
    v_in, v_mcp = _verdicts(res_in), _verdicts(res_mcp)
    only_mcp = set(v_mcp) - set(v_in)
    assert {k[0] for k in only_mcp} == {"mcp-handshake-token"} and not set(v_in) - set(v_mcp)
    diff = {k: (v_in[k], v_mcp[k]) for k in v_in if v_in[k] != v_mcp[k]}
    assert not diff, json.dumps({f"{k[0]}#{k[1]}": v for k, v in diff.items()}, indent=1, default=str)[:4000]
    assert len(v_in) >= 30 and sc_in.core_pass == sc_mcp.core_pass
    (token,) = [v_mcp[k] for k in only_mcp]
    assert token[0] is True  # the mcp prompt passes over MCP (the call satisfies the token 'mcp')
    assert sc_mcp.agent["name"] == "builtin-mcp" and sc_mcp.agent["mcp"]
    skipped = {p.id: p.skipped for p in sc_in.prompts}
    assert skipped["mcp-handshake-token"].startswith("needs capability 'mcp'")


def test_builtin_mcp_offers_list_tools_schemas_and_sends_content_as_tool_messages(tmp_path: Path, scripted_server) -> None:
    srv = scripted_server({TOKEN_PROMPT: [call("read_file", path="mcp/handshake.txt"),
                                          call("read_file", path="../../../etc/passwd"),
                                          answer(TOKEN)]})
    result, sc = _run(tmp_path, srv, "builtin-mcp", categories="mcp")
    (a,) = attempts_of(read_journal(result.journal)).values()
    assert a["passed"] and a["tool_calls"][0]["ok"] and TOKEN in a["tool_calls"][0]["result"]
    assert not a["tool_calls"][1]["ok"] and "'..'" in a["tool_calls"][1]["error"]
    first = srv.chat_requests[0]
    offered = {t["function"]["name"]: t["function"] for t in first.body["tools"]}
    assert set(offered) == BUILTINS and offered["read_file"]["parameters"]["required"] == ["path"]
    tool_msgs = max(([m for m in r.messages if m.get("role") == "tool"] for r in srv.chat_requests), key=len)
    assert TOKEN in tool_msgs[0]["content"] and tool_msgs[1]["content"].startswith("error:")


# --------------------------------------------------------------------------- suite MCP servers


def _mcp_suite(tmp_path: Path, mode: str, **server: Any) -> Path:
    root = write_suite(tmp_path / f"suite-{mode}", [{"id": "ext", "prompt": "Read notes.md with the external tool",
                                                    "expect_tool_any": ["mcp__fake__read_text"]}], timeout_s=30)
    spec = {"command": ["{python}", str(FAKE)], "args": [mode], "env": {"FAKE_MODE": mode},
            "tools": ["read_text", "whoami"], "start_timeout_s": 5 if mode == "silent" else 120, "call_timeout_s": 3,
            **server}
    lines = ["", "[mcp.servers.fake]"] + [f"{k} = {json.dumps(v) if not isinstance(v, dict) else _inline(v)}"
                                          for k, v in spec.items()]
    with open(root / "suite.toml", "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return root


def _inline(d: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in d.items()) + "}"


def _ext_run(tmp_path: Path, srv: Any, mode: str) -> tuple[Any, dict[str, Any]]:
    suite = _mcp_suite(tmp_path, mode)
    result = run(RunOptions(lane_url=srv.url, model="scripted-model", suite=str(suite), runs=1,
                            out=str(tmp_path / f"out-{mode}"), report="json", progress=False, agent="builtin-mcp",
                            max_consecutive_errors=5))
    (a,) = attempts_of(read_journal(result.journal)).values()
    return result, a


def test_suite_mcp_server_runs_per_attempt_in_the_scratch_copy_with_suite_env_only(tmp_path: Path, scripted_server,
                                                                                   monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    srv = scripted_server({"external tool": [call("mcp__fake__read_text", path="notes.md"), call("mcp__fake__whoami"),
                                             answer("ok")]})
    _result, a = _ext_run(tmp_path, srv, "ok")
    assert a["passed"] and not a["error"], a
    read, who = a["tool_calls"]
    assert read["ok"] and "the answer is ok" in read["result"]
    assert CANARY not in who["result"] and "'FAKE_MODE': 'ok'" in who["result"]
    assert "/scratch/" in who["result"]  # its working directory was the attempt's scratch copy
    offered = {t["function"]["name"] for t in srv.chat_requests[0].body["tools"]}
    assert {"mcp__fake__read_text", "mcp__fake__whoami"} <= offered and BUILTINS <= offered
    assert not processes_with(str(FAKE))


@pytest.mark.parametrize("mode, error, warning", [
    ("crash", "exited before answering initialize (exit 3); stderr: fake server: crashing on purpose", None),
    ("silent", "never answered initialize within 5 s", None),
    ("noise", "not JSON-RPC on stdout", None),
    ("garbage", None, "printed 2 line(s) that are not JSON-RPC"),
    ("hang", None, "did not answer within 3 s"),
    ("die", None, "exited"),
    ("child", None, None),
])
def test_faulty_suite_mcp_server_is_recorded_and_leaves_no_process(tmp_path: Path, scripted_server, mode: str,
                                                                   error: str | None, warning: str | None) -> None:
    srv = scripted_server({"external tool": [call("mcp__fake__read_text", path="notes.md"), answer("ok")]})
    t0 = time.monotonic()
    result, a = _ext_run(tmp_path, srv, mode)
    assert time.monotonic() - t0 < 60
    if error:
        assert a["error"] and error in a["error"], a["error"]
        assert result.exit_code == 3  # the lane is incomplete: the stack's fault, not the brain's
    else:
        assert not a["error"], a["error"]
    if warning:
        assert any(warning in w for w in a["warnings"]), a["warnings"]
        if mode in ("hang", "die"):
            assert not a["tool_calls"][0]["ok"]  # the model saw a tool error and the attempt went on
    deadline = time.monotonic() + 5
    while processes_with(str(FAKE)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_with(str(FAKE))
    assert not [p for p in psutil.process_iter(["cmdline"]) if "time.sleep(600)" in " ".join(p.info["cmdline"] or [])]


def test_attempt_timeout_during_a_hung_mcp_call_is_a_runaway_and_stops_the_server(tmp_path: Path,
                                                                                   scripted_server) -> None:
    suite = _mcp_suite(tmp_path, "hang", call_timeout_s=120)
    text = (suite / "suite.toml").read_text().replace("timeout_s = 30", "timeout_s = 4")
    (suite / "suite.toml").write_text(text)
    srv = scripted_server({"external tool": [call("mcp__fake__read_text", path="notes.md"), answer("ok")]})
    t0 = time.monotonic()
    result = run(RunOptions(lane_url=srv.url, model="scripted-model", suite=str(suite), runs=1,
                            out=str(tmp_path / "out"), report="json", progress=False, agent="builtin-mcp"))
    (a,) = attempts_of(read_journal(result.journal)).values()
    assert a["runaway"] == "timeout" and not a["tool_calls"][0]["ok"], (a["runaway"], a["tool_calls"])
    assert time.monotonic() - t0 < 120  # the call was cut at the attempt's deadline, not at its 120 s
    assert not processes_with(str(FAKE))


def test_suite_mcp_validation_names_file_and_key(tmp_path: Path) -> None:
    from hbench.errors import SuiteError
    from hbench.suite import load_suite

    root = write_suite(tmp_path / "bad", [{"id": "a", "prompt": "p"}])
    with open(root / "suite.toml", "a", encoding="utf-8") as f:
        f.write('\n[mcp.servers.fs]\ncommand = "python server.py"\nenv = {A = 1}\ntimeout = 3\n\n'
                '[mcp.servers."bad name"]\ncommand = ["x"]\n')
    with pytest.raises(SuiteError) as exc:
        load_suite(str(root))
    text = str(exc.value)
    assert "suite.toml:" in text and "mcp.servers.fs.command: must be a list of non-empty strings" in text
    assert "mcp.servers.fs.env: must be a table of string values" in text
    assert "mcp.servers.fs.timeout: unknown key" in text and "mcp.servers.bad name: the server name" in text


# --------------------------------------------------------------------------- Hermes with MCP

HERMES_BIN = Path(os.environ.get("HBENCH_HERMES_BIN") or ROOT / ".hermes-venv" / "bin" / "hermes")


def _hermes_mcp() -> tuple[bool, str]:
    from hbench.plugins.mcp.hermes_config import mcp_ready

    if not (HERMES_BIN.is_file() and os.access(HERMES_BIN, os.X_OK)):
        return False, f"hermes-agent not installed at {HERMES_BIN}: run .ci/hermes-venv.sh (or set HBENCH_HERMES_BIN)"
    return mcp_ready(HERMES_BIN)


@pytest.mark.hermes
@pytest.mark.skipif(not _hermes_mcp()[0], reason=_hermes_mcp()[1])
def test_hermes_runs_the_mcp_prompt_through_hbench_mcp_serve(tmp_path: Path, scripted_server, monkeypatch) -> None:
    monkeypatch.setenv("HBENCH_HERMES_BIN", str(HERMES_BIN))
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    from hbench.plugins.agents.hermes import AGENT

    assert "mcp" in AGENT.capabilities
    srv = scripted_server({TOKEN_PROMPT: [call("mcp__hbench__read_file", path="mcp/handshake.txt"),
                                          answer(f"The token is {TOKEN}.")]}, model="scripted-hermes")
    result = run(RunOptions(lane_url=srv.url, model="scripted-hermes", suite="hermes-brain", runs=1, categories="mcp",
                            out=str(tmp_path / "out"), report="json", progress=False, agent="hermes", timeout_s=240))
    (a,) = attempts_of(read_journal(result.journal)).values()
    assert a["passed"] and not a["error"], json.dumps(a, default=str)[:3000]
    (tc,) = a["tool_calls"]
    assert tc["name"] == "mcp__hbench__read_file" and TOKEN in tc["result"]
    offered = {t["function"]["name"] for t in srv.chat_requests[0].body["tools"]}
    assert {"mcp__hbench__read_file", "mcp__hbench__list_dir", "read_file"} <= offered
    assert not processes_with("mcp-serve")  # Hermes' server is gone with the attempt


# --------------------------------------------------------------------------- pure parts

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(st.text(max_size=80), st.text(max_size=80))
def test_external_tool_names_are_valid_function_names(server: str, tool: str) -> None:
    import re

    from hbench.plugins.mcp.external import offered_name

    name = offered_name(server, tool)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name) and name.startswith("mcp__")


_toml = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                     lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                     max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["servers", "x"]),
                       st.dictionaries(st.text(max_size=10), st.dictionaries(
                           st.sampled_from(["command", "args", "env", "tools", "start_timeout_s", "call_timeout_s",
                                            "bogus"]), _toml, max_size=6), max_size=3), max_size=2) | _toml)
def test_mcp_table_validation_never_crashes_and_every_problem_names_a_key(raw: Any) -> None:
    from hbench.suite_mcp import parse_mcp

    problems: list[tuple[str, str]] = []
    specs = parse_mcp(raw, lambda key, msg: problems.append((key, msg)))
    assert all(key.startswith("mcp") and msg for key, msg in problems)
    for name, spec in specs.items():
        assert spec.command and all(isinstance(a, str) and a for a in spec.command)
        assert all(isinstance(v, str) for v in spec.env.values()) and spec.start_timeout_s > 0


def test_content_blocks_become_text() -> None:
    import mcp.types as types

    from hbench.plugins.mcp.session import content_text

    res = types.CallToolResult(content=[
        types.TextContent(type="text", text="line one"),
        types.ImageContent(type="image", data="aGVsbG8=", mime_type="image/png"),
        types.EmbeddedResource(type="resource", resource=types.TextResourceContents(uri="file:///a.txt", text="inside")),
        types.ResourceLink(type="resource_link", uri="file:///b.txt", name="b"),
    ])
    assert content_text(res) == ("line one\n[image image/png, 8 base64 characters]\ninside\n"
                                 "[resource file:///b.txt]")
    assert content_text(types.CallToolResult(content=[], structured_content={"n": 1})) == '{"n": 1}'
