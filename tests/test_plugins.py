"""The plugin core: built-ins, entry points, isolation of broken plugins, allow/deny
lists, duplicate names, misspelled hooks, and the example packages installed for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hbench import hookimpl
from hbench.errors import PluginError
from hbench.models import LaneSpec
from hbench.plugin_manager import BUILTIN_PLUGINS, HBenchPlugins, Registry, get_plugins
from venvs import borrowing_venv, pip_install

ROOT = Path(__file__).resolve().parents[1]


def hbench_cmd(python: str | Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``hbench ARGS`` in a subprocess; ``env`` adds to this environment (a value of None
    removes that variable: ``HBENCH_LOAD_PLUGINS=None`` opts in to entry-point plugins)."""
    full = {**os.environ, **(env or {})}
    return subprocess.run(
        [str(python), "-c", "from hbench.cli import main; main()", *args],
        capture_output=True, text=True, env={k: v for k, v in full.items() if v is not None}, timeout=120,
    )


def make_dist(root: Path, dist: str, module: str, source: str, ep_name: str | None = None) -> None:
    """An installed distribution on ``root`` (dist-info with an ``hbench`` entry point):
    exactly what pip leaves behind, without the pip run."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[hbench]\n{ep_name or module} = {module}\n")
    (info / "RECORD").write_text("")


# --------------------------------------------------------------------------- registry


def test_registry_duplicate_names_both_plugins():
    reg = Registry("lane")
    reg.add("qwen", object(), "plugin-a")
    with pytest.raises(PluginError) as exc:
        reg.add("qwen", object(), "plugin-b")
    assert "plugin-a" in str(exc.value) and "plugin-b" in str(exc.value)


def test_registry_unknown_lists_installed():
    reg = Registry("check kind")
    reg.add("substring", object(), "x")
    reg.add("honesty", object(), "x")
    with pytest.raises(LookupError, match=r"unknown check kind 'honsty' \(installed: honesty, substring\)"):
        reg.get("honsty")


# --------------------------------------------------------------------------- built-ins


def test_builtins_load_with_their_hooks():
    pl = HBenchPlugins()
    names = [i.name for i in pl.plugin_list()]
    for mod in BUILTIN_PLUGINS:
        assert mod in names
    suites = next(i for i in pl.plugin_list() if i.name == "hbench.suites")
    assert "hbench_register_suites" in suites.hooks
    assert suites.status == "ok" and suites.builtin


def test_plugins_json_lists_builtins():
    r = hbench_cmd(sys.executable, "plugins", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    by_name = {p["name"]: p for p in data}
    assert set(BUILTIN_PLUGINS) <= set(by_name)
    assert all(p["status"] == "ok" for p in data if p["builtin"])
    assert "hbench_register_suites" in by_name["hbench.suites"]["hooks"]


def test_register_plugin_for_one_test_and_duplicate_lane_names_both():
    pl = get_plugins()

    class One:
        @hookimpl
        def hbench_register_lanes(self, register):
            register(LaneSpec(name="twin", kind="openai", base_url="http://127.0.0.1:9/v1"))

    class Two:
        @hookimpl
        def hbench_register_lanes(self, register):
            register(LaneSpec(name="twin", kind="openai", base_url="http://127.0.0.1:9/v1"))

    pl.register(One(), name="one")
    try:
        assert pl.registries.lanes.plugin_of("twin") == "one"
        pl.register(Two(), name="two")
        pl.strict = True
        with pytest.raises(PluginError, match=r"duplicate lane 'twin'.*'one'.*'two'"):
            pl.registries  # noqa: B018
        pl.strict = False
        pl._registries = None
        reg = pl.registries  # non-strict: the second plugin is marked broken, the first wins
        assert reg.lanes.plugin_of("twin") == "one"
        assert pl.infos["two"].status == "error" and "duplicate" in pl.infos["two"].error
    finally:
        pl.unregister("one")
        pl.unregister("two")


def test_register_hook_that_raises_is_isolated():
    pl = get_plugins()

    class Bad:
        @hookimpl
        def hbench_register_checks(self, register):
            raise RuntimeError("boom in register")

    pl.register(Bad(), name="bad")
    try:
        reg = pl.registries
        assert "bad" not in [e.plugin for e in reg.checks.entries()]
        assert pl.infos["bad"].status == "error"
        assert "boom in register" in pl.infos["bad"].error
    finally:
        pl.unregister("bad")


def test_broadcast_failure_is_logged_not_fatal():
    from structlog.testing import capture_logs

    pl = get_plugins()
    seen = []

    class Sink:
        @hookimpl
        def hbench_run_finished(self, scorecards, out_dir, context):
            raise ValueError("sink down")

    class Good:
        @hookimpl
        def hbench_run_finished(self, scorecards, out_dir, context):
            seen.append(len(scorecards))

    pl.register(Sink(), name="sink")
    pl.register(Good(), name="good")
    try:
        with capture_logs() as logs:
            pl.broadcast("hbench_run_finished", scorecards=[], out_dir=Path("."), context={})
        assert seen == [0]
        assert any(e["event"] == "plugin.hook_failed" and e["plugin"] == "sink" for e in logs)
    finally:
        pl.unregister("sink")
        pl.unregister("good")


# --------------------------------------------------------------------------- entry points


@pytest.fixture
def plugin_path(tmp_path):
    """A directory on PYTHONPATH holding installed dists; returns (dir, env). The env opts
    in to entry-point plugins (conftest.py turns them off for every other test)."""
    env = {"PYTHONPATH": str(tmp_path), "HBENCH_LOAD_PLUGINS": None}
    return tmp_path, env


def test_broken_entry_point_is_listed_and_others_still_work(plugin_path):
    root, env = plugin_path
    make_dist(root, "hbench-broken", "hbench_broken", "raise ImportError('this plugin is broken on purpose')\n")
    make_dist(root, "hbench-fine", "hbench_fine", """
        from hbench import hookimpl
        from hbench.models import LaneSpec

        @hookimpl
        def hbench_register_lanes(register):
            register(LaneSpec(name="fine-lane", kind="openai", base_url="http://127.0.0.1:1/v1"))
    """)
    r = hbench_cmd(sys.executable, "plugins", "--json", env=env)
    assert r.returncode == 0, r.stderr
    by_name = {p["name"]: p for p in json.loads(r.stdout)}
    assert by_name["hbench_broken"]["status"] == "error"
    assert "broken on purpose" in by_name["hbench_broken"]["error"]
    assert by_name["hbench_fine"]["status"] == "ok"
    assert by_name["hbench_fine"]["version"] == "0.3"
    # other commands keep working, and see the healthy plugin
    r = hbench_cmd(sys.executable, "lanes", env=env)
    assert r.returncode == 0 and "fine-lane" in r.stdout
    # --strict-plugins makes it fatal, exit 2, naming the plugin
    r = hbench_cmd(sys.executable, "--strict-plugins", "lanes", env=env)
    assert r.returncode == 2
    assert "hbench_broken" in r.stderr and "broken on purpose" in r.stderr
    assert "Traceback" not in r.stderr


def test_misspelled_hook_is_reported(plugin_path):
    root, env = plugin_path
    make_dist(root, "hbench-typo", "hbench_typo", """
        from hbench import hookimpl

        @hookimpl
        def hbench_register_lanez(register):
            pass
    """)
    r = hbench_cmd(sys.executable, "plugins", "--json", env=env)
    assert r.returncode == 0, r.stderr
    typo = next(p for p in json.loads(r.stdout) if p["name"] == "hbench_typo")
    assert typo["status"] == "error" and "hbench_register_lanez" in typo["error"]
    r = hbench_cmd(sys.executable, "--strict-plugins", "plugins", env=env)
    assert r.returncode == 2


def test_allow_and_deny_lists(plugin_path):
    root, env = plugin_path
    for n in ("alpha", "beta"):
        make_dist(root, f"hbench-{n}", f"hbench_{n}", f"""
            from hbench import hookimpl
            from hbench.models import LaneSpec

            @hookimpl
            def hbench_register_lanes(register):
                register(LaneSpec(name="{n}-lane", kind="openai", base_url="http://127.0.0.1:1/v1"))
        """)

    def lanes(**extra):
        r = hbench_cmd(sys.executable, "lanes", env={**env, **extra})
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert "alpha-lane" in lanes() and "beta-lane" in lanes()
    out = lanes(HBENCH_LOAD_PLUGINS="hbench_alpha")
    assert "alpha-lane" in out and "beta-lane" not in out
    out = lanes(HBENCH_LOAD_PLUGINS="")  # empty allow-list: no third-party plugin
    assert "alpha-lane" not in out and "beta-lane" not in out
    out = lanes(HBENCH_DISABLE_PLUGINS="hbench-beta")  # by distribution name
    assert "alpha-lane" in out and "beta-lane" not in out
    r = hbench_cmd(sys.executable, "plugins", "--json", env={**env, "HBENCH_DISABLE_PLUGINS": "hbench_beta"})
    beta = next(p for p in json.loads(r.stdout) if p["name"] == "hbench_beta")
    assert beta["status"] == "disabled"


# --------------------------------------------------------------------------- real installs


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    """A new virtual environment that sees this one's packages (hbench and its
    dependencies), so installing an example changes nothing else."""
    return borrowing_venv(tmp_path_factory.mktemp("venv") / "venv")


def _installed_here(dist: str) -> bool:
    """Whether ``dist`` is installed in this environment (the fresh venv borrows it)."""
    from importlib import metadata

    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_example_lane_plugin_installs_and_shows(fresh_venv):
    env = {"HBENCH_LOAD_PLUGINS": "gptoss"}  # opt in to this one entry-point plugin
    r = hbench_cmd(fresh_venv, "lanes", env=env)
    assert r.returncode == 0, r.stderr
    if not _installed_here("hermes-bench-lane-gptoss"):  # else the fresh venv sees this one's copy
        assert "gpt-oss-20b-llamacpp" not in r.stdout
    pip_install(fresh_venv, ROOT / "examples" / "hermes-bench-lane-gptoss")
    r = hbench_cmd(fresh_venv, "lanes", "--json", env=env)
    assert r.returncode == 0, r.stderr
    lane = next(x for x in json.loads(r.stdout) if x["name"] == "gpt-oss-20b-llamacpp")
    assert lane["kind"] == "llamacpp" and lane["managed"] is True
    assert lane["source"] == "plugin gptoss"
    r = hbench_cmd(fresh_venv, "plugins", "--json", env=env)
    gptoss = next(p for p in json.loads(r.stdout) if p["name"] == "gptoss")
    assert gptoss["dist"] == "hermes-bench-lane-gptoss" and gptoss["version"] == "0.1.0"
    assert gptoss["hooks"] == ["hbench_register_lanes"] and gptoss["status"] == "ok"


def test_example_reporter_plugin_installs_and_writes_csv(fresh_venv, tmp_path):
    pip_install(fresh_venv, ROOT / "examples" / "hermes-bench-reporter-csv")
    env = {"HBENCH_LOAD_PLUGINS": "csv"}  # opt in to this one entry-point plugin
    r = hbench_cmd(fresh_venv, "reporters", "--json", env=env)
    assert r.returncode == 0, r.stderr
    csv_rep = next(x for x in json.loads(r.stdout) if x["name"] == "csv")
    assert csv_rep["plugin"] == "csv"
    # drive the reporter through the same registry hbench uses, in that environment
    script = textwrap.dedent(f"""
        from pathlib import Path
        from hbench.plugin_manager import get_registries
        from hbench.models import Scorecard
        sc = Scorecard(lane={{"name": "l1", "kind": "openai", "model": "m"}},
                       suite={{"name": "s", "sha256": "abc"}}, runs=1, core_pass=1, core_n=2,
                       pass_rate=0.5, pass_rate_ci95=[0.1, 0.9], pass_hat_k={{"1": 0.5}},
                       consistency=1.0, runaway_rate=0.0, correct_tool_rate=1.0,
                       format_error_rate=0.0, rankable=True, gate={{"passed": True}})
        paths = get_registries().reporters.get("csv").write([sc], Path({str(tmp_path)!r}), {{}})
        print(paths[0].read_text())
    """)
    r = subprocess.run([str(fresh_venv), "-c", script], capture_output=True, text=True, timeout=60,
                       env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("lane,kind,model,agent,rankable,core_pass,core_n,pass_rate")
    assert lines[1].startswith("l1,openai,m,,True,1,2,0.5,0.1,0.9")


#: modules `hbench plugins` / `hbench --help` must not import (BENCHMARKS.md 5, start-up < 300 ms):
#: httpx ~75 ms (and rich via httpx._main), psutil ~45 ms, pydantic ~80 ms (typer >= 0.29
#: validates options through it), rich ~110 ms (typer's rich help; structlog.dev imports it),
#: structlog (imported on the first log call), and the optional heavy ones
HEAVY = ("httpx", "psutil", "pydantic", "rich", "structlog", "llama_cpp", "pynvml", "torch", "httpx_sse",
         "sqlalchemy", "alembic", "psycopg",  # the run database: only when a history command or the writer runs
         "mcp", "mcp_types", "anyio", "starlette")  # MCP: only in mcp-serve and the builtin-mcp agent's attempts


def test_listing_plugins_is_fast_and_imports_nothing_heavy():
    code = ("import sys, time; t=time.perf_counter(); from hbench.plugin_manager import get_plugins; "
            "p=get_plugins(); p.registries; print(time.perf_counter()-t); "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    elapsed, heavy = r.stdout.strip().splitlines()
    assert heavy == "[]", f"heavy modules imported while listing plugins: {heavy}"


@pytest.mark.parametrize("argv", [["plugins"], ["plugins", "--json"], ["--help"], ["run", "--help"],
                                  ["history", "--help"], ["compare", "--help"],
                                  # built-in command plugins: the module doing the work loads when it runs
                                  ["doctor", "--help"], ["throughput", "--help"], ["probe", "--help"],
                                  ["report", "--help"], ["validate", "--help"]])
def test_cli_listing_and_help_import_nothing_heavy(argv: list[str], tmp_path: Path) -> None:
    """The command as a user runs it (typer parsing, plugin loading, output), not just the
    plugin manager: each heavy module above is imported only by the command that needs it."""
    code = ("import sys\nfrom hbench.cli import main\n"
            f"sys.argv = ['hbench', *{argv!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    rc = e.code\nelse:\n    rc = 0\n"
            f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules), rc, file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    line = [x for x in r.stderr.splitlines() if x.startswith("HEAVY ")]
    assert line, r.stderr[-2000:]
    assert line[-1] == "HEAVY [] 0", f"hbench {' '.join(argv)}: {line[-1]}; stdout: {r.stdout[:300]}"
    assert "Usage" in r.stdout or "builtin" in r.stdout or "hbench.plugins" in r.stdout


# --------------------------------------------------------------------------- hermetic tests


def test_tests_load_only_builtin_plugins():
    """conftest.py keeps installed entry-point plugins out of every test (and its
    subprocesses) unless the test opts in."""
    assert os.environ.get("HBENCH_LOAD_PLUGINS") == ""
    assert all(i.builtin or i.status == "disabled" for i in get_plugins().plugin_list())


def test_plugin_fixture_works_when_the_plugin_is_also_installed(tmp_path, monkeypatch):
    from hbench.plugin_manager import reset_plugins
    from hbench.testing import plugins_for_test

    make_dist(tmp_path, "hbench-twin", "hbench_twin", """
        from hbench import hookimpl
        from hbench.models import LaneSpec

        @hookimpl
        def hbench_register_lanes(register):
            register(LaneSpec(name="twin-lane", kind="openai", base_url="http://127.0.0.1:1/v1"))
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("HBENCH_LOAD_PLUGINS", "hbench_twin")  # installed, and loaded
    reset_plugins()
    import hbench_twin

    pl = get_plugins()
    assert pl.infos["hbench_twin"].dist == "hbench-twin"
    assert pl.registries.lanes.plugin_of("twin-lane") == "hbench_twin"
    with plugins_for_test() as register:  # the test registers the very module it ships
        register(hbench_twin, name="under-test")
        assert pl.registries.lanes.plugin_of("twin-lane") == "under-test"  # once, not a duplicate
        assert all(i.status in ("ok", "disabled") for i in pl.plugin_list())
    assert pl.registries.lanes.plugin_of("twin-lane") == "hbench_twin"  # the installed copy is back
    assert pl.infos["hbench_twin"].dist == "hbench-twin"


