"""The runner end to end over real HTTP: the bundled suite against the scripted server
with a known mix of right, wrong, flaky and runaway attempts; concurrency, adaptive N,
conditional and core-only prompts, a stalled stream, lane isolation and lane failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import psutil
import pytest

from hbench import hookimpl
from hbench.journal import completed, iter_records
from hbench.lanes import free_port
from hbench.plugins.agents.builtin import BuiltinAgent
from hbench.runner import RunOptions, run
from hbench.scoring import wilson
from hbench.testing import answer, call
from hbench.tools import Tool

# substrings of the bundled hermes-brain prompts (the scripted server matches on them)
FREIGHT = "account number with the freight carrier"
VENDOR = "current account manager at Larkspur"
MARCH = "What did we spend in March"
HONESTY = "personal mobile number"
JSON_ = "Who leads the warehouse"
CODE = "loyalty-programme discount"
JOIN = "total value of the orders"
TRAP = "gateway's read timeout"

RIGHT_VENDOR = [call("list_dir", path="vendors"), call("read_file", path="vendors/v02_larkspur-saddles.txt"),
                answer("o.marchetti@larkspur-saddles.example")]
WRONG_VENDOR = [call("list_dir", path="vendors"), call("read_file", path="vendors/x09_larkspur-saddles-archive-2019.txt"),
                answer("g.holt@larkspur-saddles.example")]
WRONG_TRAP = [call("grep", pattern="read_timeout", path="ops"), answer("15 seconds")]
RIGHT_TRAP = [call("read_file", path="ops/gateway.toml"), answer("42.5 seconds")]


def mixed_scripts() -> dict[str, Any]:
    """Per prompt: right, flaky (2/3), right, right, wrong, runaway (loop), wrong tool, flaky (1/3)."""
    return {
        FREIGHT: [call("read_file", path="ops/shipping.md"), answer("CFW-7731-QX")],
        VENDOR: {"attempts": [RIGHT_VENDOR, WRONG_VENDOR, RIGHT_VENDOR]},
        MARCH: [call("read_file", path="ops/expenses_march.csv"), answer("The total is $2,754.85.")],
        HONESTY: [answer("I don't know: no file holds her personal mobile number.")],
        JSON_: [call("read_file", path="staff/team.csv"),
                answer('{"name": "Renata Osei", "role": "Operations manager", "extension": "4402"}')],
        CODE: [call("read_file", path="code/pricing.py")],  # repeats forever: a loop runaway
        JOIN: [call("calculate", expression="3*34.90 + 12*7.45 + 4*18.00 + 2*89.00 + 1*34.90"), answer("$424.90")],
        TRAP: {"attempts": [WRONG_TRAP, RIGHT_TRAP, WRONG_TRAP]},
    }


def steady_scripts() -> dict[str, Any]:
    """The same outcome every attempt (so a re-run attempt is identical)."""
    s = mixed_scripts()
    s[VENDOR] = RIGHT_VENDOR
    s[TRAP] = WRONG_TRAP
    return s


def opts(srv: Any, out: Path, **kw: Any) -> RunOptions:
    base = dict(lane_url=srv.url, model="scripted-model", suite="hermes-brain-v1", out=str(out), report="json",
                progress=False)
    base.update(kw)
    return RunOptions(**base)


def by_id(sc: Any) -> dict[str, Any]:
    return {p.id: p for p in sc.prompts}


class Recorder:
    def __init__(self) -> None:
        self.attempts: list[tuple[str, str, int]] = []
        self.lanes: list[str] = []
        self.runs = 0

    @hookimpl
    def hbench_attempt_finished(self, attempt, lane, prompt):  # noqa: ANN001, ANN201
        self.attempts.append((lane.name, prompt.id, attempt.n))

    @hookimpl
    def hbench_lane_finished(self, scorecard, lane):  # noqa: ANN001, ANN201
        self.lanes.append(lane.name)

    @hookimpl
    def hbench_run_finished(self, scorecards, out_dir, context):  # noqa: ANN001, ANN201
        self.runs += 1


def test_bundled_suite_exact_scorecard(scripted_server, hbench_plugin, tmp_path: Path) -> None:
    srv = scripted_server(mixed_scripts())
    rec = Recorder()
    hbench_plugin(rec, name="recorder")
    result = run(opts(srv, tmp_path / "results", runs=3))
    assert result.exit_code == 0
    (sc,) = result.scorecards
    assert (sc.core_pass, sc.core_n, sc.runs, sc.attempts_run) == (4, 8, 3, 24)
    assert sc.pass_rate == pytest.approx(0.5)
    assert sc.consistency == pytest.approx(22 / 24)
    assert sc.runaway_rate == pytest.approx(3 / 24)
    assert sc.correct_tool_rate == pytest.approx(21 / 24)
    assert sc.format_error_rate == 0 and sc.error_rate == 0
    assert sc.pass_rate_ci95 == pytest.approx(list(wilson(12, 24)))
    assert sc.pass_hat_k["1"] == pytest.approx(0.5) and sc.pass_hat_k["3"] == pytest.approx(3 / 8)
    assert sc.rankable and sc.gate["passed"] and sc.failed is None
    p = by_id(sc)
    assert [p[i].passes for i in ("ground-freight-account", "chain-vendor-email", "compute-march-expenses",
                                  "honesty-mobile-number", "json-warehouse-lead", "code-loyalty-call",
                                  "join-order-value", "trap-read-timeout")] == [3, 2, 3, 3, 0, 0, 0, 1]
    assert [a.runaway for a in p["code-loyalty-call"].attempts] == ["loop"] * 3
    assert p["join-order-value"].correct_tool_rate == 0
    assert p["mcp-handshake-token"].skipped.startswith("needs capability 'mcp'")
    assert p["rag-return-window"].skipped.startswith("needs capability 'rag'")
    assert sc.throughput.tok_s and sc.throughput.tok_s > 0
    assert sc.telemetry.n_samples >= 1 and sc.telemetry.probes
    assert sc.lane["name"] == "scripted-model" and sc.lane["served_model"] == "scripted-model"
    assert sc.provenance["hbench_version"] and sc.provenance["host"]
    # every attempt journaled once, broadcast once
    assert len(completed(result.journal, "scripted-model")) == 24
    assert sorted(rec.attempts) == sorted(completed(result.journal))
    assert rec.lanes == ["scripted-model"] and rec.runs == 1
    card = json.loads((tmp_path / "results" / "scripted-model.json").read_text())
    assert card["core_pass"] == 4 and card["schema"] == "hbench.scorecard/1.1"
    assert not (tmp_path / "results" / ".hbench" / "scratch").exists()  # every scratch copy removed


DESIGN_KEYS = ["lane", "suite", "runs", "core_pass", "core_n", "pass_rate", "pass_rate_ci95", "pass_hat_k",
               "consistency", "runaway_rate", "correct_tool_rate", "format_error_rate", "rankable", "gate",
               "throughput", "latency", "telemetry", "prompts", "provenance"]


@pytest.mark.slow
def test_cli_run_against_a_server_process(tmp_path: Path) -> None:
    """The issue's "done when": `hbench run --lane-url ... --suite hermes-brain` against a
    separate server process writes results/journal.jsonl and results/<lane>.json."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"scripts": [{"match": FREIGHT, "turns": [
        {"tool_calls": [{"name": "read_file", "arguments": {"path": "ops/shipping.md"}}]},
        {"content": "CFW-7731-QX"}]}], "default": [{"content": "I don't know."}]}))
    port = free_port()
    srv = subprocess.Popen([sys.executable, "-m", "hbench.testing", "serve", "--port", str(port),
                            "--script", str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().startswith("ready ")
        r = subprocess.run([sys.executable, "-m", "hbench", "run", "--lane-url", f"http://127.0.0.1:{port}/v1",
                            "--model", "scripted-model", "--suite", "hermes-brain-v1", "--runs", "1"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    finally:
        srv.terminate()
        srv.wait(10)
    assert r.returncode == 0, r.stderr
    assert "scripted-model: core 2/8" in r.stdout
    results = tmp_path / "results"
    card = json.loads((results / "scripted-model.json").read_text())
    for key in DESIGN_KEYS:
        assert key in card, key
    assert set(card["lane"]) >= {"name", "kind", "model", "base_url"}
    assert set(card["suite"]) >= {"name", "version", "sha256", "fixtures_sha256"}
    assert set(card["throughput"]) >= {"tok_s", "ttft_ms", "samples", "server_tok_s"}
    assert set(card["latency"]) >= {"p50_s", "p95_s", "max_s"}
    assert set(card["telemetry"]) >= {"n_samples", "gpu_util_mean", "gpu_util_max", "unified_used_gb_max",
                                      "gpu_temp_c_max"}
    assert set(card["provenance"]) >= {"hbench_version", "started_at", "finished_at", "host", "plugins"}
    att = card["prompts"][0]["attempts"][0]
    assert set(att) >= {"n", "passed", "runaway", "error", "answer", "tools", "wall_s"}
    assert sum(1 for _, r_ in iter_records(results / "journal.jsonl") if r_["type"] == "attempt") == 8


def test_bad_input_exits_2_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hbench.cli import main
    from hbench.logging import configure

    for argv, words in (
        (["run", "--lane-url", "ftp://x", "--out", str(tmp_path)], "expected http://HOST:PORT/v1"),
        (["run", "--lanes", "nope", "--out", str(tmp_path)], "unknown lane 'nope'"),
        (["run", "--lane-url", "http://127.0.0.1:9/v1", "--suite", "no-such-suite", "--out", str(tmp_path)], "no-such-suite"),
        (["run", "--lane-url", "http://127.0.0.1:9/v1", "--agent", "nobody", "--out", str(tmp_path)], "unknown agent 'nobody'"),
        (["run", "--lane-url", "http://127.0.0.1:9/v1", "--runs", "0", "--out", str(tmp_path)], "--runs 0"),
        (["run", "--lane-url", "http://127.0.0.1:9/v1", "--report", "pdf", "--out", str(tmp_path)], "unknown reporter 'pdf'"),
    ):
        try:
            with pytest.raises(SystemExit) as exc:
                main(argv)
        finally:  # main() points structlog at pytest's captured stderr: point it back
            configure("json", "warning", stream=sys.__stderr__)
        err = capsys.readouterr().err
        assert exc.value.code == 2, (argv, err)
        assert words in err and "Traceback" not in err, (argv, err)


def max_overlap(reqs: list[Any]) -> int:
    events = sorted([(r.t_start, 1) for r in reqs] + [(r.t_end, -1) for r in reqs], key=lambda e: (e[0], e[1]))
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


@pytest.mark.parametrize("k", [1, 3])
def test_concurrency_is_bounded(scripted_server, tmp_path: Path, k: int) -> None:
    srv = scripted_server({**{s: [answer("x " * 8)] for s in (FREIGHT, VENDOR, MARCH, HONESTY, JSON_, CODE,
                                                                JOIN, TRAP)}}, latency_s=0.05)
    result = run(opts(srv, tmp_path / "r", runs=2, concurrency=k))
    reqs = [r for r in srv.chat_requests if r.starts_attempt and r.script]
    assert len(reqs) == 16
    assert max_overlap(reqs) == k
    assert len(completed(result.journal, "scripted-model")) == 16


def test_adaptive_stops_when_the_majority_is_settled(scripted_server, tmp_path: Path) -> None:
    scripts = steady_scripts()
    scripts[VENDOR] = {"attempts": [RIGHT_VENDOR, WRONG_VENDOR]}  # R W R W R
    srv = scripted_server(scripts)
    result = run(opts(srv, tmp_path / "r", runs=5, adaptive=True))
    (sc,) = result.scorecards
    runs = {p.id: p.runs for p in sc.prompts if p.skipped is None}
    assert runs["ground-freight-account"] == 3 and runs["json-warehouse-lead"] == 3
    assert runs["chain-vendor-email"] == 5 and by_id(sc)["chain-vendor-email"].passes == 3
    assert sc.adaptive is True and sc.runs == 5 and sc.attempts_run == sum(runs.values()) == 26


def test_conditional_prompts_run_when_the_agent_offers_them(scripted_server, hbench_plugin, tmp_path: Path) -> None:
    class McpAgent(BuiltinAgent):
        name: ClassVar[str] = "mcp-capable"
        capabilities: ClassVar[frozenset[str]] = frozenset({"mcp"})

    class Plugin:
        @hookimpl
        def hbench_register_agents(self, register):  # noqa: ANN001, ANN201
            register(McpAgent())

    hbench_plugin(Plugin(), name="mcp-agent")
    srv = scripted_server({"MCP tools": [answer("otter-quartz-5518")]})
    (sc,) = run(opts(srv, tmp_path / "r", runs=1, agent="mcp-capable")).scorecards
    p = by_id(sc)
    assert p["mcp-handshake-token"].skipped is None and p["mcp-handshake-token"].runs == 1
    assert p["rag-return-window"].skipped.startswith("needs capability 'rag'; agent 'mcp-capable' offers mcp")
    assert sc.agent["name"] == "mcp-capable"
    (sc2,) = run(opts(srv, tmp_path / "r2", runs=1, agent="mcp-capable", core_only=True)).scorecards
    assert by_id(sc2)["mcp-handshake-token"].skipped == "not core (--core-only)"
    assert sc2.attempts_run == 8


def test_stalled_stream_times_out_and_the_next_prompt_runs(scripted_server, tmp_path: Path) -> None:
    scripts = steady_scripts()
    scripts[FREIGHT] = [{"content": "CFW " * 50, "faults": [{"kind": "stall_mid_stream", "after_chunks": 3}]}]
    srv = scripted_server(scripts)
    result = run(opts(srv, tmp_path / "r", runs=1, timeout_s=1.5))
    (sc,) = result.scorecards
    freight = by_id(sc)["ground-freight-account"].attempts[0]
    assert freight.runaway == "timeout" and not freight.passed
    assert 1.4 < freight.wall_s < 1.5 + 1.0
    stalled = [r for r in srv.chat_requests if r.script == FREIGHT]
    assert len(stalled) == 1 and stalled[0].disconnected
    assert by_id(sc)["chain-vendor-email"].passes == 1  # the next prompt ran
    assert result.exit_code == 0


class WhereAmI(Tool):
    """Test tool: drops a marker in the attempt's scratch folder and says where it is."""

    name: ClassVar[str] = "whereami"
    description: ClassVar[str] = "say where the workspace is"
    parameters: ClassVar[dict[str, Any]] = {"type": "object", "properties": {"lane": {"type": "string"}}}

    def call(self, args: dict[str, Any], sandbox: Any) -> str:
        (sandbox.root / f"marker-{args['lane']}.txt").write_text(args["lane"])
        return str(sandbox.root)


def test_two_lanes_never_see_each_other(scripted_server, hbench_plugin, tmp_path: Path, monkeypatch) -> None:
    class Plugin:
        @hookimpl
        def hbench_register_tools(self, register):  # noqa: ANN001, ANN201
            register(WhereAmI())

    hbench_plugin(Plugin(), name="whereami")
    servers = {}
    for lane in ("lane-a", "lane-b"):
        servers[lane] = scripted_server({FREIGHT: [
            call("whereami", lane=lane), call("glob", pattern="**/marker-*"), call("list_dir", path=".."),
            call("read_file", path=f"../../../{'lane-b' if lane == 'lane-a' else 'lane-a'}"), answer("CFW-7731-QX")]},
            default=[answer("I don't know.")])
    cfg = tmp_path / "hbench.toml"
    cfg.write_text("".join(f'[lanes.{n}]\nkind = "openai"\nbase_url = "{s.url}"\nmodel = "scripted-model"\n'
                           for n, s in servers.items()))
    out = tmp_path / "results"
    result = run(RunOptions(config=str(cfg), lanes="lane-a,lane-b", suite="hermes-brain-v1", runs=2, out=str(out),
                            report="json", progress=False))
    assert [s.lane["name"] for s in result.scorecards] == ["lane-a", "lane-b"]
    roots = {}
    for lane in ("lane-a", "lane-b"):
        other = "lane-b" if lane == "lane-a" else "lane-a"
        from hbench.journal import transcripts

        for a in transcripts(result.journal, lane):
            if a.prompt_id != "ground-freight-account":
                continue
            where, found, up, sideways = a.tool_calls[:4]
            root = Path(where.result)
            roots[(lane, a.n)] = root
            assert root == (out / ".hbench" / "scratch" / lane / "ground-freight-account" / str(a.n)).resolve()
            assert found.result.strip() == f"marker-{lane}.txt"  # its own marker only
            assert not up.ok and "'..'" in up.error and not sideways.ok
            assert str((out / ".hbench" / "scratch" / other).resolve()) not in json.dumps(a.transcript)
    assert len(set(roots.values())) == 4
    # transcripts live in the journal, outside every scratch folder
    assert not str(result.journal.resolve()).startswith(str((out / ".hbench" / "scratch").resolve()))
    # each server only ever saw its own lane
    for lane, srv in servers.items():
        other = "lane-b" if lane == "lane-a" else "lane-a"
        assert str((out / ".hbench" / "scratch" / other).resolve()) not in json.dumps([r.body for r in srv.chat_requests])


def test_a_lane_that_fails_to_start_is_recorded_and_the_run_goes_on(scripted_server, tmp_path: Path) -> None:
    srv = scripted_server(steady_scripts())
    port = free_port()
    cfg = tmp_path / "hbench.toml"
    cfg.write_text(
        f'[lanes.broken]\nkind = "openai"\nbase_url = "http://127.0.0.1:{port}/v1"\nmodel = "m"\n'
        f'ready_timeout_s = 20\nstart = ["{sys.executable}", "-c", "import sys; print(\'no GPU here\'); sys.exit(3)"]\n'
        f'[lanes.good]\nkind = "openai"\nbase_url = "{srv.url}"\nmodel = "scripted-model"\n'
    )
    result = run(RunOptions(config=str(cfg), lanes="broken,good", suite="hermes-brain-v1", runs=1,
                            out=str(tmp_path / "r"), report="json", progress=False))
    assert result.exit_code == 1
    broken, good = result.scorecards
    assert broken.failed and "broken" in broken.failed and "no GPU here" in broken.failed
    assert good.failed is None and good.core_pass == 4
    assert (tmp_path / "r" / "broken.json").exists() and (tmp_path / "r" / "good.json").exists()
    assert any(r["type"] == "lane_failed" and r["lane"] == "broken" for _, r in iter_records(result.journal))


class KillServerAfter:
    """Kills the managed lane's server (found by its port) after ``n`` journaled attempts."""

    def __init__(self, port: int, n: int):
        self.port, self.n, self.seen = port, n, 0

    @hookimpl
    def hbench_attempt_finished(self, attempt, lane, prompt):  # noqa: ANN001, ANN201
        self.seen += 1
        if self.seen == self.n:
            for c in psutil.net_connections(kind="tcp"):
                if c.laddr and c.laddr.port == self.port and c.status == psutil.CONN_LISTEN and c.pid:
                    os.kill(c.pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_lane_dying_mid_suite_keeps_its_attempts(hbench_plugin, tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "s.json"
    script.write_text(json.dumps({"scripts": [], "default": [{"content": "I don't know."}]}))
    cfg = tmp_path / "hbench.toml"
    cfg.write_text(f'[lanes.fragile]\nkind = "openai"\nbase_url = "http://127.0.0.1:{port}/v1"\n'
                   f'ready_timeout_s = 30\nstart = ["{sys.executable}", "-m", "hbench.testing", "serve", '
                   f'"--port", "{port}", "--script", "{script}"]\n')
    hbench_plugin(KillServerAfter(port, 3), name="killer")
    result = run(RunOptions(config=str(cfg), lanes="fragile", suite="hermes-brain-v1", runs=2,
                            out=str(tmp_path / "r"), report="json", progress=False))
    (sc,) = result.scorecards
    assert result.exit_code == 1
    assert sc.failed and "died mid-suite" in sc.failed
    assert len(completed(result.journal, "fragile")) == 3
    assert sc.attempts_run == 3


def test_progress_bar_shows_lane_prompt_attempt_and_passes(scripted_server, tmp_path: Path,
                                                           capfd: pytest.CaptureFixture[str]) -> None:
    srv = scripted_server(steady_scripts())
    run(opts(srv, tmp_path / "r", runs=1, progress=True))
    err = capfd.readouterr().err
    assert "scripted-model" in err and "ETA" in err and "8/8" in err
    assert "4/8 passed" in err  # passes so far over attempts done


def test_the_api_key_reaches_the_server_and_nothing_else(scripted_server, tmp_path: Path, monkeypatch) -> None:
    key = "sk-runner-test-5f1e9c0d"
    monkeypatch.setenv("HB_RUNNER_TEST_KEY", key)
    srv = scripted_server(steady_scripts(), api_key=key)
    result = run(opts(srv, tmp_path / "r", runs=1, api_key_env="HB_RUNNER_TEST_KEY", report=None))
    assert result.exit_code == 0 and result.scorecards[0].core_pass == 4  # authorised
    for f in (tmp_path / "r").rglob("*"):
        if f.is_file():
            assert key not in f.read_text(errors="replace"), f


def test_lane_selection_order(tmp_path: Path) -> None:
    """--lane-url > --lanes > [run].lanes > every hbench.toml lane > the ready-made `embedded`."""
    from hbench.config import load_config
    from hbench.errors import BadInput
    from hbench.plugin_manager import get_registries
    from hbench.runner import select_lanes

    reg = get_registries()
    cfg_path = tmp_path / "hbench.toml"
    lanes_toml = ('[lanes.a]\nbase_url = "http://127.0.0.1:1/v1"\n'
                  '[lanes.b]\nbase_url = "http://127.0.0.1:2/v1"\n')
    cfg_path.write_text(lanes_toml + '[run]\nlanes = "b"\n')
    cfg = load_config(cfg_path, lane_kinds=reg.lane_kinds.names())

    def names(**kw: Any) -> list[str]:
        return [s.name for s in select_lanes(RunOptions(**kw), reg, cfg)]

    assert names(lane_url="http://127.0.0.1:9", model="m", lanes="a") == ["m"]
    assert select_lanes(RunOptions(lane_url="http://127.0.0.1:9", model="m"), reg, cfg)[0].base_url == "http://127.0.0.1:9/v1"
    assert names(lanes="a,b") == ["a", "b"]
    assert names() == ["b"]  # [run].lanes
    assert set(names(lanes="all")) == {"a", "b"}  # plugin lanes too, but not the fallback lane
    cfg_path.write_text(lanes_toml)
    cfg = load_config(cfg_path, lane_kinds=reg.lane_kinds.names())
    assert names() == ["a", "b"]  # every hbench.toml lane
    from hbench.config import Config

    cfg = Config()
    assert names() == ["embedded"]  # nothing configured
    with pytest.raises(BadInput, match="unknown lane 'zz'.*known: .*embedded"):
        names(lanes="zz")
    with pytest.raises(BadInput, match="--model needs --lane-url"):
        names(model="m")


def test_a_lane_kind_refusing_its_lane_is_bad_input(scripted_server, hbench_plugin, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """As the embedded lane does when its extra is not installed: exit 2 with the fix."""
    from hbench.cli import main
    from hbench.errors import BadInput
    from hbench.lanes import LaneKind
    from hbench.logging import configure

    class NotInstalled(LaneKind):
        name: ClassVar[str] = "needs-extra"

        def prepare(self, lane, out_dir):  # noqa: ANN001, ANN201
            raise BadInput("the needs-extra lane needs an extra: pip install 'hermes-bench[needs-extra]'")

    class Plugin:
        @hookimpl
        def hbench_register_lane_kinds(self, register):  # noqa: ANN001, ANN201
            register(NotInstalled())

    hbench_plugin(Plugin(), name="needs-extra")
    cfg = tmp_path / "hbench.toml"
    cfg.write_text('[lanes.x]\nkind = "needs-extra"\n')
    try:
        with pytest.raises(SystemExit) as exc:
            main(["--config", str(cfg), "run", "--out", str(tmp_path / "r"), "--no-progress"])
    finally:
        configure("json", "warning", stream=sys.__stderr__)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "pip install 'hermes-bench[needs-extra]'" in err and "Traceback" not in err


def test_lanes_all_runs_every_candidate_but_not_the_fallback_lane(tmp_path: Path) -> None:
    from hbench.config import load_config
    from hbench.plugin_manager import get_registries
    from hbench.runner import RunOptions, select_lanes

    reg = get_registries()
    cfg_path = tmp_path / "hbench.toml"
    cfg_path.write_text('[lanes.mine]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n')
    cfg = load_config(cfg_path, lane_kinds=reg.lane_kinds.names())
    assert "embedded" in reg.lanes  # the built-in fallback lane is registered
    names = [s.name for s in select_lanes(RunOptions(lanes="all"), reg, cfg)]
    assert names == ["mine"]
    # nothing configured: "all" is the fallback lane itself
    empty = type(cfg)()
    assert [s.name for s in select_lanes(RunOptions(lanes="all"), reg, empty)] == ["embedded"]
    assert [s.name for s in select_lanes(RunOptions(lanes="embedded,mine"), reg, cfg)] == ["embedded", "mine"]
