"""Each hook works end to end for a third-party plugin registered for one test."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs

from hbench import hookimpl
from hbench.lanes import LaneKind
from hbench.models import CheckResult, LaneSpec
from hbench.plugin_manager import REGISTRATION_HOOKS, get_plugins
from hbench.probes import Probe
from hbench.reporters import Reporter
from hbench.tools import Tool


@attrs.frozen
class EndsWithCheck:
    name = "endswith"
    suffix: str = ""

    def check(self, answer: str) -> CheckResult:
        ok = answer.endswith(self.suffix)
        return CheckResult(ok, f"answer {'ends' if ok else 'does not end'} with {self.suffix!r}")


class EchoTool(Tool):
    name = "echo"
    description = "echo the text"
    parameters = {"type": "object", "properties": {"text": {"type": "string"}}}

    def call(self, args, sandbox):
        return str(args.get("text", ""))


class ConstProbe(Probe):
    name = "const"

    def sample(self):
        return {"cpu_percent": 1.0}


class NullReporter(Reporter):
    name = "null"

    def write(self, scorecards, out_dir, context):
        return []


class MyKind(LaneKind):
    name = "mykind"


class MyAgent:
    name = "myagent"
    capabilities = frozenset()

    def run_attempt(self, ctx):
        raise NotImplementedError


class ThirdParty:
    @hookimpl
    def hbench_register_lane_kinds(self, register):
        register(MyKind())

    @hookimpl
    def hbench_register_lanes(self, register):
        register(LaneSpec(name="tp-lane", kind="mykind", base_url="http://127.0.0.1:1/v1"))

    @hookimpl
    def hbench_register_checks(self, register):
        register(EndsWithCheck)

    @hookimpl
    def hbench_register_probes(self, register):
        register(ConstProbe)

    @hookimpl
    def hbench_register_reporters(self, register):
        register(NullReporter())

    @hookimpl
    def hbench_register_agents(self, register):
        register(MyAgent())

    @hookimpl
    def hbench_register_tools(self, register):
        register(EchoTool())

    @hookimpl
    def hbench_register_suites(self, register, ):
        register(Path("/nonexistent/tp-suite"), name="tp-suite")


def test_every_registration_hook_registers_with_attribution():
    pl = get_plugins()
    pl.register(ThirdParty(), name="third-party")
    try:
        reg = pl.registries
        assert reg.lane_kinds.plugin_of("mykind") == "third-party"
        assert reg.lanes.get("tp-lane").kind == "mykind"
        assert reg.checks.get("endswith")(suffix="!").check("hi!").passed
        assert reg.probes.get("const")().sample() == {"cpu_percent": 1.0}
        assert reg.reporters.plugin_of("null") == "third-party"
        assert reg.agents.plugin_of("myagent") == "third-party"
        assert reg.tools.get("echo").call({"text": "x"}, None) == "x"
        assert reg.suites.get("tp-suite") == Path("/nonexistent/tp-suite")
        info = next(i for i in pl.plugin_list() if i.name == "third-party")
        assert set(info.hooks) == set(REGISTRATION_HOOKS)
    finally:
        pl.unregister("third-party")
    assert "tp-lane" not in get_plugins().registries.lanes


def test_invalid_registration_is_refused_and_named():
    pl = get_plugins()

    class Wrong:
        @hookimpl
        def hbench_register_lanes(self, register):
            register({"name": "dict-lane"}, name="dict-lane")

    pl.register(Wrong(), name="wrong")
    try:
        assert "dict-lane" not in pl.registries.lanes
        assert "expected an hbench.models.LaneSpec" in pl.infos["wrong"].error
    finally:
        pl.unregister("wrong")


def test_broadcast_hooks_reach_plugins():
    pl = get_plugins()
    got = []

    class Sink:
        @hookimpl
        def hbench_attempt_finished(self, attempt, lane, prompt):
            got.append(("attempt", attempt))

        @hookimpl
        def hbench_lane_finished(self, scorecard, lane):
            got.append(("lane", scorecard))

        @hookimpl
        def hbench_run_finished(self, scorecards):  # a subset of the arguments is fine
            got.append(("run", scorecards))

    pl.register(Sink(), name="sink")
    try:
        pl.broadcast("hbench_attempt_finished", attempt=1, lane=2, prompt=3)
        pl.broadcast("hbench_lane_finished", scorecard=4, lane=5)
        pl.broadcast("hbench_run_finished", scorecards=[6], out_dir=Path("."), context={})
    finally:
        pl.unregister("sink")
    assert got == [("attempt", 1), ("lane", 4), ("run", [6])]


def test_hbench_register_commands_adds_a_cli_command(tmp_path):
    (tmp_path / "hbench_hello.py").write_text(textwrap.dedent("""
        import typer
        from hbench import hookimpl

        @hookimpl
        def hbench_register_commands(app):
            @app.command()
            def hello(name: str = "world"):
                "Say hello."
                typer.echo(f"hello {name}")
    """))
    info = tmp_path / "hbench_hello-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hbench-hello\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[hbench]\nhello = hbench_hello\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "hbench", "hello", "--name", "spark"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "hello spark"
    r = subprocess.run([sys.executable, "-m", "hbench", "plugins", "--json"], capture_output=True, text=True,
                       env=env, timeout=60)
    hello = next(p for p in json.loads(r.stdout) if p["name"] == "hello")
    assert hello["hooks"] == ["hbench_register_commands"]
