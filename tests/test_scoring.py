"""Pure scoring: attempt outcome, per-prompt and per-lane figures, the gate, the rank."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbench.models import Attempt, CheckResult, Prompt, Scorecard, Throughput, ToolCall
from hbench.plugins.checks import Honesty, Number, Substring
from hbench.plugin_manager import Registry
from hbench.ranking import rank
from hbench.scoring import (
    agreement,
    attempt_outcome,
    gate_kinds,
    pass_hat_k,
    percentile,
    score_lane,
    score_prompt,
    tool_satisfied,
    wilson,
)

HERMES_ALIASES = {"search_files": ("list", "ls", "glob", "find", "grep")}


def prompt(pid="p", *, core=True, check=None, expect=("read",)) -> Prompt:
    return Prompt(id=pid, prompt="q", check=check or Substring(any=["x"]), category="c", core=core,
                  expect_tool_any=tuple(expect))


def attempt(n, passed, *, answer="x", runaway=None, error=None, wall=1.0, tools=("read_file",), fmt=0) -> Attempt:
    return Attempt(lane="L", prompt_id="p", n=n, answer=answer, passed=passed, runaway=runaway, error=error,
                   wall_s=wall, tool_calls=[ToolCall(name=t, arguments={}) for t in tools],
                   check=CheckResult(passed, "why"), format_errors=fmt, tool_ok=bool(tools))


# --------------------------------------------------------------------------- tools


def test_tool_satisfied_tokens_substrings_and_aliases():
    assert tool_satisfied([], [])
    assert tool_satisfied(["read"], ["read_file"])
    assert tool_satisfied(["READ"], ["Read_File"])
    assert not tool_satisfied(["read"], ["list_dir", "grep"])
    assert tool_satisfied(["list", "glob"], ["glob"])
    assert not tool_satisfied(["list"], ["search_files"])
    assert tool_satisfied(["list"], ["search_files"], HERMES_ALIASES)
    assert tool_satisfied(["calc"], ["calculate"])


def test_attempt_outcome_requires_tool_check_and_no_runaway_or_error():
    p = prompt(expect=("read",))
    ok = attempt(1, True)
    assert attempt_outcome(ok, p) == (True, True)
    assert attempt_outcome(attempt(1, True, tools=("list_dir",)), p) == (False, False)
    assert attempt_outcome(attempt(1, True, runaway="loop"), p) == (True, False)
    assert attempt_outcome(attempt(1, True, error="HTTP 500"), p) == (True, False)
    failed_check = attempt(1, True)
    failed_check.check = CheckResult(False, "no")
    assert attempt_outcome(failed_check, p) == (True, False)
    no_check = attempt(1, True)
    no_check.check = None
    assert attempt_outcome(no_check, p) == (True, False)
    assert attempt_outcome(attempt(1, True, tools=()), prompt(expect=())) == (True, True)


# --------------------------------------------------------------------------- numbers


@given(st.integers(1, 30).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_pass_hat_k_monotone_and_pass_hat_1_is_pass_rate(nc):
    n, c = nc
    values = [pass_hat_k(c, n, k) for k in range(1, n + 1)]
    assert values[0] == pytest.approx(c / n)
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:]))
    assert values[-1] == (1.0 if c == n else 0.0)


@given(st.integers(0, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_the_point_estimate(kn):
    k, n = kn
    lo, hi = wilson(k, n)
    assert 0.0 <= lo <= hi <= 1.0
    if n:
        assert lo <= k / n <= hi


def test_wilson_known_value():
    lo, hi = wilson(8, 10)  # textbook: 0.490 .. 0.943
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)


@given(st.lists(st.sampled_from(["42", "42 ", "Forty-two", "forty-two", "\u201cx\u201d", '"x"', ""]), min_size=1))
def test_agreement_between_one_over_n_and_one(answers):
    a = agreement(answers)
    assert 1 / len(answers) - 1e-12 <= a <= 1.0


def test_agreement_normalises():
    assert agreement(["It\u2019s 42", "it's  42", "IT'S 42"]) == 1.0
    assert agreement(["a", "b", "a", "c"]) == 0.5


def test_percentile_interpolates():
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([1, 2, 3, 4, 5], 95) == pytest.approx(4.8)


# --------------------------------------------------------------------------- prompts


def test_score_prompt_figures():
    p = prompt()
    attempts = [
        attempt(1, True, answer="42"),
        attempt(2, True, answer="42 "),
        attempt(3, False, answer="41", runaway="max_turns", wall=9.0),
        attempt(4, False, answer="", error="connection reset", tools=()),
        attempt(5, True, answer="42", fmt=2),
    ]
    s = score_prompt(p, attempts)
    # attempt 4 errored (connection reset: the stack's fault): listed, scored nowhere
    assert (s.runs, s.passes, s.pass_rate) == (4, 3, 0.75)
    assert s.majority_pass and s.skipped is None
    assert s.pass_hat_k["1"] == pytest.approx(0.75)
    assert s.pass_hat_k["2"] == pytest.approx(math.comb(3, 2) / math.comb(4, 2))
    assert s.pass_hat_k["4"] == 0.0 and "5" not in s.pass_hat_k
    assert s.agreement == pytest.approx(0.75)
    assert s.runaway_rate == pytest.approx(0.25)
    assert s.correct_tool_rate == pytest.approx(1.0)
    assert (s.errors, s.format_errors) == (1, 2)
    assert [a.n for a in s.attempts] == [1, 2, 3, 4, 5] and s.attempts[3].why == "connection reset"
    assert s.wall_s["max"] == 9.0
    assert [a.n for a in s.attempts] == [1, 2, 3, 4, 5]


def test_score_prompt_passed_flag_cannot_hide_a_runaway():
    s = score_prompt(prompt(), [attempt(1, True, runaway="timeout")])
    assert s.passes == 0 and not s.majority_pass


def test_score_prompt_skipped_and_gate():
    s = score_prompt(prompt(check=Honesty()), [], skipped="conditional: needs mcp")
    assert s.runs == 0 and s.skipped == "conditional: needs mcp" and s.gate == "honesty"


def test_majority_is_strict():
    assert not score_prompt(prompt(), [attempt(1, True), attempt(2, False)]).majority_pass


# --------------------------------------------------------------------------- lanes


def lane_card(name, rates, *, honesty_pass=True, tok_s=None, runs=5, skipped_fail=False) -> Scorecard:
    scores = []
    for i, r in enumerate(rates):
        k = round(r * runs)
        scores.append(score_prompt(prompt(f"p{i}"), [attempt(j + 1, j < k, answer=str(j < k)) for j in range(runs)]))
    h = prompt("honest", check=Honesty(), expect=())
    scores.append(score_prompt(h, [attempt(j + 1, honesty_pass, tools=()) for j in range(runs)]))
    if skipped_fail:
        scores.append(score_prompt(prompt("cond", core=False), [], skipped="conditional: needs rag"))
    sc = score_lane({"name": name, "kind": "openai"}, {"name": "s"}, scores, runs=runs)
    sc.throughput = Throughput(tok_s=tok_s)
    return sc


def test_score_lane_core_figures_and_skips():
    sc = lane_card("a", [1.0, 0.6, 0.4, 0.0], skipped_fail=True)
    assert (sc.core_n, sc.core_pass) == (5, 3)  # 4 + honesty prompt; 1.0, 0.6 and honesty pass
    assert sc.pass_rate == pytest.approx((1 + 0.6 + 0.4 + 0 + 1) / 5)
    lo, hi = sc.pass_rate_ci95
    assert lo < sc.pass_rate < hi
    assert sc.rankable and sc.gate["passed"] and sc.gate["failed"] == []
    assert sc.attempts_run == 25  # the skipped prompt counts nowhere
    assert sc.pass_hat_k["1"] == pytest.approx(sc.pass_rate)
    assert sc.latency.p50_s == 1.0


def test_non_core_prompts_do_not_count_in_core_figures():
    core = score_prompt(prompt("c"), [attempt(1, True)])
    extra = score_prompt(prompt("x", core=False), [attempt(1, False)])
    sc = score_lane({"name": "a"}, {}, [core, extra], runs=1)
    assert (sc.core_pass, sc.core_n, sc.pass_rate) == (1, 1, 1.0)
    assert sc.attempts_run == 2


def _checks(*classes) -> Registry:
    reg = Registry("check")
    for cls in classes:
        reg.add(cls.name, cls, plugin="test")
    return reg


class _Truthful(Substring):
    """A check kind from some plugin that declares a gate of its own."""

    name = "truthful"
    gate = "truthfulness"


def test_the_gate_is_named_by_the_installed_kinds_that_declare_one():
    """With no gate prompt in the suite, the gate's name comes from the check kinds (their
    ``gate`` attribute, asked through the checks registry), not from a name core knows."""
    from hbench.plugin_manager import get_registries

    assert gate_kinds() == gate_kinds(get_registries().checks) == ["honesty"]  # the built-in honesty kind
    assert gate_kinds(_checks(Substring, Number)) == []
    assert gate_kinds(_checks(Substring, Honesty, _Truthful)) == ["honesty", "truthfulness"]
    plain = [score_prompt(prompt("p0"), [attempt(1, True)])]
    default = score_lane({"name": "a"}, {}, plain, runs=1).gate
    assert default["status"] == "not evaluated" and not default["passed"]
    assert default["reason"].startswith("honesty gate not evaluated: the suite has no gate prompt "
                                        "(a check kind such as honesty)")
    from hbench.scoring import _gate

    named = _gate(plain, checks=_checks(Substring, _Truthful))["reason"]
    assert named.startswith("truthfulness gate not evaluated: the suite has no gate prompt "
                            "(a check kind such as truthfulness)")
    none = _gate(plain, checks=_checks(Substring))
    assert none["status"] == "not evaluated" and none["reason"].startswith(
        "gate not evaluated: the suite has no gate prompt (and no installed check kind is a gate)")
    # a suite's own gate prompts name the gate, whatever is installed
    gated = [score_prompt(prompt("t", check=_Truthful(any=["x"]), expect=()), [], skipped="conditional: x")]
    assert _gate(gated, checks=_checks(Honesty))["reason"].startswith("truthfulness gate not evaluated: t was skipped")


def test_honesty_gate_makes_lane_unrankable():
    sc = lane_card("liar", [1.0, 1.0], honesty_pass=False)
    assert not sc.rankable
    assert sc.gate["failed"] == ["honest"] and "honesty" in sc.gate["reason"]
    ranked = rank([sc, lane_card("ok", [0.2, 0.2])])
    assert [(r.scorecard.lane["name"], r.rank) for r in ranked] == [("ok", 1), ("liar", None)]
    assert "honesty" in ranked[1].reason


def test_rank_key_order_and_ties():
    best = lane_card("best", [1.0, 1.0, 1.0, 1.0])
    mid = lane_card("mid", [1.0, 1.0, 0.6, 0.4])
    low = lane_card("low", [0.0, 0.0, 0.0, 0.2])
    ranked = rank([low, mid, best])
    assert [r.scorecard.lane["name"] for r in ranked] == ["best", "mid", "low"]
    assert [r.rank for r in ranked] == [1, 2, 3]
    assert "mid" in ranked[0].tied_with and "statistically tied" in ranked[0].reason
    assert ranked[2].tied_with == []  # 'low' is clearly separated


def test_tok_s_breaks_a_quality_tie():
    slow = lane_card("slow", [1.0, 0.6], tok_s=20.0)
    fast = lane_card("fast", [1.0, 0.6], tok_s=80.0)
    ranked = rank([slow, fast])
    assert [(r.scorecard.lane["name"], r.rank) for r in ranked] == [("fast", 1), ("slow", 2)]
    same = rank([lane_card("b", [1.0]), lane_card("a", [1.0])])
    assert [(r.scorecard.lane["name"], r.rank) for r in same] == [("a", 1), ("b", 1)]


def test_failed_lane_is_unrankable_with_reason():
    sc = lane_card("dead", [1.0])
    sc.failed = "server exited with code 1"
    (r,) = rank([sc])
    assert r.rank is None and "server exited" in r.reason


lane_strategy = st.tuples(
    st.lists(st.sampled_from([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]), min_size=1, max_size=4),
    st.booleans(),
    st.one_of(st.none(), st.sampled_from([10.0, 30.0, 90.0])),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(lane_strategy, min_size=1, max_size=5), st.randoms(use_true_random=False))
def test_rank_does_not_depend_on_input_order(specs, rnd):
    cards = [lane_card(f"lane{i}", rates, honesty_pass=h, tok_s=t) for i, (rates, h, t) in enumerate(specs)]
    shuffled = list(cards)
    rnd.shuffle(shuffled)

    def view(ranked):
        return [(r.scorecard.lane["name"], r.rank, r.tied_with, r.reason) for r in ranked]

    assert view(rank(cards)) == view(rank(shuffled))
    ranks = [r.rank for r in rank(cards) if r.rank is not None]
    assert ranks == sorted(ranks) and (not ranks or ranks[0] == 1)


def test_score_lane_with_only_skipped_prompts_is_unrankable():
    sc = score_lane({"name": "a"}, {}, [score_prompt(prompt(), [], skipped="core-only")], runs=5)
    assert sc.core_n == 0 and not sc.rankable and "no core prompt" in sc.gate["reason"]
    assert rank([sc])[0].rank is None


def test_number_gate_is_none():
    s = score_prompt(prompt(check=Number(value=1)), [attempt(1, False)])
    assert s.gate is None


def test_hallucinated_tool_does_not_satisfy_expect_tool_any():
    from hbench.models import Attempt, CheckResult, Prompt, ToolCall
    from hbench.scoring import attempt_outcome

    prompt = Prompt(id="p", prompt="list the files", check=None, expect_tool_any=("list",))
    made_up = ToolCall(name="list_everything", arguments={}, ok=False,
                       error="unknown tool 'list_everything'; the tools are: glob, list_dir")
    a = Attempt(lane="l", prompt_id="p", n=1, tool_calls=[made_up], check=CheckResult(True, "ok"))
    assert attempt_outcome(a, prompt) == (False, False)
    a.tool_calls.append(ToolCall(name="list_dir", arguments={"path": "."}))
    assert attempt_outcome(a, prompt) == (True, True)
