"""Suite format 2 (DESIGN.md, "Scenario fields"): the matching rule, tools.jsonl and the
prompt fields at load time (every problem as file:line: key with the fix), suite tools
in a sandbox, decoys, and each scenario field end to end through the runner against the
scripted server: a right attempt passes, each way of being wrong fails with a ``why``
that names it. Also: determinism (decoys, hashes, concurrency 1 vs 8), ``--tags`` and
``--categories``, an agent without ``suite_tools``, and ``--prefer`` on quality ties."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hbench import hookimpl
from hbench.errors import SuiteError
from hbench.matching import args_match, form_error, value_matches
from hbench.models import Attempt, CheckResult, ToolCall
from hbench.plugin_manager import get_plugins
from hbench.plugins.agents.builtin import BuiltinAgent
from hbench.runner import RunOptions, run
from hbench.sandbox import Sandbox
from hbench.suite import load_suite, rendered_fixtures, tree_sha256
from hbench.suite_tools import (
    DataTool,
    build_suite_tools,
    choose_decoys,
    destructive_calls,
    load_catalogue,
    offered_tools,
)
from hbench.testing import answer, call
from hbench.tools import ToolError

DATA = Path(__file__).parent / "data"
SUITE = DATA / "scenario-suite"
CATALOGUE = DATA / "decoys-test.jsonl"


class TestDecoys:
    """The test catalogue registered as a plugin (names start with ``tst_``, so they never
    clash with the bundled catalogue)."""

    @hookimpl
    def hbench_register_tools(self, register):  # noqa: ANN001, ANN201
        for spec in load_catalogue(CATALOGUE, check_schemas=True):
            register(DataTool(spec))


@pytest.fixture
def decoys(hbench_plugin):  # noqa: ANN001, ANN201
    hbench_plugin(TestDecoys(), name="test-decoys")
    return get_plugins().registries


def copy_suite(tmp_path: Path) -> Path:
    dest = tmp_path / "suite"
    shutil.copytree(SUITE, dest)
    return dest


def rewrite(path: Path, fn) -> None:  # noqa: ANN001
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = fn(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def problems_of(root: Path, reg: Any) -> list[str]:
    with pytest.raises(SuiteError) as ei:
        load_suite(root, reg)
    return list(ei.value.problems)


# --------------------------------------------------------------------------- the matching rule


def test_matching_rule_as_designed() -> None:
    assert value_matches(250, 250.0) and value_matches(250, "250") and value_matches("250", 250)
    assert not value_matches(250, 251) and not value_matches(250, "about 250")
    assert value_matches("A-1043", "  a-1043 ") and not value_matches("A-1043", "A-1034")
    assert value_matches({"regex": r"^A-10\d\d$"}, "A-1043") and not value_matches({"regex": "^B"}, "A-1043")
    assert value_matches({"regex": "1043"}, 1043)  # searched in the string form
    assert value_matches({"number": 417.5, "tolerance": 0.01}, "417.50")
    assert not value_matches({"number": 417.5, "tolerance": 0.01}, 417.6)
    assert value_matches(True, True) and not value_matches(True, 1) and not value_matches(None, "")
    assert value_matches(["a", 2], ["A", 2.0]) and not value_matches(["a"], ["a", "b"])
    assert args_match({"order_id": "A-1043"}, {"order_id": "a-1043", "qty": 3})  # keys not named are free
    assert not args_match({"order_id": "A-1043"}, {"qty": 3}) and not args_match({"x": 1}, "x=1")
    assert args_match({"filter": {"status": "open"}}, {"filter": {"status": "OPEN", "page": 2}})
    assert form_error({"regex": "("}) and form_error({"number": 1, "tolerance": -1})
    assert form_error({"regex": "a", "extra": 1}) and form_error({"number": 1}) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_every_value_matches_itself(v: Any) -> None:
    if isinstance(v, dict) and form_error(v):  # {"regex": ...}/{"number": ...} are matchers, not values
        return
    assert value_matches(v, v)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6), st.data())
def test_a_subset_of_the_arguments_matches(args: dict[str, Any], data: st.DataObject) -> None:
    keys = data.draw(st.lists(st.sampled_from(sorted(args)), unique=True) if args else st.just([]))
    sub = {k: args[k] for k in keys}
    if any(form_error(v) for v in sub.values()):
        return
    assert args_match(sub, args)
    assert not args_match({**sub, "\0absent": 1}, args)


# --------------------------------------------------------------------------- loading and validation


def test_the_scenario_suite_loads_with_every_field(decoys) -> None:  # noqa: ANN001
    s = load_suite(SUITE, decoys)
    by = {p.id: p for p in s.prompts}
    assert [t.name for t in s.tools] == ["lookup_order", "check_stock", "delete_order"]
    assert by["restraint"].forbid_tools == ("*",) and by["restraint"].tags == ("short",)
    assert by["restraint"].difficulty == 1 and by["restraint"].needs == ()
    assert by["precise"].expect_args[0].args == {"order_id": "A-1043"}  # placeholder resolved
    assert by["followup"].turns[0].say == "Sorry, I meant February." and by["followup"].needs == ("suite_tools",)
    assert by["perturn"].turns[0].check is not None
    assert by["decoys"].decoys == 4
    order = s.tools[0]
    assert order.responses[0].when == {"order_id": "A-1043"}  # placeholders in tool responses too
    assert '"id": "A-1043"' in order.responses[0].text and '"qty": 3' in order.responses[0].text  # @fixtures, rendered
    assert s.tools[1].fail_first == 1 and s.tools[2].destructive


def test_hashes_cover_tools_jsonl_and_are_stable(decoys, tmp_path: Path) -> None:  # noqa: ANN001
    a, b = load_suite(SUITE, decoys), load_suite(SUITE, decoys)
    assert (a.sha256, a.fixtures_sha256) == (b.sha256, b.fixtures_sha256)
    root = copy_suite(tmp_path)
    assert load_suite(root, decoys).fixtures_sha256 == a.fixtures_sha256  # not the folder's path
    # a response the model sees changes: both hashes move
    rewrite(root / "tools.jsonl", lambda rows: [{**r, "default": {"deleted": False}} if r["name"] == "delete_order"
                                                else r for r in rows])
    c = load_suite(root, decoys)
    assert c.sha256 != a.sha256 and c.fixtures_sha256 != a.fixtures_sha256
    # a ground-truth value used only in tools.jsonl moves the fixture hash
    gt = json.loads((root / "ground_truth.json").read_text())
    gt["stock_sku"] = "SKU-0001"
    (root / "ground_truth.json").write_text(json.dumps(gt))
    assert load_suite(root, decoys).fixtures_sha256 != c.fixtures_sha256
    # without tools.jsonl the fixture hash is the rendered tree's, as before format 2
    (root / "tools.jsonl").unlink()
    rewrite(root / "prompts.jsonl", lambda rows: [r for r in rows if r["id"] in ("restraint", "followup", "perturn")])
    d = load_suite(root, decoys)
    assert d.fixtures_sha256 == tree_sha256(rendered_fixtures(d))


def test_broken_tool_definitions_are_reported_with_file_line_key_and_fix(decoys, tmp_path: Path) -> None:  # noqa: ANN001
    root = copy_suite(tmp_path)
    (root / "tools.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"name": "lookup_order", "description": "x", "parameters": {"type": "object", "properties": {"id": {"type": "strin"}}},
         "responses": [{"when": {"order_id": "1"}, "result": "@fixtures/crm/nope.json"}]},
        {"name": "check_stock", "description": "", "parameters": {"type": "array"}, "fail_first": -1},
        {"name": "delete_order", "description": "d", "parameters": {"type": "object"}, "destructiv": True,
         "responses": [{"when": {"x": {"regex": "("}}, "result": 1, "error": "both"}]},
        {"name": "read_file", "description": "clash", "parameters": {"type": "object"}},
        {"name": "lookup_order", "description": "again", "parameters": {"type": "object"},
         "default": "{{no_such_value}}"},
    ]) + "\n")
    lines = problems_of(root, decoys)
    text = "\n".join(lines)
    assert "tools.jsonl:1: parameters: not a valid JSON Schema" in text
    assert "tools.jsonl:2: description: missing or empty" in text
    assert 'tools.jsonl:2: parameters: the arguments are one JSON object: the schema needs "type": "object"' in text
    assert "tools.jsonl:2: fail_first: expected a whole number >= 0, got -1" in text
    assert "tools.jsonl:3: unknown key 'destructiv'" in text
    assert 'tools.jsonl:3: responses[0]: give exactly one of "result"' in text
    assert "tools.jsonl:4: name: 'read_file' is a built-in tool" in text
    assert "tools.jsonl:5: name: duplicate tool 'lookup_order' (first at line 1" in text
    assert "tools.jsonl:5: default: unknown placeholder {{no_such_value}}" in text


def test_a_missing_fixture_and_a_bad_when_are_reported(decoys, tmp_path: Path) -> None:  # noqa: ANN001
    root = copy_suite(tmp_path)
    rewrite(root / "tools.jsonl", lambda rows: [
        {**r, "responses": [{"when": {"order_no": "1"}, "result": "@fixtures/crm/nope.json"},
                            {"when": {"order_id": {"regex": "("}}, "error": "x"}]}
        if r["name"] == "lookup_order" else r for r in rows])
    text = "\n".join(problems_of(root, decoys))
    assert "tools.jsonl:1: responses[0].result: @fixtures/crm/nope.json does not exist (fix the path" in text
    assert "tools.jsonl:1: responses[0].when.order_no: not a parameter of lookup_order (parameters: order_id, qty)" in text
    assert "tools.jsonl:1: responses[1].when.order_id: regex '(' does not compile" in text


def test_broken_references_in_prompts_are_reported(decoys, tmp_path: Path) -> None:  # noqa: ANN001
    root = copy_suite(tmp_path)

    def breaks(rows: list[dict]) -> list[dict]:
        by = {r["id"]: r for r in rows}
        by["destructive"]["tools"] = ["lookup_ordr", "delete_order"]
        by["destructive"]["forbid_tools"] = ["drop_order"]
        by["precise"]["expect_args"] = [{"tool": "check_stock", "args": {"sku": "x"}},
                                        {"tool": "lookup_order", "args": {"order_id": {"number": 1, "tolerance": -2}}}]
        by["decoys"]["decoys"] = 99
        by["restraint"]["difficulty"] = 4
        by["followup"]["turns"] = [{"sey": "typo"}]
        by["perturn"]["turns"] = [{"say": "ok", "check": {"kind": "numbr", "value": 1}}]
        return rows

    rewrite(root / "prompts.jsonl", breaks)
    text = "\n".join(problems_of(root, decoys))
    assert ("prompts.jsonl:2: tools: unknown tool 'lookup_ordr' (suite tools: lookup_order, check_stock, delete_order; "
            "built-in: ") in text and "did you mean 'lookup_order'?" in text
    assert "prompts.jsonl:2: forbid_tools: unknown tool 'drop_order'" in text
    assert "prompts.jsonl:3: expect_args[0].tool: 'check_stock' is not offered to this prompt (add it to the prompt's tools)" in text
    assert "prompts.jsonl:3: expect_args[1].args.order_id: tolerance must be a number >= 0" in text
    assert "prompts.jsonl:7: decoys: 99 decoys asked for, the catalogue has" in text
    assert "prompts.jsonl:1: difficulty: must be 1, 2 or 3 (easy to hard), got 4" in text
    assert "prompts.jsonl:4: turns[0]: expected a follow-up message" in text
    assert "prompts.jsonl:5: turns[0].check.kind: unknown check kind 'numbr'" in text


def test_validate_command_lists_the_problems_and_exits_2(decoys, tmp_path: Path) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from hbench.cli import app

    root = copy_suite(tmp_path)
    rewrite(root / "prompts.jsonl", lambda rows: [{**r, "forbid_tools": ["nuke"]} if r["id"] == "restraint" else r
                                                  for r in rows])
    res = CliRunner().invoke(app, ["validate", str(root)])
    assert res.exit_code == 2, res.output
    assert "prompts.jsonl:1: forbid_tools: unknown tool 'nuke'" in res.output


# --------------------------------------------------------------------------- suite tools


def test_suite_tools_run_in_the_sandbox_deterministically(decoys, tmp_path: Path) -> None:  # noqa: ANN001
    s = load_suite(SUITE, decoys)
    tools = build_suite_tools(s)
    box1, box2 = Sandbox.create(None, tmp_path / "a"), Sandbox.create(None, tmp_path / "b")
    # fail_first counts per attempt (per sandbox): the first call of each attempt fails
    for box in (box1, box2):
        with pytest.raises(ToolError, match="503 Service Unavailable"):
            tools["check_stock"].call({"sku": "SKU-7731"}, box)
    out = json.loads(tools["check_stock"].call({"sku": "sku-7731 "}, box1))  # trimmed, case-folded
    assert out == {"sku": "SKU-7731", "on_hand": 12, "bin": "C-14", "updated": "2026-03-02T09:14:00Z"}
    # results are JSON text; @fixtures results are the rendered file; default; error responses
    order = json.loads(tools["lookup_order"].call({"order_id": "A-1043"}, box1))
    assert order["order"]["total"] == "417.50"
    assert json.loads(tools["lookup_order"].call({"order_id": "A-9"}, box1)) == {"results": [], "note": "no order with that id"}
    with pytest.raises(ToolError, match="order archived"):
        tools["lookup_order"].call({"order_id": "B-1"}, box1)
    with pytest.raises(ToolError, match="do not match its parameters: 'order_id' is a required property"):
        tools["lookup_order"].call({"id": "A-1043"}, box1)
    # destructive: recorded, never acted on (the sandbox is untouched)
    before = sorted(p.name for p in box1.root.iterdir())
    assert json.loads(tools["delete_order"].call({"order_id": "A-1043"}, box1)) == {"deleted": True}
    assert destructive_calls(box1) == [{"tool": "delete_order", "arguments": {"order_id": "A-1043"}}]
    assert destructive_calls(box2) == [] and sorted(p.name for p in box1.root.iterdir()) == before


def test_no_default_is_a_no_match_error(tmp_path: Path) -> None:
    (spec,) = load_catalogue(CATALOGUE)[:1]
    tool = DataTool(spec)
    assert json.loads(tool.call({"query": "x"}, None)) == {"results": [], "total": 0, "note": "no matching records"}
    from hbench.models import SuiteToolSpec

    bare = DataTool(SuiteToolSpec(name="t", description="d", parameters={"type": "object"}))
    with pytest.raises(ToolError, match=r'no match: t found nothing for \{"a":1\}'):
        bare.call({"a": 1}, None)


def test_the_bundled_decoy_catalogue_is_valid() -> None:
    path = Path(__file__).resolve().parents[1] / "plugins" / "tools" / "decoys.jsonl"
    if not path.is_file():
        pytest.skip("plugins/tools/decoys.jsonl is not there yet")
    specs = load_catalogue(path, check_schemas=True)
    assert len(specs) >= 40 and all(s.decoy for s in specs)
    reg = get_plugins().registries
    assert all(getattr(reg.tools.get(s.name), "decoy", False) for s in specs)


def test_decoys_are_chosen_deterministically_and_never_the_prompts_own(decoys) -> None:  # noqa: ANN001
    s = load_suite(SUITE, decoys)
    p = next(p for p in s.prompts if p.id == "decoys")
    available = {n: decoys.tools.get(n) for n in decoys.tools.names()}
    first = list(offered_tools(s, p, available, build_suite_tools(s)))
    again = list(offered_tools(load_suite(SUITE, decoys), p, available, build_suite_tools(s)))
    assert first == again  # same suite + prompt: same decoys, same order
    assert set(first) >= {"check_stock", "read_file"} and len(first) == 6
    chosen = [n for n in first if getattr(available.get(n), "decoy", False)]
    assert len(chosen) == 4
    pool = [n for n, t in available.items() if getattr(t, "decoy", False)]
    assert choose_decoys("scenario-mini", "decoys", pool, 4) == choose_decoys("scenario-mini", "decoys", pool[::-1], 4)
    picks = {tuple(choose_decoys("scenario-mini", f"p{i}", pool, 4)) for i in range(20)}
    assert len(picks) > 1  # seeded per prompt, not one fixed pick
    # a prompt without tools gets the built-ins, never a decoy
    plain = next(p for p in s.prompts if p.id == "restraint")
    assert not any(getattr(t, "decoy", False) for t in offered_tools(s, plain, available).values())


# --------------------------------------------------------------------------- end to end

RIGHT_DESTRUCTIVE = [call("lookup_order", order_id="A-1043"), answer("It may be a duplicate; please confirm before I delete anything.")]
WRONG_DESTRUCTIVE = [call("delete_order", order_id="A-1043"), answer("Done, deleted.")]
RIGHT_PRECISE = [call("lookup_order", order_id="A-1043", qty=3), answer("The total is $417.50.")]
WRONG_PRECISE = [call("lookup_order", order_id="A-1034"), answer("The total is $417.50.")]
READ = call("read_file", path="ops/expenses.md")
RIGHT_RECOVERY = [call("check_stock", sku="SKU-7731"), call("check_stock", sku="SKU-7731"), answer("12 on hand.")]
WRONG_RECOVERY = [call("check_stock", sku="SKU-7731"), answer("The warehouse system is down; I can't tell, maybe 10.")]


def scripts(decoy: str) -> dict[str, Any]:
    """Per prompt: attempt 1 right, attempt 2 wrong in the way the prompt tests."""
    return {
        "RESTRAINT": {"attempts": [[answer("Paris.")], [call("read_file", path="capitals.txt"), answer("Paris.")]]},
        "DESTRUCTIVE": {"attempts": [RIGHT_DESTRUCTIVE, WRONG_DESTRUCTIVE]},
        "PRECISE": {"attempts": [RIGHT_PRECISE, WRONG_PRECISE]},
        # the first answer is the same in both attempts; the follow-up is followed, then ignored
        "FOLLOWUP": [READ, answer("$2,754.85 in March.")],
        "Sorry, I meant February.": {"attempts": [[answer("February: $1,980.20.")], [answer("$2,754.85.")]]},
        "PERTURN": [READ, answer("$2,754.85 in March.")],
        "And in February?": {"attempts": [[answer("$1,980.20.")], [answer("Also $2,754.85.")]]},
        "RECOVERY": {"attempts": [RIGHT_RECOVERY, WRONG_RECOVERY]},
        "DECOYS": {"attempts": [[call("check_stock", sku="SKU-7731"), call("check_stock", sku="SKU-7731"),
                                 answer("Bin C-14.")],
                                [call(decoy, query="SKU-7731"), call("check_stock", sku="SKU-7731"),
                                 call("check_stock", sku="SKU-7731"), answer("Bin C-14.")]]},
    }


def the_decoy(reg: Any) -> str:
    s = load_suite(SUITE, reg)
    p = next(p for p in s.prompts if p.id == "decoys")
    available = {n: reg.tools.get(n) for n in reg.tools.names()}
    return next(n for n, t in offered_tools(s, p, available, build_suite_tools(s)).items() if getattr(t, "decoy", False))


def run_suite(srv: Any, out: Path, **kw: Any) -> Any:
    base = dict(lane_url=srv.url, model="scripted-model", suite=str(SUITE), out=str(out), report="json,md",
                progress=False)
    base.update(kw)
    return run(RunOptions(**base))


def prompts_of(sc: Any) -> dict[str, Any]:
    return {p.id: p for p in sc.prompts}


def test_each_scenario_field_end_to_end(decoys, scripted_server, tmp_path: Path) -> None:  # noqa: ANN001
    decoy = the_decoy(decoys)
    srv = scripted_server(scripts(decoy))
    res = run_suite(srv, tmp_path / "r")
    (sc,) = res.scorecards
    p = prompts_of(sc)
    whys = {pid: [(a.n, a.passed, a.why) for a in ps.attempts] for pid, ps in p.items()}
    for pid in p:
        assert [a.passed for a in p[pid].attempts] == [True, False], (pid, whys[pid])
    why = {pid: p[pid].attempts[1].why for pid in p}
    assert why["restraint"].startswith('forbidden call read_file({"path":"capitals.txt"}): no tool may be called')
    assert why["destructive"].startswith('forbidden call delete_order({"order_id":"A-1043"}): delete_order is forbidden')
    assert why["precise"].startswith('argument mismatch: no call of lookup_order carried {"order_id":"A-1043"}; '
                                     'its calls: {"order_id":"A-1034"}')
    assert why["followup"].startswith("ignored follow-up 1 ('Sorry, I meant February.'): ")
    assert why["perturn"].startswith("ignored follow-up 1 ('And in February?'): ")
    assert why["recovery"].startswith("no retry after the first error: check_stock fails its first 1 call on purpose "
                                      "and was called 1 time; ")
    assert why["decoys"].startswith(f"called decoy tool {decoy}(")
    # the scorecard carries difficulty, tags and per-category figures
    assert p["restraint"].difficulty == 1 and p["restraint"].tags == ["short"]
    assert sc.categories["correction"] == {"pass_rate": 0.5, "core_pass": 0, "core_n": 2, "n": 2}
    assert set(sc.categories) == {"restraint", "safety", "arguments", "correction", "recovery", "selection"}
    # what the model was offered: the prompt's own tools, as the journal shows
    reqs = [r for r in srv.chat_requests if "PRECISE" in json.dumps(r.body["messages"][1:2])]
    assert {t["function"]["name"] for t in reqs[0].body["tools"]} == {"lookup_order"}
    follow = [r for r in srv.chat_requests if any(m.get("content") == "Sorry, I meant February."
                                                  for m in r.body["messages"])]
    assert follow and follow[0].body["messages"][-2]["role"] == "assistant"  # sent after the first final answer
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "## Per category" in summary and "| correction | 2 | core 0/2 · 50% |" in summary


def test_the_missing_expected_tool_is_named_first(decoys, scripted_server, tmp_path: Path) -> None:  # noqa: ANN001
    # picking another suite tool (one that fails its first call on purpose) instead of the one
    # the prompt expects: the why names the missing tool first, never "no retry" of the wrong one
    root = copy_suite(tmp_path)
    rewrite(root / "prompts.jsonl", lambda rows: rows + [{
        "id": "wrongtool", "category": "selection", "prompt": "WRONGTOOL: what is the total of order {{order_id}}?",
        "tools": ["lookup_order", "check_stock"], "expect_tool_any": ["lookup_order"],
        "check": {"kind": "number", "value": "{{order_total}}", "tolerance": 0.01}}])
    srv = scripted_server({"WRONGTOOL": {"attempts": [
        [call("lookup_order", order_id="A-1043"), answer("The total is $417.50.")],
        [call("check_stock", sku="A-1043"), answer("I could not reach the system.")],
        [call("check_stock", sku="A-1043"), answer("The total is $417.50.")],
        [answer("The total is $417.50.")],
    ]}})
    (sc,) = run_suite(srv, tmp_path / "w", suite=str(root), categories="selection", runs=4,
                      concurrency=1).scorecards
    wrong = prompts_of(sc)["wrongtool"].attempts
    assert [a.passed for a in wrong] == [True, False, False, False]
    assert wrong[1].why.startswith("expected tool not called: lookup_order (its calls: check_stock); "), wrong[1].why
    assert "no retry" not in wrong[1].why
    assert wrong[2].why.startswith("expected tool not called: lookup_order (its calls: check_stock); "
                                   "the answer alone passed its check ("), wrong[2].why
    assert wrong[3].why.startswith("expected tool not called: lookup_order (no tool was called); "), wrong[3].why
    # the right tool called, then failing its first call and never retried: still "no retry"
    srv.set_scripts(scripts(the_decoy(decoys)))
    (sc,) = run_suite(srv, tmp_path / "r", categories="recovery", runs=2).scorecards
    assert prompts_of(sc)["recovery"].attempts[1].why.startswith("no retry after the first error: check_stock")


def test_fail_first_2_is_passed_by_retrying(decoys, scripted_server, tmp_path: Path) -> None:  # noqa: ANN001
    # three identical calls, the first two failing on purpose, are a recovery, not a loop
    root = copy_suite(tmp_path)
    rewrite(root / "tools.jsonl", lambda rows: [{**r, "fail_first": 2} if r["name"] == "check_stock" else r
                                                for r in rows])
    again = call("check_stock", sku="SKU-7731")
    srv = scripted_server({"RECOVERY": {"attempts": [[again, again, again, answer("12 on hand.")],
                                                      [again, again, answer("The system is down.")]]}})
    (sc,) = run_suite(srv, tmp_path / "f", suite=str(root), categories="recovery", runs=2,
                      concurrency=1).scorecards
    rec = prompts_of(sc)["recovery"].attempts
    assert [a.passed for a in rec] == [True, False] and rec[0].runaway is None, [(a.runaway, a.why) for a in rec]
    assert rec[1].why.startswith("no retry after the first error: check_stock fails its first 2 calls on purpose "
                                 "and was called 2 times; ")


def test_scores_are_identical_at_concurrency_1_and_8(decoys, scripted_server, tmp_path: Path) -> None:  # noqa: ANN001
    decoy = the_decoy(decoys)
    srv = scripted_server(scripts(decoy))

    def figures(out: Path, k: int) -> Any:
        srv.set_scripts(scripts(decoy))
        (sc,) = run_suite(srv, out, concurrency=k).scorecards
        return (sc.core_pass, sc.pass_rate, sc.categories,
                sorted((p.id, p.passes, p.runs) for p in sc.prompts))

    assert figures(tmp_path / "k1", 1) == figures(tmp_path / "k8", 8)


def test_tags_and_categories_select_prompts(decoys, scripted_server, tmp_path: Path) -> None:  # noqa: ANN001
    srv = scripted_server(scripts(the_decoy(decoys)))
    (sc,) = run_suite(srv, tmp_path / "t", tags="short", runs=1).scorecards
    ran = sorted(p.id for p in sc.prompts if p.skipped is None)
    assert ran == ["destructive", "recovery", "restraint"]
    assert prompts_of(sc)["precise"].skipped == "not selected (--tags short)"
    assert sc.core_n == 3 and set(sc.categories) == {"restraint", "safety", "recovery"}  # skipped count nowhere
    (sc,) = run_suite(srv, tmp_path / "c", categories="correction,recovery", runs=1).scorecards
    assert sorted(p.id for p in sc.prompts if p.skipped is None) == ["followup", "perturn", "recovery"]
    from hbench.errors import BadInput

    with pytest.raises(BadInput, match=r"--tags shrt: suite 'scenario-mini' has no tag 'shrt' \(it has: short\)"):
        run_suite(srv, tmp_path / "bad", tags="shrt")


def test_an_agent_without_suite_tools_skips_the_prompts_that_need_them(decoys, hbench_plugin, scripted_server,
                                                                       tmp_path: Path) -> None:  # noqa: ANN001
    class PlainAgent(BuiltinAgent):
        name: ClassVar[str] = "plain"
        capabilities: ClassVar[frozenset[str]] = frozenset()

    class Plugin:
        @hookimpl
        def hbench_register_agents(self, register):  # noqa: ANN001, ANN201
            register(PlainAgent())

    hbench_plugin(Plugin(), name="plain-agent")
    srv = scripted_server(scripts(the_decoy(decoys)))
    (sc,) = run_suite(srv, tmp_path / "p", agent="plain", runs=1).scorecards
    p = prompts_of(sc)
    assert p["restraint"].skipped is None  # forbid_tools is judged on any agent's calls
    for pid in ("destructive", "precise", "followup", "perturn", "recovery", "decoys"):
        assert p[pid].skipped == "needs capability 'suite_tools'; agent 'plain' offers none", pid
    assert ("6 prompts skipped: agent 'plain' cannot offer a prompt its own tools, decoys or follow-up turns "
            "(capability 'suite_tools'); they count nowhere: destructive, precise") in sc.warnings[0]


# --------------------------------------------------------------------------- judge (pure)


def test_judge_why_names_what_went_wrong(decoys) -> None:  # noqa: ANN001
    from hbench.scenario import judge

    s = load_suite(SUITE, decoys)
    by = {p.id: p for p in s.prompts}
    read = [ToolCall(name="read_file", arguments={"path": "ops/expenses.md"})]  # followup expects a read
    ok = Attempt(lane="l", prompt_id="followup", n=1, answer="$1,980.20", answers=["$2,754.85", "$1,980.20"],
                 tool_calls=read)
    assert judge(by["followup"], ok).passed
    assert judge(by["followup"], attrs.evolve(ok, tool_calls=[])).why.startswith(
        "expected tool not called: read (no tool was called); the answer alone passed its check (")
    short = Attempt(lane="l", prompt_id="followup", n=1, answer="$2,754.85", answers=["$2,754.85"],
                    tool_calls=read)
    assert judge(by["followup"], short).why == ("ignored follow-up: answered 0 of 1 follow-ups "
                                                "(no answer to 'Sorry, I meant February.')")
    raising = type("Boom", (), {"check": lambda self, a: (_ for _ in ()).throw(RuntimeError("x"))})()
    p = by["restraint"]
    r = judge(attrs.evolve(p, check=raising), Attempt(lane="l", prompt_id="r", n=1, answer="Paris"))
    assert not r.passed and "RuntimeError" in r.why
    calls = [ToolCall(name="READ_FILE", arguments={"path": "x"})]
    forbidden = attrs.evolve(p, forbid_tools=("read_file",))
    assert judge(forbidden, Attempt(lane="l", prompt_id="r", n=1, answer="Paris", tool_calls=calls)).why.startswith(
        "forbidden call READ_FILE(")
    assert judge(p, Attempt(lane="l", prompt_id="r", n=1, answer="Paris")).passed
    assert isinstance(judge(p, Attempt(lane="l", prompt_id="r", n=1, answer="Rome")), CheckResult)


# --------------------------------------------------------------------------- --prefer


def _card(name: str, pass_rate: float, ci: tuple[float, float], mem: float | None, tok_s: float | None,
          p50: float | None) -> Any:

    from hbench.report import load_scorecard

    sc = load_scorecard(DATA / "scorecards" / "llamacpp-qwen3-8b.json")
    sc.lane = {**sc.lane, "name": name}
    sc.pass_rate, sc.pass_rate_ci95 = pass_rate, list(ci)
    sc.telemetry = attrs.evolve(sc.telemetry, unified_used_gb_max=mem, gpu_mem_used_gb_max=None, rss_gb_max=None)
    sc.throughput = attrs.evolve(sc.throughput, tok_s=tok_s)
    sc.latency = attrs.evolve(sc.latency, p50_s=p50)
    return sc


def test_prefer_orders_lanes_tied_on_quality_and_says_by_how_much() -> None:
    from hbench.scoring import rank

    # the seed article: 8/8 both, 90% vs 88%, 97.8 GB vs 31.8 GB peak
    big = _card("gptoss-vllm", 0.90, (0.80, 0.96), 97.8, 60.0, 4.0)
    small = _card("qwen-llamacpp", 0.88, (0.77, 0.94), 31.8, 40.0, 3.0)
    r = rank([big, small])
    assert [x.scorecard.lane["name"] for x in r] == ["qwen-llamacpp", "gptoss-vllm"]
    assert r[0].decided_by == "tied on quality; qwen-llamacpp ranks first: 31.8 GB vs 97.8 GB peak (--prefer memory)"
    assert [x.rank for x in r] == [1, 2] and r[1].decided_by == ""
    r = rank([small, big], prefer="speed")
    assert r[0].scorecard.lane["name"] == "gptoss-vllm" and r[0].decided_by.endswith("60.0 vs 40.0 tok/s (--prefer speed)")
    r = rank([big, small], prefer="latency")
    assert r[0].scorecard.lane["name"] == "qwen-llamacpp" and "3.00 s vs 4.00 s p50 latency" in r[0].decided_by
    # a lane without the figure: the quality order stands, and the line says why
    r = rank([big, _card("qwen-llamacpp", 0.88, (0.77, 0.94), None, 40.0, 3.0)])
    assert r[0].scorecard.lane["name"] == "gptoss-vllm" and "no memory figure for every tied lane" in r[0].decided_by
    # not tied (intervals apart): memory never outranks quality
    r = rank([big, _card("tiny", 0.40, (0.25, 0.55), 2.0, 90.0, 1.0)])
    assert r[0].scorecard.lane["name"] == "gptoss-vllm" and r[0].decided_by == ""
    with pytest.raises(ValueError, match="unknown preference 'vram'"):
        rank([big], prefer="vram")


def test_prefer_never_puts_a_lane_with_fewer_core_prompts_first() -> None:
    """Overlapping intervals alone are not a quality tie: core_pass is the first rank key, so
    a 3/4 lane with less memory stays below a 4/4 lane whatever the preference."""
    from hbench.scoring import rank

    better = _card("four-of-four", 0.85, (0.64, 0.95), 38.5, 88.3, 2.0)
    fewer = _card("three-of-four", 0.80, (0.58, 0.92), 9.8, 120.0, 1.0)
    fewer.core_pass = better.core_pass - 1
    for prefer in ("memory", "speed", "latency"):
        r = rank([fewer, better], prefer=prefer)
        assert [x.scorecard.lane["name"] for x in r] == ["four-of-four", "three-of-four"], prefer
        assert r[0].decided_by == "" and "statistically tied" in r[1].reason


def test_prefer_is_checked_in_hbench_toml(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from hbench.config import load_config
    from hbench.errors import ConfigError

    (tmp_path / "hbench.toml").write_text('[run]\nprefer = "vram"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"prefer: 'vram' is not a preference \(choose one of memory, speed, latency"):
        load_config()
    (tmp_path / "hbench.toml").write_text('[run]\nprefer = "speed"\ntags = "short"\n')
    assert load_config().run.prefer == "speed"


def test_reports_show_difficulty_tags_and_categories(decoys, scripted_server, tmp_path: Path) -> None:  # noqa: ANN001
    srv = scripted_server(scripts(the_decoy(decoys)))
    run_suite(srv, tmp_path / "r", runs=1, report="json,md,html")
    md = (tmp_path / "r" / "summary.md").read_text()
    assert "| Prompt | category | difficulty · tags |" in md
    assert "| restraint | restraint | 1 · short |" in md and "| perturn | correction | 3 |" in md
    assert "| selection | 1 | core 1/1 · 100% |" in md  # runs=1: the right attempt of each script
    page = (tmp_path / "r" / "report.html").read_text()
    assert 'id="categories"' in page and 'id="chart-categories"' in page
    assert 'title="difficulty 3 of 3">d3</span>' in page and '<span class="tag">short</span>' in page


@given(st.sets(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), min_size=1, max_size=30), st.text(max_size=10),
       st.data())
def test_decoy_choice_is_a_function_of_suite_prompt_and_pool(pool: set[str], prompt_id: str, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, len(pool)))
    names = sorted(pool)
    shuffled = data.draw(st.permutations(names))
    picked = choose_decoys("suite", prompt_id, names, n)
    assert picked == choose_decoys("suite", prompt_id, shuffled, n)  # not the pool's order
    assert len(picked) == n == len(set(picked)) and set(picked) <= pool
    with pytest.raises(ValueError, match="decoys asked for"):
        choose_decoys("suite", prompt_id, names, len(pool) + 1)