# --------------------------------------------------------------------------- hooks through pluggy


def test_tryfirst_trylast_and_wrappers_hold_on_a_broadcast_hook():
    """Broadcasts go through pluggy, one implementation at a time: tryfirst/trylast order
    them, a wrapper sees each call, and one failing implementation stops no other."""
    from structlog.testing import capture_logs

    pl = get_plugins()
    order: list[str] = []

    class Plain:
        @hookimpl
        def hbench_lane_finished(self, scorecard, lane):
            order.append("plain")

    class Last:
        @hookimpl(trylast=True)
        def hbench_lane_finished(self, scorecard, lane):
            order.append("last")

    class First:
        @hookimpl(tryfirst=True)
        def hbench_lane_finished(self, scorecard, lane):
            order.append("first")

    class Broken:
        @hookimpl
        def hbench_lane_finished(self, scorecard, lane):
            order.append("broken")
            raise RuntimeError("sink down")

    class Wrapper:
        @hookimpl(wrapper=True)
        def hbench_lane_finished(self, scorecard, lane):
            order.append("wrap-in")
            try:
                return (yield)
            finally:
                order.append("wrap-out")

    # registered so that registration order is the opposite of the asked-for order
    for name, plugin in (("last", Last()), ("plain", Plain()), ("first", First()), ("broken", Broken()),
                         ("wrapper", Wrapper())):
        pl.register(plugin, name=name)
    from hbench.logging import configure

    configure("json", "debug")  # as `hbench --log-level debug`
    try:
        with capture_logs() as logs:
            pl.broadcast("hbench_lane_finished", scorecard=None, lane=None)
    finally:
        configure()  # back to the default (warning)
    calls = [x for x in order if not x.startswith("wrap")]
    assert calls[0] == "first" and calls[-1] == "last"
    assert set(calls) == {"first", "plain", "broken", "last"}
    builtins_with_it = [i for i in pl._impls("hbench_lane_finished", call_order=True) if pl.infos[i.plugin_name].builtin]
    assert order.count("wrap-in") == order.count("wrap-out") == 4 + len(builtins_with_it)
    assert any(e["event"] == "plugin.hook_failed" and e["plugin"] == "broken" for e in logs)
    tb = [e for e in logs if e["event"] == "plugin.traceback"]
    assert tb and tb[0]["log_level"] == "debug" and tb[0]["plugin"] == "broken"
    assert "Traceback (most recent call last)" in tb[0]["traceback"] and "sink down" in tb[0]["traceback"]


