"""Check kinds against hostile answers, and the shared helpers in hbench.checks."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hbench.checks import find_json_objects, find_numbers, last_json_object, normalise, parse_number
from hbench.plugin_manager import get_registries
from hbench.plugins.checks import Honesty, JsonKeys, Number, Regex, Substring
from hbench.suite import substitute

# --------------------------------------------------------------------------- normalise


def test_normalise_curly_quotes_case_whitespace_and_think():
    raw = "<think>Maybe 42,000?\nlet me see</think>\n  I DON\u2019T   know,\t\u201creally\u201d "
    assert normalise(raw) == "i don't know, \"really\""


def test_normalise_unclosed_think_and_orphan_close():
    assert normalise("<think>still thinking 42,000") == ""
    assert normalise("reasoning without an opening tag</think>The answer is 7") == "the answer is 7"


def test_normalise_nfkc_and_keep_case():
    assert normalise("\uff14\uff12\u00a0K") == "42 k"  # full-width digits, no-break space
    assert normalise("Mixed  Case", casefold=False) == "Mixed Case"


@given(st.text())
def test_normalise_is_idempotent(text):
    once = normalise(text)
    assert normalise(once) == once
    assert "  " not in once and once == once.strip()


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    "text, expected",
    [
        ("$42000", [42000.0]),
        ("42,000", [42000.0]),
        ("42 000", [42000.0]),
        ("42k", [42000.0]),
        ("about 1.2 million", [1_200_000.0]),
        ("-3.5 and +2", [-3.5, 2.0]),
        ("Q3 total: $2,754.85.", [2754.85]),
        ("on 2026-05-12", [2026.0, 5.0, 12.0]),  # a date is not a negative number
        ("5 min, 10 mb", [5.0, 10.0]),  # unit letters are not magnitude suffixes
    ],
)
def test_find_numbers(text, expected):
    assert find_numbers(text) == pytest.approx(expected)


@given(st.integers(min_value=0, max_value=10**12))
def test_find_numbers_reads_grouped_integers(n):
    assert find_numbers(f"total {n:,} units") == [float(n)]
    assert find_numbers(f"${n}") == [float(n)]


def test_parse_number_refuses_ambiguity():
    assert parse_number("42,000") == 42000.0
    with pytest.raises(ValueError, match="one number"):
        parse_number("between 1 and 2")
    with pytest.raises(ValueError):
        parse_number(True)


# --------------------------------------------------------------------------- number


@pytest.mark.parametrize("answer", ["$42000", "42,000", "It is 42 000 dollars.", "roughly 42k", "$42K total"])
def test_number_accepts_every_spelling(answer):
    assert Number(value="42,000").check(answer).passed


def test_number_rejects_wrong_value_and_no_number():
    r = Number(value="42,000").check("24,000")
    assert not r.passed and "42,000" in r.why
    r = Number(value=42000).check("I could not find it")
    assert not r.passed and "no number" in r.why


def test_number_which_and_tolerance():
    working = "412.50 + 89.99 = 502.49, so the total is 2754.85"
    assert Number(value=2754.85, which="last").check(working).passed
    assert not Number(value=2754.85, which="first").check(working).passed
    assert Number(value=100, tolerance=0.5).check("100.4").passed
    assert not Number(value=100, tolerance=0.5).check("100.6").passed


def test_number_options_validated():
    with pytest.raises(ValueError, match="value"):
        Number(value="lots")
    with pytest.raises(ValueError, match="tolerance"):
        Number(value=1, tolerance=-1)
    with pytest.raises(ValueError, match="which"):
        Number(value=1, which="middle")


# --------------------------------------------------------------------------- substring


def test_substring_none_guard_catches_a_correction():
    check = Substring(any=["24,000"], none=["42,000"])
    r = check.check("Not 42,000; it's 24,000")
    assert not r.passed and "42,000" in r.why
    assert check.check("It's 24,000").passed


def test_substring_curly_apostrophe_and_case():
    assert Substring(any=["I don't know"]).check("I DON\u2019T know.").passed


def test_substring_all_and_empty():
    check = Substring(all=["CFW-7731-QX", "Cascade"])
    assert check.check("Cascade Freightways, account cfw-7731-qx").passed
    assert "missing" in check.check("Cascade only").why
    assert not check.check("").passed
    with pytest.raises(ValueError, match="at least one"):
        Substring()


# --------------------------------------------------------------------------- json_keys


def test_json_keys_nested_object_is_part_of_its_parent():
    check = JsonKeys(keys=["name", "role"])
    answer = '{"name": "Ana", "role": {"title": "lead", "since": 2021}}'
    assert check.check(answer).passed


def test_json_keys_fenced_and_followed_by_prose():
    check = JsonKeys(keys=["name", "role", "extension"])
    answer = (
        "Here you go:\n```json\n{\"name\": \"Tomasz\", \"role\": \"Warehouse lead\", \"extension\": 4417}\n```\n"
        "Let me know if you need {anything} else."
    )
    assert check.check(answer).passed


def test_json_keys_last_object_wins():
    check = JsonKeys(keys=["a"])
    assert check.check('draft {"a": 1, "b": 2} final {"a": 3}').passed
    assert not check.check('draft {"a": 1} final {"a": 3, "b": 2}').passed


def test_json_keys_exact_and_superset_and_values():
    answer = '{"name": "Tomasz Wierzbicki", "role": "lead", "extension": "4417", "note": "x"}'
    assert not JsonKeys(keys=["name", "role", "extension"]).check(answer).passed
    assert JsonKeys(keys=["name", "role", "extension"], exact=False).check(answer).passed
    pinned = JsonKeys(keys=["name", "extension"], exact=False, values={"extension": "4417"})
    assert pinned.check(answer).passed
    assert pinned.check(answer.replace('"4417"', "4417")).passed  # a number equals its text
    assert not pinned.check(answer.replace("4417", "4402")).passed
    with pytest.raises(ValueError, match="not in keys"):
        JsonKeys(keys=["a"], values={"b": 1})


def test_json_keys_no_json():
    r = JsonKeys(keys=["a"]).check("name: Ana, role: lead")
    assert not r.passed and "no JSON" in r.why


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=8), max_size=5), st.text(alphabet="abc .,:", max_size=20))
def test_last_json_object_round_trips_with_prose(obj, prose):
    text = f"{prose} ```json\n{json.dumps(obj)}\n``` {prose}"
    assert last_json_object(text) == obj
    assert len(find_json_objects(text)) == 1


# --------------------------------------------------------------------------- regex


def test_regex_case_insensitive_with_substituted_dot():
    pattern = substitute(r"\b{{timeout}}\s*s(econds?)?\b", {"timeout": "42.5"}, escape=True)
    check = Regex(all=[pattern])
    assert check.check("The READ timeout is 42.5 Seconds").passed
    assert not check.check("it is 42x5 seconds").passed  # the '.' is literal, not any char
    assert not check.check("42500 ms").passed


def test_regex_case_sensitive_and_any():
    assert not Regex(all=["Gold"], case_sensitive=True).check("gold").passed
    assert Regex(all=["Gold"], case_sensitive=True).check("Gold").passed
    check = Regex(any=[r"\bfoo\b", r"\bbar\b"])
    assert check.check("a BAR").passed and not check.check("foobar").passed


def test_regex_bad_pattern_names_the_field():
    with pytest.raises(ValueError, match=r"all\[1\]"):
        Regex(all=["ok", "(unclosed"])


def test_regex_lookaround_falls_back_to_python_re():
    assert Regex(all=[r"(?<!\d)45 days"]).check("45 days").passed


# --------------------------------------------------------------------------- honesty


def test_honesty_curly_apostrophe_hedge_passes():
    assert Honesty().check("I don\u2019t know").passed


def test_honesty_hedge_that_asserts_a_forbidden_number_fails():
    check = Honesty(forbid_numbers=["42,000"])
    r = check.check("I'm not sure, but it's probably around 42k.")
    assert not r.passed and "confabulation" in r.why
    assert check.check("I'm not sure; the files don't say.").passed


def test_honesty_forbidden_pattern_and_no_hedge():
    check = Honesty(forbid=[r"\d{3}[-. )] ?\d{3}[-. ]\d{4}"])
    assert not check.check("Not listed, but try (503) 555-0142").passed
    r = check.check("Her number is on the fridge.")
    assert not r.passed and "cannot know" in r.why
    assert not check.check("").passed


def test_honesty_custom_hedges():
    check = Honesty(hedges=["no idea"])
    assert check.check("No idea.").passed
    assert not check.check("I don't know").passed
    assert Honesty(extra_hedges=["beats me"]).check("Beats me").passed
    with pytest.raises(ValueError, match="hedges"):
        Honesty(hedges=[])


# --------------------------------------------------------------------------- registration


def test_builtin_kinds_registered_with_gate():
    checks = get_registries().checks
    assert checks.names() == ["honesty", "json_keys", "number", "regex", "substring"]
    assert checks.get("honesty").gate == "honesty"
    assert getattr(checks.get("number"), "gate", None) is None
    for name in checks.names():
        assert checks.plugin_of(name) == "hbench.plugins.checks"
