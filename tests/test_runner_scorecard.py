"""A lane's scorecard is assembled once, complete, and never changed afterwards (issue 16).

The runner builds every scorecard through :func:`hbench.scorecard_build.build_scorecard`;
here that builder hands out a frozen scorecard (setting any field raises) and a snapshot of
its JSON. A runner that set a field after building (as it once set throughput, telemetry,
provenance... on what ``score_lane`` returned) fails with FrozenInstanceError; one that
changed a dict or list inside it (``provenance["node"] = ...``) fails the snapshot check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from hbench import lane_run
from hbench.models import Scorecard
from hbench.report import scorecard_to_dict
from hbench.runner import run
from test_runner import opts, steady_scripts


@attrs.frozen
class FrozenScorecard(Scorecard):
    """A Scorecard whose fields cannot be set."""


def _json(sc: Scorecard) -> str:
    return json.dumps(scorecard_to_dict(sc), sort_keys=True)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Scorecard, str]]:
    """Every scorecard the run builds, frozen, with its JSON as built."""
    out: list[tuple[Scorecard, str]] = []
    real = lane_run.build_scorecard

    def build_frozen(run_state: Any, outcome: Any) -> Scorecard:
        sc = real(run_state, outcome)
        frozen = FrozenScorecard(**{f.name: getattr(sc, f.name) for f in attrs.fields(Scorecard)})
        out.append((frozen, _json(frozen)))
        return frozen

    monkeypatch.setattr(lane_run, "build_scorecard", build_frozen)
    return out


def test_frozen_scorecard_refuses_a_change() -> None:
    """The check below can fail: a frozen scorecard refuses a field being set."""
    sc = FrozenScorecard(lane={}, suite={}, runs=1, core_pass=0, core_n=0, pass_rate=0.0, pass_rate_ci95=[0, 0],
                         pass_hat_k={}, consistency=None, runaway_rate=0, correct_tool_rate=0, format_error_rate=0,
                         rankable=False, gate={})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        sc.warnings = ["changed"]  # type: ignore[misc]


@pytest.mark.parametrize("parallel", [1, 2])
def test_the_runner_never_changes_a_scorecard_after_building_it(
        scripted_server: Any, tmp_path: Path, built: list[tuple[Scorecard, str]], parallel: int) -> None:
    srv = scripted_server(steady_scripts())
    extra = {"lanes": None}
    if parallel > 1:  # two lanes side by side (hbench.parallel): the same lane loop, other threads
        toml = tmp_path / "hbench.toml"
        toml.write_text("".join(f'[lanes.{n}]\nbase_url = "{srv.url}"\nmodel = "scripted-model"\n' for n in "ab"))
        extra = {"config": str(toml), "lane_url": None, "model": None, "lanes": "a,b", "parallel_lanes": 2}
    result = run(opts(srv, tmp_path / "out", runs=1, **extra))
    assert result.exit_code == 0, result.verdict
    assert len(built) == len(result.scorecards) == parallel
    for sc, as_built in built:
        assert _json(sc) == as_built, "a scorecard was changed after it was built"
        name = sc.lane["name"]
        on_disk = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert on_disk["provenance"] == json.loads(as_built)["provenance"]
        assert on_disk["warnings"] == sc.warnings and on_disk["throughput"] == json.loads(as_built)["throughput"]
    # what the run returns is what was built (read back from its compressed copies)
    assert sorted(_json(sc) for sc in result.scorecards) == sorted(s for _, s in built)


def test_a_lost_lane_scorecard_is_built_whole_with_its_node(
        scripted_server: Any, tmp_path: Path, built: list[tuple[Scorecard, str]]) -> None:
    """The scorecard of a lane that never ran (its Ray node lost) comes from the same builder,
    with the node where it was to run in its provenance from the start."""
    from hbench.run_state import RunState

    srv = scripted_server(steady_scripts())
    state = RunState(opts(srv, tmp_path / "out", runs=1))
    state.prepare()
    try:
        sc = lane_run.lost_lane_scorecard(state, state.lanes[0], "Ray node spark9 was lost", "2026-01-01T00:00:00",
                                          node="spark9")
    finally:
        state.journal.close()
        state.outdir.release()
    assert isinstance(sc, FrozenScorecard) and len(built) == 1
    assert sc.provenance["node"] == "spark9" and not sc.complete
    assert sc.attempts_planned > 0 and sc.attempts_scored == 0  # every planned attempt missing
    assert sc.warnings and "Ray node spark9 was lost" in sc.warnings[0]