def test_registration_keeps_registration_order_through_pluggy():
    """A name belongs to the first plugin that registered it, even when a later plugin
    asks to run first."""
    pl = get_plugins()

    class Early:
        @hookimpl
        def hbench_register_lanes(self, register):
            register(LaneSpec(name="same", kind="openai", base_url="http://127.0.0.1:9/v1"))

    class Late:
        @hookimpl(tryfirst=True)
        def hbench_register_lanes(self, register):
            register(LaneSpec(name="same", kind="openai", base_url="http://127.0.0.1:9/v1"))

    pl.register(Early(), name="early")
    pl.register(Late(), name="late")
    assert pl.registries.lanes.plugin_of("same") == "early"
    assert pl.infos["late"].status == "error" and "duplicate lane 'same'" in pl.infos["late"].error


def test_readme_plugin_example_runs_verbatim(tmp_path, monkeypatch, hbench_plugin):
    """The README's plugin example, copied as it stands, imports only from ``hbench`` and
    registers its lane."""
    import importlib
    import re

    readme = (ROOT / "README.md").read_text()
    m = re.search(r"```python\n(# my_hbench_lane\.py\n.*?)```", readme, re.S)
    assert m, "README.md: the plugin example (# my_hbench_lane.py) is gone"
    source = m.group(1)
    imports = re.findall(r"^(?:from|import) (\S+)", source, re.M)
    assert imports and set(imports) == {"hbench"}, imports
    (tmp_path / "my_hbench_lane.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("my_hbench_lane")
    hbench_plugin(module, name="mylane")
    spec = get_plugins().registries.lanes.get("my-lane")
    assert spec.kind == "llamacpp" and spec.base_url == "http://127.0.0.1:8090/v1"
    assert get_plugins().registries.lanes.plugin_of("my-lane") == "mylane"


def test_public_api_is_reexported_from_hbench():
    import hbench
    from hbench.lanes import LaneKind
    from hbench.models import LaneSpec, Scorecard
    from hbench.reporters import Reporter

    assert (hbench.LaneSpec, hbench.Scorecard, hbench.LaneKind, hbench.Reporter) == (
        LaneSpec, Scorecard, LaneKind, Reporter)
    for name in hbench.__all__:
        assert getattr(hbench, name) is not None, name


def test_lane_listing_never_changes_a_plugins_lanespec(hbench_plugin):
    """One lane listing (hbench.config.available_lanes) for `hbench lanes`, doctor and run;
    it works on copies (the CLI's own listing used to set .source on the plugin's spec)."""
    from hbench import cli
    from hbench.config import available_lanes, load_config
    from hbench.runner import available_lanes as runners

    class Lanes:
        @hookimpl
        def hbench_register_lanes(self, register):
            register(LaneSpec(name="mine", kind="openai", base_url="http://127.0.0.1:9/v1"))

    hbench_plugin(Lanes(), name="lanes-plugin")
    reg = get_plugins().registries
    original = reg.lanes.get("mine")
    listed = cli.all_lanes()["mine"]
    assert listed.source == "plugin lanes-plugin" and original.source in (None, "")
    assert listed is not original
    assert runners is available_lanes
    assert available_lanes(reg, load_config(None, lane_kinds=reg.lane_kinds.names()))["mine"] == listed


# --------------------------------------------------------------------------- command plugins


def test_a_command_plugin_that_fails_to_register_is_isolated(hbench_plugin):
    """hbench_register_commands raising (after adding a command), or taking a name already
    taken, is one plugin's failure: none of its commands is added, `hbench plugins` marks
    it broken, every other command still works (--strict-plugins: the test below)."""
    from typer.testing import CliRunner

    from hbench.cli import app

    class Good:
        @hookimpl
        def hbench_register_commands(self, app):
            @app.command("hello")
            def hello(name: str = typer_option("--name", "Who to greet.")) -> None:
                """Say hello."""
                print(f"hello {name}")

    class Broken:
        @hookimpl
        def hbench_register_commands(self, app):
            @app.command("half")
            def half() -> None:
                """Never added: its plugin failed."""

            raise RuntimeError("commands broken on purpose")

    class Taken:
        @hookimpl
        def hbench_register_commands(self, app):
            @app.command("validate")
            def validate() -> None:
                """Would replace the built-in validate."""

    hbench_plugin(Good(), name="good-commands")
    hbench_plugin(Broken(), name="broken-commands")
    hbench_plugin(Taken(), name="taken-commands")
    r = CliRunner().invoke(app, ["--help"])
    assert r.exit_code == 0, r.output
    assert "hello" in r.output and "half" not in r.output and "doctor" in r.output
    r = CliRunner().invoke(app, ["hello", "--name", "you"])
    assert r.stdout == "hello you\n" and "plugin.broken" in r.stderr and "broken-commands" in r.stderr
    assert CliRunner().invoke(app, ["half"]).exit_code == 2  # no such command
    r = CliRunner().invoke(app, ["validate", "--help"])
    assert "A suite name" in r.output  # the built-in, not the plugin's
    by_name = {p["name"]: p for p in json.loads(CliRunner().invoke(app, ["plugins", "--json"]).stdout)}
    assert by_name["good-commands"]["status"] == "ok"
    assert by_name["broken-commands"]["status"] == "error"
    assert "commands broken on purpose" in by_name["broken-commands"]["error"]
    assert by_name["taken-commands"]["status"] == "error"
    assert "command validate already exists" in by_name["taken-commands"]["error"]


def typer_option(flag: str, help: str):  # noqa: A002, ANN201
    import typer

    return typer.Option("world", flag, help=help)


def test_third_party_command_plugin_installs_and_runs(plugin_path):
    """An installed distribution's hbench_register_commands adds a command: listed in
    `hbench --help` beside the built-in ones, with its help, and it runs; another whose
    registration raises is listed broken, and fatal (exit 2) with --strict-plugins."""
    root, env = plugin_path
    make_dist(root, "hbench-badcmd", "hbench_badcmd", """
        from hbench import hookimpl

        @hookimpl
        def hbench_register_commands(app):
            raise RuntimeError("no commands today")
    """)
    make_dist(root, "hbench-greet", "hbench_greet", """
        import typer

        from hbench import hookimpl

        @hookimpl
        def hbench_register_commands(app):
            @app.command("greet")
            def greet(name: str = typer.Option("world", "--name", help="Who to greet.")) -> None:
                '''Greet someone (a third-party command).'''
                typer.echo(f"hello {name}")
    """)
    r = hbench_cmd(sys.executable, "--help", env=env)
    assert r.returncode == 0, r.stderr
    assert "greet" in r.stdout and "Greet someone" in r.stdout and "doctor" in r.stdout
    r = hbench_cmd(sys.executable, "greet", "-h", env=env)
    assert r.returncode == 0 and "--name NAME" in r.stdout and "Who to greet." in r.stdout
    r = hbench_cmd(sys.executable, "greet", "--name", "bench", env=env)
    assert (r.returncode, r.stdout) == (0, "hello bench\n"), r.stderr
    r = hbench_cmd(sys.executable, "plugins", "--json", env=env)
    greet = next(p for p in json.loads(r.stdout) if p["name"] == "hbench_greet")
    assert greet["status"] == "ok" and greet["hooks"] == ["hbench_register_commands"]
    bad = next(p for p in json.loads(r.stdout) if p["name"] == "hbench_badcmd")
    assert bad["status"] == "error" and "no commands today" in bad["error"]
    for argv in (["greet"], ["plugins"], ["run", "--help"]):
        r = hbench_cmd(sys.executable, "--strict-plugins", *argv, env=env)
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        assert "hbench_badcmd" in r.stderr and "no commands today" in r.stderr and "Traceback" not in r.stderr
