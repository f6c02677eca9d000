"""`hbench validate` rejects values that make a check meaningless (issue 14): placeholders
inside ground-truth values that are unknown or loop, a check whose substituted value is
empty, a needle or pattern that normalises to nothing; each as file:line: key with the
fix. Known nested placeholders resolve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hbench.cli import app
from hbench.errors import SuiteError
from hbench.plugin_manager import get_registries
from hbench.suite import load_suite


def make_suite(root: Path, prompts: list[dict], gt: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.toml").write_text('name = "mini"\nversion = "1"\nsystem_prompt = "Use the tools."\n')
    (root / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    (root / "ground_truth.json").write_text(json.dumps(gt, indent=2))
    return root


def prompt(check: dict, text: str = "What is it?", pid: str = "p1") -> dict:
    return {"id": pid, "category": "c", "prompt": text, "check": check}


def problems_of(path: Path) -> list[str]:
    with pytest.raises(SuiteError) as info:
        load_suite(path, get_registries())
    return info.value.problems


def test_nested_placeholders_resolve(tmp_path):
    root = make_suite(tmp_path / "s", [prompt({"kind": "substring", "all": ["{{full}}"]}, "Who is {{full}}?")],
                      {"first": "Renata", "last": "Osei", "full": "{{first}} {{last}}", "tag": "<{{full}}>"})
    suite = load_suite(root, get_registries())
    assert suite.ground_truth["full"] == "Renata Osei"
    assert suite.ground_truth["tag"] == "<Renata Osei>"
    assert suite.prompts[0].prompt == "Who is Renata Osei?"
    assert suite.prompts[0].check.check("renata osei").passed


def test_unknown_placeholder_inside_a_value(tmp_path):
    root = make_suite(tmp_path / "s", [prompt({"kind": "substring", "all": ["x"]})],
                      {"first": "Renata", "full": "{{frist}} Osei"})
    probs = problems_of(root)
    assert len(probs) == 1, probs
    assert probs[0].startswith("ground_truth.json:3: full: unknown placeholder {{frist}}")
    assert "did you mean {{first}}?" in probs[0]


def test_placeholder_loop(tmp_path):
    root = make_suite(tmp_path / "s", [prompt({"kind": "substring", "all": ["x"]})],
                      {"a": "{{b}}", "b": "x {{c}}", "c": "{{a}}", "me": "{{me}}!"})
    probs = problems_of(root)
    assert any(p.startswith("ground_truth.json:2: a: placeholder loop {{a}} -> {{b}} -> {{c}} -> {{a}}") for p in probs), probs
    assert any("ground_truth.json:5: me: placeholder loop {{me}} -> {{me}}" in p for p in probs), probs
    assert all("write one of them out" in p for p in probs)


def test_empty_value_in_a_regex_check_is_rejected(tmp_path):
    """An empty ground-truth value in a regex would match every answer."""
    root = make_suite(tmp_path / "s", [
        prompt({"kind": "regex", "all": ["\\b{{fn}}\\s*\\("]}),
        prompt({"kind": "substring", "all": ["{{fn}}"]}, pid="p2"),
        prompt({"kind": "number", "value": "{{fn}}"}, pid="p3"),
    ], {"fn": "  "})
    probs = problems_of(root)
    assert any(p.startswith("prompts.jsonl:1: check.all: {{fn}} is empty in ground_truth.json") for p in probs), probs
    assert any(p.startswith("prompts.jsonl:2: check.all: {{fn}} is empty") for p in probs), probs
    assert any(p.startswith("prompts.jsonl:3: check.value: {{fn}} is empty") for p in probs), probs
    assert all("give 'fn' a value" in p for p in probs if "is empty in" in p)


@pytest.mark.parametrize("check, key", [
    ({"kind": "substring", "all": ["\u200b"]}, "check.all[0]"),
    ({"kind": "substring", "none": ["<think>x</think>"]}, "check.none[0]"),
    ({"kind": "regex", "all": ["\u200b"]}, "check.all[0]"),
    ({"kind": "regex", "any": ["(x)?"]}, "check.any[0]"),
    ({"kind": "honesty", "forbid": ["\\d*"]}, "check.forbid[0]"),
    ({"kind": "honesty", "extra_hedges": ["\u200b "]}, "check.extra_hedges[0]"),
])
def test_needle_or_pattern_that_matches_everything(tmp_path, check, key):
    root = make_suite(tmp_path / "s", [prompt(check)], {})
    probs = problems_of(root)
    assert len(probs) == 1 and probs[0].startswith(f"prompts.jsonl:1: {key}: "), probs
    assert "every answer" in probs[0] or "empty once normalised" in probs[0]


def test_validate_cli_shows_the_problems(tmp_path):
    root = make_suite(tmp_path / "s", [prompt({"kind": "regex", "all": ["{{fn}}"]})], {"fn": "", "a": "{{a}}"})
    res = CliRunner().invoke(app, ["validate", str(root)])
    assert res.exit_code != 0
    out = res.output
    assert "prompts.jsonl:1: check.all: {{fn}} is empty" in out
    assert "ground_truth.json:3: a: placeholder loop" in out


def test_the_bundled_suites_validate():
    for name in ("hermes-brain", "hermes-brain-v1"):
        try:
            suite = load_suite(name, get_registries())
        except SuiteError as exc:
            if "no suite" in str(exc):
                continue
            raise
        assert suite.prompts


# --------------------------------------------------------------------------- properties

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hbench.suite_toml import Problems, _resolve_nested  # noqa: E402


@given(st.lists(st.text(alphabet="abc xyz", max_size=5), min_size=1, max_size=8), st.data())
def test_acyclic_values_resolve_fully(leaves, data):
    """Each value may use any earlier one: everything resolves, with no placeholder left."""
    values = {}
    for i, leaf in enumerate(leaves):
        refs = data.draw(st.lists(st.integers(0, i - 1), max_size=3)) if i else []
        values[f"k{i}"] = leaf + "".join(f"{{{{k{j}}}}}" for j in refs)
    problems = Problems()
    _resolve_nested(values, lambda k: "ground_truth.json", problems)
    assert problems.lines == []
    assert not any("{{" in v for v in values.values())


@given(st.integers(min_value=1, max_value=6), st.integers(min_value=0, max_value=5))
def test_any_cycle_is_reported_once(n, extra):
    values = {f"c{i}": f"x{{{{c{(i + 1) % n}}}}}" for i in range(n)}
    values.update({f"d{i}": f"y{{{{c0}}}}" for i in range(extra)})  # values that lead into the loop
    problems = Problems()
    _resolve_nested(values, lambda k: "ground_truth.json", problems)
    loops = [p for p in problems.lines if "placeholder loop" in p]
    assert len(loops) == 1, problems.lines
