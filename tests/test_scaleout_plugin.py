"""Running the lanes elsewhere is a plugin's job (``hbench_run_lanes``, firstresult): a plugin
that takes the run gets every lane and returns their scorecards in lane order; the built-in
scale-out plugin takes only a ``--ray`` run; a ``--ray`` run no plugin takes is bad input
naming what to install. (The real Ray cluster: tests/test_ray.py.)"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from suite_files import one_prompt_suite

from hbench import hookimpl
from hbench.errors import BadInput
from hbench.lane_run import finish_lane, run_lane
from hbench.plugin_manager import HBenchPlugins, get_plugins
from hbench.runner import RunOptions, run
from hbench.scorecard_build import LaneScorecards

SCALEOUT = "hbench.plugins.scaleout"


def _opts(tmp_path: Path, toml: Path, **kw) -> RunOptions:  # noqa: ANN003
    return RunOptions(lanes="all", config=str(toml), runs=1,
                      suite=str(one_prompt_suite(tmp_path / "suite", "run-lanes")),
                      out=str(tmp_path / "out"), report="json", progress=False, **kw)


def _two_lanes(tmp_path: Path, scripted_server) -> Path:  # noqa: ANN001
    toml = tmp_path / "hbench.toml"
    toml.write_text("".join(f'[lanes.{n}]\nbase_url = "{scripted_server({"40 plus 2": [{"content": "42"}]}).url}"\n'
                            f'model = "scripted-model"\nsweep_depths = []\nsweep_concurrency = []\n'
                            for n in ("lane-a", "lane-b")))
    return toml


class LastFirst:
    """A third-party scale-out: runs the lanes itself, last lane first, in this process."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    @hookimpl
    def hbench_run_lanes(self, state, progress):  # noqa: ANN001, ANN201
        parts = [LaneScorecards() for _ in state.lanes]
        for i in reversed(range(len(state.lanes))):
            spec = state.lanes[i]
            self.ran.append(spec.name)
            finish_lane(state, spec, run_lane(state, spec, progress, node="elsewhere"), parts[i])
        return parts


def test_a_plugin_that_takes_the_run_runs_every_lane(tmp_path: Path, scripted_server, hbench_plugin) -> None:
    mine = LastFirst()
    hbench_plugin(mine, name="last-first")
    result = run(_opts(tmp_path, _two_lanes(tmp_path, scripted_server)))
    assert result.exit_code == 0, result.verdict
    assert mine.ran == ["lane-b", "lane-a"]
    # scorecards in lane order, whatever order the plugin ran them in; each written once
    assert [sc.lane["name"] for sc in result.scorecards] == ["lane-a", "lane-b"]
    assert all(sc.complete and sc.attempts_scored == 1 for sc in result.scorecards)
    assert {p.name for p in (tmp_path / "out").glob("lane-*.json")} == {"lane-a.json", "lane-b.json"}


def test_the_builtin_takes_only_a_ray_run() -> None:
    pl = get_plugins()
    assert SCALEOUT in [name for name, _ in pl.call_each("hbench_run_lanes", state=None, progress=None)]
    state = SimpleNamespace(opts=SimpleNamespace(ray=None))
    assert pl.first_result("hbench_run_lanes", isolate=False, state=state, progress=None) == (None, None)


def test_ray_without_a_plugin_that_takes_it_is_bad_input(tmp_path: Path, scripted_server) -> None:
    plugins = HBenchPlugins()  # a manager of its own, without the built-in scale-out plugin
    plugins.unregister(SCALEOUT)
    with pytest.raises(BadInput) as info:
        run(_opts(tmp_path, _two_lanes(tmp_path, scripted_server), ray="auto"), plugins)
    assert info.value.exit_code == 2
    assert "--ray auto: no plugin runs lanes on Ray" in str(info.value)
    assert "pip install 'hermes-bench[ray]'" in str(info.value)
