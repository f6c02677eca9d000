"""Errored is its own outcome; completeness, the gate's evidence, ranking rules (pure
scoring and report tables). The same rules end to end through `hbench run` are in
tests/test_errored_runs.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbench.models import Attempt, CheckResult, Prompt, ToolCall
from hbench.plugins.checks import Honesty, Substring
from hbench.plugins.reporters.markdown import summary_markdown
from hbench.plugins.reporters.tables import build_tables, headline, host_name
from hbench.report import (
    ScorecardError,
    scorecard_from_dict,
    scorecard_to_dict,
    validate_scorecard,
)
from hbench.runner import parse_fail_under
from hbench.errors import BadInput
from hbench.scoring import (
    error_summary,
    fail_under_failures,
    incomplete_reason,
    is_errored,
    rank,
    score_lane,
    score_prompt,
)

SUITE = {"name": "s", "version": "1", "sha256": "a" * 64, "fixtures_sha256": "b" * 64}
HTTP503 = ("TransportError: lane 'x' (http://127.0.0.1:9/v1): HTTP 503: upstream unavailable; "
           "gave up after 4 tries")


def prompt(pid: str, *, core: bool = True, honesty: bool = False) -> Prompt:
    check = Honesty() if honesty else Substring(any=["x"])
    return Prompt(id=pid, prompt="q", check=check, category="c", core=core, expect_tool_any=())


def att(n: int, outcome: str, answer: str | None = None) -> Attempt:
    """outcome: 'pass', 'fail' (a wrong answer: the model's), 'runaway' or 'err' (the stack's)."""
    passed = outcome == "pass"
    return Attempt(lane="L", prompt_id="p", n=n, answer=answer if answer is not None else outcome,
                   passed=passed, runaway="loop" if outcome == "runaway" else None,
                   error=HTTP503 if outcome == "err" else None,
                   check=CheckResult(passed, "ok" if passed else "empty answer"), tool_ok=True,
                   tool_calls=[ToolCall(name="read_file", arguments={})], wall_s=1.0)


def lane(name: str, per_prompt: dict[str, list[str]], *, runs: int = 3, honesty: str | None = "hon",
         **kw) -> object:
    scores = []
    for pid, outcomes in per_prompt.items():
        p = prompt(pid, honesty=pid == honesty)
        scores.append(score_prompt(p, [att(i + 1, o) for i, o in enumerate(outcomes)]))
    return score_lane(lane_info(name), SUITE, scores, runs=runs, **kw)


def lane_info(name: str) -> dict:
    return {"name": name, "kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}


# --------------------------------------------------------------------------- errored attempts

outcome = st.sampled_from(["pass", "fail", "runaway"])
prompt_outcomes = st.lists(outcome, min_size=1, max_size=5)


@settings(max_examples=150, deadline=None)
@given(st.lists(prompt_outcomes, min_size=1, max_size=4), prompt_outcomes, st.data())
def test_errored_attempts_never_change_quality_figures_or_the_gate(core_prompts, honesty_prompt, data):
    """Insert errored attempts anywhere (any prompt, any position, any number): pass_rate,
    core_pass, consistency and the gate are what the scored attempts alone give."""
    clean = {f"p{i}": o for i, o in enumerate(core_prompts)} | {"hon": honesty_prompt}
    dirty = {}
    for pid, outcomes in clean.items():
        seq = list(outcomes)
        for _ in range(data.draw(st.integers(0, 3), label=f"errors in {pid}")):
            seq.insert(data.draw(st.integers(0, len(seq)), label="position"), "err")
        dirty[pid] = seq
    a, b = lane("a", clean), lane("a", dirty)
    assert b.pass_rate == pytest.approx(a.pass_rate)
    assert (b.core_pass, b.core_n) == (a.core_pass, a.core_n)
    assert b.consistency == (pytest.approx(a.consistency) if a.consistency is not None else None)
    assert b.gate["status"] == a.gate["status"] and b.gate["failed"] == a.gate["failed"]
    assert b.gate["reason"] == a.gate["reason"]  # the reason quotes a scored attempt, never an errored one
    assert b.attempts_scored == a.attempts_scored == sum(map(len, clean.values()))
    assert b.errored == sum(o == "err" for seq in dirty.values() for o in seq)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["pass", "fail", "err"]), min_size=1, max_size=4), min_size=1, max_size=4),
       st.lists(st.booleans(), min_size=0, max_size=3))
def test_a_lane_with_any_errored_attempt_is_never_ranked(prompts, others):
    per = {f"p{i}": o for i, o in enumerate(prompts)} | {"hon": ["pass", "pass", "pass"]}
    sc = lane("x", per)
    cards = [sc] + [lane(f"ok{i}", {"p0": ["pass"] * 3 if good else ["fail"] * 3, "hon": ["pass"] * 3})
                    for i, good in enumerate(others)]
    (mine,) = [r for r in rank(cards) if r.scorecard is sc]
    if sc.errored:
        assert not sc.complete and not sc.rankable and mine.rank is None
        assert mine.reason.startswith("incomplete: ") and "HTTP 503: upstream unavailable" in mine.reason
    else:
        assert sc.complete


def test_an_all_errored_lane_is_not_ranked_first_and_says_503_not_honesty():
    """The bug: a lane answering 500/503 to everything had empty answers that all 'agree'
    (consistency 100%) and was ranked first."""
    broken = lane("broken", {"p0": ["err"] * 3, "p1": ["err"] * 3, "hon": ["err"] * 3})
    ok = lane("ok", {"p0": ["pass", "fail", "fail"], "p1": ["fail"] * 3, "hon": ["pass"] * 3})
    ranked = rank([broken, ok])
    assert [(r.scorecard.lane["name"], r.rank) for r in ranked] == [("ok", 1), ("broken", None)]
    assert broken.consistency is None and broken.core_n == 0
    assert broken.incomplete_reason == "9 of 9 attempts errored: HTTP 503: upstream unavailable"
    assert "honesty" not in ranked[1].reason and "503" in ranked[1].reason
    # the gate was not evaluated, and the gate's own reason says whose fault that is
    assert broken.gate["status"] == "not evaluated" and broken.gate["passed"] is None
    assert "the serving stack failed, not the model" in broken.gate["reason"]
    assert "empty answer" not in broken.gate["reason"]


def test_errored_attempt_why_is_the_error_not_the_check():
    s = score_prompt(prompt("hon", honesty=True), [att(1, "err"), att(2, "pass")])
    assert [a.why for a in s.attempts] == [HTTP503, "ok"]
    assert (s.runs, s.errors, s.passes, s.pass_rate, s.majority_pass) == (1, 1, 1, 1.0, True)


def test_error_summary_keeps_what_a_person_needs():
    assert error_summary(HTTP503) == "HTTP 503: upstream unavailable"
    assert error_summary("RequestRejected: lane 'q' (http://h:1/v1): HTTP 404: model 'x' not found") == \
        "HTTP 404: model 'x' not found"
    assert error_summary("agent 'hermes' crashed: RuntimeError: boom") == "agent 'hermes' crashed: RuntimeError: boom"
    assert error_summary("") == "unknown error"
    assert incomplete_reason(40, 12, 0, [HTTP503] * 11 + ["TransportError: connection refused"]) == \
        "12 of 40 attempts errored: HTTP 503: upstream unavailable (and 1 other error)"
    assert incomplete_reason(10, 0, 0) is None
    assert is_errored(att(1, "err")) and not is_errored(att(1, "runaway"))


# --------------------------------------------------------------------------- completeness


def test_missing_or_stopped_attempts_make_a_lane_incomplete():
    """The bug: a lane interrupted after 1 of 3 prompts scored 1/1 and outranked a
    complete lane at 2/3."""
    partial = lane("partial", {"p0": ["pass"] * 3, "p1": [], "hon": []}, missing=6, stopped="interrupted (Ctrl-C)")
    full = lane("full", {"p0": ["pass"] * 3, "p1": ["fail"] * 3, "hon": ["pass"] * 3})
    assert not partial.complete and partial.attempts_planned == 9 and partial.attempts_scored == 3
    assert partial.incomplete_reason == "interrupted (Ctrl-C); 6 of 9 attempts did not run"
    ranked = rank([partial, full])
    assert [(r.scorecard.lane["name"], r.rank) for r in ranked] == [("full", 1), ("partial", None)]
    assert ranked[1].reason == "incomplete: interrupted (Ctrl-C); 6 of 9 attempts did not run"
    # a prompt planned but not run is neither skipped nor scored
    p1 = {p.id: p for p in partial.prompts}["p1"]
    assert p1.skipped is None and p1.runs == 0


def test_the_headline_never_names_an_incomplete_lane():
    partial = lane("partial", {"p0": ["pass"] * 3, "hon": ["pass"] * 3}, missing=3, stopped="interrupted (Ctrl-C)")
    t = build_tables([partial])
    assert not t.ranked and "Top lane" not in headline(t)
    full = lane("full", {"p0": ["fail", "pass", "pass"], "hon": ["pass"] * 3})
    t = build_tables([partial, full])
    assert headline(t).startswith("Top lane: full ") and "partial (incomplete)" in headline(t)


# --------------------------------------------------------------------------- the gate needs evidence


def test_a_skipped_honesty_prompt_means_the_gate_was_not_evaluated():
    """The bug: with the honesty prompt skipped (--core-only, a conditional prompt), the gate
    said passed: true and a confabulating lane ranked first."""
    hon = prompt("hon", core=False, honesty=True)
    scores = [score_prompt(prompt("p0"), [att(1, "pass"), att(2, "pass"), att(3, "pass")]),
              score_prompt(hon, [], skipped="not core (--core-only)")]
    sc = score_lane(lane_info("liar"), SUITE, scores, runs=3)
    assert sc.gate["status"] == "not evaluated" and sc.gate["passed"] is None and not sc.rankable
    assert "hon was skipped (not core (--core-only))" in sc.gate["reason"]
    assert sc.complete  # nothing errored or went missing: complete, just not rankable
    (r,) = rank([sc])
    assert r.rank is None and r.reason.startswith("honesty gate not evaluated")


def test_a_suite_without_a_gate_prompt_leaves_the_gate_unevaluated():
    sc = score_lane(lane_info("a"), SUITE, [score_prompt(prompt("p0"), [att(1, "pass")])], runs=1)
    assert sc.gate["status"] == "not evaluated" and "no gate prompt" in sc.gate["reason"]


def test_failed_gate_on_scored_attempts_stays_the_models():
    sc = lane("liar", {"p0": ["pass"] * 3, "hon": ["fail", "err", "fail"]})
    assert sc.gate["status"] == "failed" and sc.gate["failed"] == ["hon"]
    assert "empty answer" in sc.gate["reason"]
    assert rank([sc])[0].reason.startswith("incomplete: 1 of 6 attempts errored")
    assert "also failed the honesty gate" in rank([sc])[0].reason


# --------------------------------------------------------------------------- runs = 1


def test_one_attempt_per_prompt_has_no_consistency():
    """The bug: with runs = 1, consistency showed 100%."""
    sc = lane("one", {"p0": ["pass"], "p1": ["fail"], "hon": ["pass"]}, runs=1)
    assert sc.consistency is None and all(p.agreement is None for p in sc.prompts)
    t = build_tables([sc])
    assert t.ranked[0].consistency == "–"
    assert "| 1 | one |" in summary_markdown(t) and "100%" not in t.ranked[0].consistency
    validate_scorecard(sc)  # null consistency and agreement are valid 1.1


# --------------------------------------------------------------------------- scorecard schema 1.1


def test_scorecard_1_1_round_trips_and_validates():
    sc = lane("broken", {"p0": ["err", "pass", "pass"], "hon": ["pass"] * 3})
    data = scorecard_to_dict(sc)
    assert data["schema"] == "hbench.scorecard/1.1"
    assert {k: data[k] for k in ("complete", "attempts_planned", "attempts_scored", "errored")} == \
        {"complete": False, "attempts_planned": 6, "attempts_scored": 5, "errored": 1}
    assert data["incomplete_reason"] == "1 of 6 attempts errored: HTTP 503: upstream unavailable"
    validate_scorecard(data)
    back = scorecard_from_dict(data)
    assert back.complete is False and back.errored == 1 and back.gate["status"] == "passed"
    missing = {k: v for k, v in data.items() if k != "complete"}
    with pytest.raises(ScorecardError, match="complete"):
        validate_scorecard(missing)


def old_card(path: Path) -> dict:
    return json.loads(path.read_text())


DATA = Path(__file__).parent / "data" / "scorecards"


def test_a_1_0_scorecard_is_still_read():
    data = old_card(DATA / "llamacpp-qwen3-8b.json")
    assert data["schema"] == "hbench.scorecard/1"
    validate_scorecard(data)
    sc = scorecard_from_dict(data)
    assert sc.complete and sc.errored == 0 and sc.gate["status"] == "passed"
    assert host_name(sc) == "spark-01"


def test_a_1_0_scorecard_with_errors_or_an_interruption_reads_as_incomplete():
    data = old_card(DATA / "llamacpp-qwen3-8b.json")
    data["prompts"][0]["errors"] = 2
    data["prompts"][0]["attempts"][0]["error"] = HTTP503
    data["provenance"]["host"] = {"name": "box-7"}  # what 1.0 runners wrote
    sc = scorecard_from_dict(data)
    assert not sc.complete and sc.errored == 2 and "HTTP 503: upstream unavailable" in sc.incomplete_reason
    assert host_name(sc) == "box-7"
    data = old_card(DATA / "llamacpp-qwen3-8b.json")
    data["warnings"] = ["interrupted: 3 planned attempts did not run; resume with hbench run --resume"]
    sc = scorecard_from_dict(data)
    assert not sc.complete and sc.incomplete_reason.startswith("interrupted: 3 planned attempts did not run")
    assert rank([sc])[0].rank is None


def test_a_newer_minor_schema_is_read_and_another_major_refused():
    data = scorecard_to_dict(lane("a", {"p0": ["pass"] * 3, "hon": ["pass"] * 3}))
    data["schema"] = "hbench.scorecard/1.7"
    data["a_key_from_the_future"] = 1
    assert scorecard_from_dict(data).complete
    data["schema"] = "hbench.scorecard/2"
    with pytest.raises(ScorecardError, match="reads 'hbench.scorecard/1' and 'hbench.scorecard/1.1'"):
        scorecard_from_dict(data)


# --------------------------------------------------------------------------- comparable sets


def core_only_lane(name: str) -> object:
    """Ran p0 and p1 but not the non-core honesty prompt."""
    scores = [score_prompt(prompt("p0"), [att(i, "pass") for i in (1, 2, 3)]),
              score_prompt(prompt("p1"), [att(i, "pass") for i in (1, 2, 3)]),
              score_prompt(prompt("hon", core=False, honesty=True), [], skipped="not core (--core-only)")]
    return score_lane(lane_info(name), SUITE, scores, runs=3)


def test_lanes_of_different_prompt_sets_are_refused_or_ranked_apart():
    full = lane("full", {"p0": ["pass"] * 3, "p1": ["fail"] * 3, "hon": ["pass"] * 3})
    part = core_only_lane("part")
    with pytest.raises(ScorecardError, match=r"(?s)different prompt sets.*part: s 1 @aaaaaaaa, 2 prompts "
                                             r"\(without hon\).*--allow-mixed"):
        build_tables([full, part])
    t = build_tables([full, part], allow_mixed=True)
    assert len(t.groups) == 2 and {r.group for r in t.ranked + t.unrankable} == set(t.groups)
    text = summary_markdown(t)
    assert "**Mixed prompt sets**" in text and text.count("**Ranked within ") == 2


def test_same_prompt_set_is_one_table():
    a = lane("a", {"p0": ["pass"] * 3, "hon": ["pass"] * 3})
    b = lane("b", {"p0": ["fail"] * 3, "hon": ["pass"] * 3})
    t = build_tables([a, b])
    assert not t.mixed and len(t.groups) == 1 and [r.rank for r in t.ranked] == [1, 2]


# --------------------------------------------------------------------------- --fail-under


def test_fail_under_names_the_lane_and_what_it_missed():
    good = lane("good", {"p0": ["pass"] * 3, "p1": ["pass"] * 3, "hon": ["pass"] * 3})
    weak = lane("weak", {"p0": ["pass"] * 3, "p1": ["fail"] * 3, "hon": ["pass"] * 3})
    liar = lane("liar", {"p0": ["pass"] * 3, "p1": ["pass"] * 3, "hon": ["fail"] * 3})
    broken = lane("broken", {"p0": ["err"] * 3, "p1": ["pass"] * 3, "hon": ["pass"] * 3})
    lines = fail_under_failures(rank([good, weak, liar, broken]), {"core_pass": 3, "pass_rate": 0.9})
    assert lines[0] == "lane 'weak': core_pass 2 < 3, pass_rate 0.667 < 0.9"
    assert lines[1].startswith("lane 'liar': not ranked (failed the honesty gate")
    assert len(lines) == 2  # the incomplete lane has exit code 3 of its own


def test_parse_fail_under():
    assert parse_fail_under("core_pass=6,pass_rate=0.7") == {"core_pass": 6.0, "pass_rate": 0.7}
    assert parse_fail_under(None) == {}
    for bad, needle in [("core_pass", "METRIC=VALUE"), ("speed=3", "known metric"), ("pass_rate=70", "share"),
                        ("core_pass=2.5", "whole number"), ("pass_rate=x", "not a number"), (",", "empty")]:
        with pytest.raises(BadInput, match=needle):
            parse_fail_under(bad)
