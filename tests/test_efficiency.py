"""Seconds and tokens per solved attempt, goodput within the SLO and p95 per model turn
(hbench.efficiency, issue 21): pure figures, and the same figures in a real run's scorecard."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hbench.efficiency import efficiency
from hbench.models import Attempt, Turn
from hbench.runner import RunOptions, run
from test_runner import steady_scripts


def att(passed: bool, wall: float, tokens: int, turns: list[float], error: str | None = None) -> Attempt:
    return Attempt(lane="l", prompt_id="p", n=1, passed=passed, wall_s=wall, completion_tokens=tokens,
                   error=error, turns=[Turn(wall_s=t) for t in turns])


def test_cost_per_solve_counts_the_failures_and_goodput_the_slo():
    attempts = [att(True, 10, 100, [4, 6]), att(False, 30, 300, [10, 10, 10]), att(True, 50, 200, [50]),
                att(False, 99, 999, [99], error="HTTP 503")]  # errored: the stack's, counted nowhere
    e = efficiency(attempts, slo_s=20)
    assert e["scored"] == 3 and e["solved"] == 2
    assert e["s_per_solved"] == 45.0 and e["solved_wall_s_mean"] == 30.0
    assert e["completion_tokens_per_solved"] == 300.0 and e["solved_completion_tokens_mean"] == 150.0
    assert e["goodput"] == pytest.approx(1 / 3, abs=1e-4)  # only the 10 s solve is within 20 s
    assert e["turns"] == 6 and e["turn_p50_s"] == 10.0 and e["turn_p95_s"] == pytest.approx(40.0)
    assert efficiency(attempts, slo_s=None)["goodput"] == pytest.approx(2 / 3, abs=1e-4)


def test_nothing_solved_gives_none_not_zero():
    e = efficiency([att(False, 5, 10, [5])], slo_s=60)
    assert e["s_per_solved"] is None and e["completion_tokens_per_solved"] is None and e["goodput"] == 0.0
    assert efficiency([], slo_s=60)["goodput"] is None


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 1000), st.integers(0, 10_000)), max_size=30),
       st.floats(0.1, 1000))
def test_goodput_is_a_share_and_a_bigger_slo_never_lowers_it(rows, slo):
    attempts = [att(p, w, t, [w]) for p, w, t in rows]
    small, big = efficiency(attempts, slo)["goodput"], efficiency(attempts, slo * 2)["goodput"]
    if attempts:
        assert 0 <= small <= big <= 1
        solved = sum(p for p, _, _ in rows)
        assert big <= solved / len(rows) + 1e-4  # goodput is rounded to 4 places


def test_a_run_records_efficiency_with_the_slo(scripted_server, tmp_path):
    srv = scripted_server(steady_scripts())
    result = run(RunOptions(lane_url=srv.url, model="scripted-model", suite="hermes-brain-v1", runs=1,
                            out=str(tmp_path / "r"), report="json,md", progress=False, slo_s=30.0))
    (sc,) = result.scorecards
    e = sc.efficiency
    assert e["slo_s"] == 30.0 and e["scored"] == sc.attempts_scored
    assert e["solved"] >= 1 and e["s_per_solved"] > 0 and e["turn_p95_s"] is not None
    import json

    card = json.loads((tmp_path / "r" / f"{sc.lane['name']}.json").read_text())
    assert card["efficiency"] == e
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "## Cost (ready = start to a 1-token answer" in summary and "(≤30 s)" in summary
