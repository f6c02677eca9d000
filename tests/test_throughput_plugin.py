"""Throughput is a built-in plugin behind ``hbench_measure_throughput`` (a firstresult hook
called through pluggy, one plugin at a time): a third-party plugin replaces the measurement
(tryfirst), a run without any throughput plugin says so on the lane and goes on, and a
plugin that raises is logged while the next one answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from suite_files import one_prompt_suite

from hbench import hookimpl
from hbench.errors import BadInput
from hbench.models import Throughput
from hbench.plugin_manager import HBenchPlugins, get_plugins
from hbench.runner import RunOptions, run

BUILTIN = "hbench.plugins.throughput"


def _run(tmp_path: Path, srv, plugins: HBenchPlugins | None = None):  # noqa: ANN001, ANN202
    return run(RunOptions(lane_url=srv.url, model="scripted-model", runs=1,
                          suite=str(one_prompt_suite(tmp_path / "suite", "tp-plugin")),
                          out=str(tmp_path / "out"), report="json", progress=False), plugins)


class FixedThroughput:
    """A third-party measurement: a fixed figure, asked before the built-in one."""

    def __init__(self) -> None:
        self.lanes: list[str] = []

    @hookimpl(tryfirst=True)
    def hbench_measure_throughput(self, running):  # noqa: ANN001, ANN201
        self.lanes.append(running.spec.name)
        return Throughput(tok_s=123.0, ttft_ms=4.5, samples=[{"run": 1, "source": "fixed"}])


def test_a_tryfirst_plugin_replaces_the_measurement(tmp_path: Path, scripted_server, hbench_plugin) -> None:
    srv = scripted_server({"40 plus 2": [{"content": "42"}]})
    mine = FixedThroughput()
    hbench_plugin(mine, name="fixed-throughput")
    result = _run(tmp_path, srv)
    (sc,) = result.scorecards
    assert result.exit_code == 0, result.verdict
    assert mine.lanes == [sc.lane["name"]]
    assert (sc.throughput.tok_s, sc.throughput.ttft_ms, sc.throughput.error) == (123.0, 4.5, None)
    assert sc.throughput.samples == [{"run": 1, "source": "fixed"}]
    # the built-in probe never ran: the server saw the canary and the attempt, no throughput requests
    assert not any("one to five hundred" in json.dumps(r.body) for r in srv.chat_requests)
    card = json.loads((tmp_path / "out" / f"{sc.lane['name']}.json").read_text())
    assert card["throughput"]["tok_s"] == 123.0


def test_without_a_throughput_plugin_the_lane_says_so_and_the_run_goes_on(tmp_path: Path, scripted_server) -> None:
    srv = scripted_server({"40 plus 2": [{"content": "42"}]})
    plugins = HBenchPlugins()  # a manager of its own, without the built-in throughput plugin
    plugins.unregister(BUILTIN)
    assert plugins.first_result("hbench_measure_throughput", running=None) == (None, None)
    result = _run(tmp_path, srv, plugins)
    (sc,) = result.scorecards
    assert result.exit_code == 0, result.verdict
    assert sc.complete and sc.attempts_scored == 1
    assert sc.throughput.error == "no throughput plugin" and sc.throughput.tok_s is None
    assert "throughput: no throughput plugin" in sc.warnings
    assert not any("one to five hundred" in json.dumps(r.body) for r in srv.chat_requests)


def test_the_builtin_measures_when_no_other_plugin_answers() -> None:
    pl = get_plugins()
    order = [name for name, _ in pl.call_each("hbench_measure_throughput", running=None)]
    assert order == [BUILTIN]
    assert BUILTIN in [i.name for i in pl.plugin_list() if i.builtin]


def test_a_plugin_that_raises_is_logged_and_the_next_answers(hbench_plugin, monkeypatch) -> None:
    warnings: list[dict] = []

    class Logger:
        def warning(self, event: str, **kw) -> None:  # noqa: ANN003
            warnings.append({"event": event, **kw})

        def debug(self, event: str, **kw) -> None:  # noqa: ANN003
            pass

    monkeypatch.setattr("hbench.plugin_manager.get_logger", lambda: Logger())

    class Broken:
        @hookimpl(tryfirst=True)
        def hbench_measure_throughput(self, running):  # noqa: ANN001, ANN201
            raise RuntimeError("measuring went wrong")

    class NotMine:  # None: leave the lane to the next plugin
        @hookimpl(tryfirst=True)
        def hbench_measure_throughput(self, running):  # noqa: ANN001, ANN201
            return None

    class Answers:
        @hookimpl
        def hbench_measure_throughput(self, running):  # noqa: ANN001, ANN201
            return Throughput(tok_s=7.0)

    hbench_plugin(Answers(), name="answers")
    hbench_plugin(NotMine(), name="not-mine")
    hbench_plugin(Broken(), name="broken")
    pl = get_plugins()
    plugin, got = pl.first_result("hbench_measure_throughput", running=None)
    assert (plugin, got.tok_s) == ("answers", 7.0)
    assert [(w["event"], w["plugin"], w["error"]) for w in warnings] == [
        ("plugin.hook_failed", "broken", "RuntimeError: measuring went wrong")]
    with pytest.raises(RuntimeError, match="measuring went wrong"):  # isolate=False: its error goes through
        pl.first_result("hbench_measure_throughput", isolate=False, running=None)


def test_a_bad_input_error_goes_through_when_not_isolated(hbench_plugin) -> None:
    class Refuses:
        @hookimpl(tryfirst=True)
        def hbench_measure_throughput(self, running):  # noqa: ANN001, ANN201
            raise BadInput("install the thing")

    hbench_plugin(Refuses(), name="refuses")
    with pytest.raises(BadInput, match="install the thing"):
        get_plugins().first_result("hbench_measure_throughput", isolate=False, running=None)
