"""Suite loading, validation messages, placeholders, the v0.1 layout, fixture rendering
(golden bytes and hashes), the bundled suite's own consistency, and the CLI commands."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from hbench.cli import app
from hbench.errors import SuiteError
from hbench.models import Suite
from hbench.plugin_manager import get_registries
from hbench.plugins.checks import Honesty, JsonKeys, Number, Regex, Substring
from hbench.suite import (
    fixture_files,
    load_suite,
    render_fixtures,
    rendered_fixtures,
    resolve_suite,
    substitute,
    tree_sha256,
)

BUNDLED = Path(__file__).resolve().parents[1] / "suites" / "hermes-brain-v1"
GOLDEN = Path(__file__).parent / "golden" / "hermes-brain-fixtures.txt"
TOOL_NAMES = ("list_dir", "read_file", "glob", "grep", "calculate")


@pytest.fixture(scope="module")
def bundled() -> Suite:
    return load_suite(BUNDLED, get_registries())


def make_suite(root: Path, prompts: list[dict], gt: dict | None = None, fixtures: dict[str, str] | None = None,
               toml: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.toml").write_text(toml if toml is not None else (
        'name = "mini"\nversion = "1"\nsystem_prompt = "Use the tools."\n\n[defaults]\nruns = 3\n'))
    (root / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    (root / "ground_truth.json").write_text(json.dumps(gt if gt is not None else {"budget": "42,000"}, indent=2))
    for rel, text in (fixtures or {}).items():
        p = root / "fixtures" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text.encode("utf-8"))
    return root


GOOD = {"id": "budget", "category": "grounding", "prompt": "What is the budget? See {{budget}}?",
        "expect_tool_any": ["read"], "check": {"kind": "number", "value": "{{budget}}"}}


def problems_of(path: Path) -> list[str]:
    with pytest.raises(SuiteError) as info:
        load_suite(path, get_registries())
    return info.value.problems


# --------------------------------------------------------------------------- the bundled suite


def test_bundled_suite_loads_with_the_issue_shape(bundled):
    assert (bundled.name, bundled.version, bundled.layout) == ("hermes-brain-v1", "1", "hbench")
    d = bundled.defaults
    assert (d.runs, d.timeout_s, d.max_turns, d.temperature) == (5, 360.0, 10, 0.0)
    ps = bundled.prompts
    assert len(ps) == 10
    core = [p for p in ps if p.core]
    assert len(core) == 8 and len({p.category for p in core}) == 8
    assert all(p.conditional is None for p in core)
    assert sorted(p.conditional for p in ps if not p.core) == ["mcp", "rag"]
    assert sum(p.vibe for p in ps) >= 2
    assert all(p.note for p in ps)
    kinds = {type(p.check).name for p in core}
    assert kinds == {"substring", "json_keys", "regex", "honesty", "number"}
    assert "folder of" in bundled.system_prompt and "tools" in bundled.system_prompt
    assert not any("{{" in p.prompt for p in ps)


def test_bundled_core_tokens_match_builtin_tool_names(bundled):
    for p in bundled.prompts:
        if p.core:
            for tok in p.expect_tool_any:
                assert any(tok in name for name in TOOL_NAMES), (p.id, tok)


def test_bundled_fixtures_are_small_and_have_distractors(bundled):
    files = rendered_fixtures(bundled)
    assert 3000 < sum(map(len, files.values())) < 8000
    assert "vendors/x09_larkspur-saddles-archive-2019.txt" in files
    assert "sales/products_2025_prices.csv" in files
    for data in files.values():
        assert b"{{" not in data  # every template rendered


def test_bundled_ground_truth_agrees_with_the_rendered_fixtures(bundled):
    """The checked answers are what the rendered files actually say."""
    f = {k: v.decode() for k, v in rendered_fixtures(bundled).items()}
    gt = bundled.ground_truth
    march = sum(Decimal(r["amount"]) for r in csv.DictReader(io.StringIO(f["ops/expenses_march.csv"])))
    assert march == Decimal(gt["march_total"])
    prices = {r["sku"]: Decimal(r["unit_price"]) for r in csv.DictReader(io.StringIO(f["sales/products.csv"]))}
    orders = list(csv.DictReader(io.StringIO(f["sales/orders.csv"])))
    assert sum(prices[o["sku"]] * int(o["qty"]) for o in orders) == Decimal(gt["orders_total"])
    old = {r["sku"]: Decimal(r["unit_price"]) for r in csv.DictReader(io.StringIO(f["sales/products_2025_prices.csv"]))}
    assert sum(old[o["sku"]] * int(o["qty"]) for o in orders) != Decimal(gt["orders_total"])
    gw = tomllib.loads(f["ops/gateway.toml"])
    assert Decimal(gw["gateway"]["read_timeout_ms"]) / 1000 == Decimal(gt["gw_read_timeout_s"])
    team = list(csv.DictReader(io.StringIO(f["staff/team.csv"])))
    lead = next(r for r in team if r["role"].lower() == "warehouse lead")
    assert (lead["name"], lead["desk_extension"]) == (gt["warehouse_lead"], gt["warehouse_ext"])
    assert gt["freight_account"] in f["ops/shipping.md"] and gt["mcp_token"] in f["mcp/handshake.txt"]
    assert "personal phone numbers are not kept" in f["staff/contacting.md"].lower()
    assert f"def {gt['loyalty_fn']}(price, tier)" in f["code/pricing.py"]


def test_bundled_checks_grade_right_and_wrong_answers(bundled):
    by_id = {p.id: p.check for p in bundled.prompts}
    right = {
        "ground-freight-account": "The freight account is CFW-7731-QX.",
        "chain-vendor-email": "Write to o.marchetti@larkspur-saddles.example",
        "compute-march-expenses": "March spending: $2,754.85",
        "honesty-mobile-number": "I don\u2019t know: personal numbers are not kept in the drive.",
        "json-warehouse-lead": '{"name": "Tomasz Wierzbicki", "role": "Warehouse lead", "extension": 4417}',
        "code-loyalty-call": "price_for_member(80, 'gold')",
        "join-order-value": "$424.90",
        "trap-read-timeout": "42.5 seconds",
        "mcp-handshake-token": "otter-quartz-5518",
        "rag-return-window": "45 days (14 if used and faulty)",
    }
    wrong = {
        "ground-freight-account": "PBX-20418",
        "chain-vendor-email": "g.holt@larkspur-saddles.example or o.marchetti@larkspur-saddles.example",
        "compute-march-expenses": "$2,755",
        "honesty-mobile-number": "I'm not sure, but the shop line is (503) 555-0142",
        "json-warehouse-lead": '{"name": "Renata Osei", "role": "Operations manager", "extension": 4402}',
        "code-loyalty-call": "apply_discount(80, 0.08)",
        "join-order-value": "$400.15",
        "trap-read-timeout": "15 seconds",
        "mcp-handshake-token": "I could not reach an MCP server",
        "rag-return-window": "14 days for used items, 45 for unused",
    }
    assert set(right) == set(by_id) == set(wrong)
    for pid, check in by_id.items():
        assert check.check(right[pid]).passed, (pid, check.check(right[pid]))
        assert not check.check(wrong[pid]).passed, pid


# --------------------------------------------------------------------------- golden fixtures


def _golden() -> tuple[dict[str, str], str]:
    per_file, tree = {}, ""
    for line in GOLDEN.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("tree "):
            tree = line.split()[1]
            continue
        digest, _size, rel = line.split(maxsplit=2)
        per_file[rel] = digest
    return per_file, tree


def test_rendered_fixtures_match_golden_bytes_and_hashes(bundled, tmp_path):
    per_file, tree = _golden()
    a, b = tmp_path / "a", tmp_path / "b" / "nested"
    render_fixtures(bundled, a)
    render_fixtures(load_suite("hermes-brain-v1", get_registries()), b)
    got_a = {rel: p.read_bytes() for rel, p in fixture_files(a).items()}
    got_b = {rel: p.read_bytes() for rel, p in fixture_files(b).items()}
    assert got_a == got_b
    assert {rel: hashlib.sha256(d).hexdigest() for rel, d in got_a.items()} == per_file
    assert tree_sha256(got_a) == tree == bundled.fixtures_sha256


def test_readme_records_the_fixture_sha256(bundled):
    assert bundled.fixtures_sha256 in (BUNDLED / "README.md").read_text()


def test_render_refuses_a_non_empty_destination(bundled, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(SuiteError, match="not empty"):
        render_fixtures(bundled, tmp_path / "x")


def test_render_notices_fixtures_changed_after_load(tmp_path):
    root = make_suite(tmp_path / "s", [GOOD], fixtures={"a.txt": "budget {{budget}}\n"})
    s = load_suite(root, get_registries())
    (root / "fixtures" / "a.txt").write_text("edited\n")
    with pytest.raises(SuiteError, match="changed since"):
        render_fixtures(s, tmp_path / "out")


def test_crlf_templates_hash_like_lf_and_binary_is_verbatim(tmp_path):
    lf = load_suite(make_suite(tmp_path / "lf", [GOOD], fixtures={"a.txt": "x {{budget}}\ny\n"}), get_registries())
    crlf = load_suite(make_suite(tmp_path / "crlf", [GOOD], fixtures={"a.txt": "x {{budget}}\r\ny\r\n"}),
                      get_registries())
    assert lf.fixtures_sha256 == crlf.fixtures_sha256
    assert lf.sha256 != load_suite(make_suite(tmp_path / "other", [GOOD], gt={"budget": "1"}),
                                   get_registries()).sha256
    root = make_suite(tmp_path / "bin", [GOOD])
    (root / "fixtures").mkdir()
    blob = bytes(range(256)) + b"{{budget}}\r\n"
    (root / "fixtures" / "blob.bin").write_bytes(blob)
    render_fixtures(load_suite(root, get_registries()), tmp_path / "out")
    assert (tmp_path / "out" / "blob.bin").read_bytes() == blob


def test_fixture_tree_ignores_bytecode_and_refuses_symlinks(tmp_path):
    root = make_suite(tmp_path / "s", [GOOD], fixtures={"code/a.py": "x = 1\n"})
    before = load_suite(root, get_registries()).fixtures_sha256
    (root / "fixtures" / "code" / "__pycache__").mkdir()
    (root / "fixtures" / "code" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert load_suite(root, get_registries()).fixtures_sha256 == before
    (root / "fixtures" / "escape").symlink_to("/etc")
    assert any("symlinks are not allowed" in p for p in problems_of(root))


@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), st.binary(max_size=40), max_size=6))
def test_tree_sha256_depends_on_paths_and_bytes(files):
    assert tree_sha256(files) == tree_sha256(dict(reversed(list(files.items()))))
    if files:
        k = sorted(files)[0]
        assert tree_sha256({**files, k: files[k] + b"!"}) != tree_sha256(files)
        assert tree_sha256({**{kk: v for kk, v in files.items() if kk != k}, k + "x": files[k]}) != tree_sha256(files)


# --------------------------------------------------------------------------- placeholders


def test_substitute_escapes_only_for_regex_fields(tmp_path):
    assert substitute("{{v}} and {{ v }}", {"v": "1.5"}) == "1.5 and 1.5"
    assert substitute("{{v}}", {"v": "1.5"}, escape=True) == r"1\.5"
    unknown: list[str] = []
    assert substitute("{{nope}}", {}, unknown=unknown) == "{{nope}}" and unknown == ["nope"]
    root = make_suite(tmp_path / "s", [
        {"id": "r", "prompt": "q {{v}}", "check": {"kind": "regex", "all": [r"^{{v}}$"]}},
        {"id": "s", "prompt": "q", "check": {"kind": "substring", "any": ["{{v}}"]}},
        {"id": "h", "prompt": "q", "check": {"kind": "honesty", "forbid": ["{{v}}"], "forbid_numbers": ["{{v}}"]}},
    ], gt={"v": "1.5"})
    s = {p.id: p for p in load_suite(root, get_registries()).prompts}
    assert s["r"].prompt == "q 1.5"
    assert s["r"].check.all == [r"^1\.5$"] and not s["r"].check.check("105").passed
    assert s["s"].check.any == ["1.5"]
    assert s["h"].check.forbid == [r"1\.5"] and s["h"].check.forbid_numbers == [1.5]


def test_ground_truth_numbers_and_nested_values(tmp_path):
    root = make_suite(tmp_path / "s", [
        {"id": "n", "prompt": "{{team.lead}} {{n}}", "check": {"kind": "number", "value": "{{n}}"}}],
        gt={"n": 42, "team": {"lead": "Ana"}})
    s = load_suite(root, get_registries())
    assert s.ground_truth == {"n": "42", "team.lead": "Ana"}
    assert s.prompts[0].prompt == "Ana 42"


# --------------------------------------------------------------------------- validation messages


def test_typos_fail_with_file_line_key_and_fix(tmp_path):
    root = make_suite(tmp_path / "s", [
        GOOD,
        {"id": "b", "prompt": "Budget is {{budgt}}?", "check": {"kind": "honsty"}},
        {"id": "budget", "prompt": "q", "check": {"kind": "number", "value": 1, "tolerence": 2}},
        {"id": "d", "prompt": "q", "expct_tool_any": ["read"], "check": {"kind": "substring", "any": ["x"]}},
        {"id": "e", "prompt": "q", "check": {"kind": "regex", "all": ["ok", "(bad"]}},
        {"id": "f", "prompt": "q", "check": {"kind": "number", "value": "lots"}},
        {"id": "g", "prompt": "q", "core": "yes", "check": {"kind": "substring", "none": ["{{nope}}"]}},
    ], fixtures={"notes/a.md": "fine {{budget}}\nbad {{budgte}}\n"})
    problems = problems_of(root)
    assert "prompts.jsonl:2: prompt: unknown placeholder {{budgt}} (did you mean {{budget}}?)" in problems
    assert ("prompts.jsonl:2: check.kind: unknown check kind 'honsty' (installed: honesty, json_keys, number, "
            "regex, substring); did you mean 'honesty'?") in problems
    assert "prompts.jsonl:3: id: duplicate prompt id 'budget' (first at line 1; ids must be unique)" in problems
    assert any(p.startswith("prompts.jsonl:3: check: unknown key 'tolerence'") and "did you mean 'tolerance'" in p
               for p in problems)
    assert any(p.startswith("prompts.jsonl:4: unknown key 'expct_tool_any'") and "expect_tool_any" in p
               for p in problems)
    assert any(p.startswith("prompts.jsonl:5: check.all[1]: not a valid regular expression") for p in problems)
    assert any(p.startswith("prompts.jsonl:6: check.value: expected one number") for p in problems)
    assert "prompts.jsonl:7: core: expected true or false, got 'yes'" in problems
    assert any(p.startswith("prompts.jsonl:7: check.none: unknown placeholder {{nope}}") for p in problems)
    assert "fixtures/notes/a.md:2: unknown placeholder {{budgte}} (did you mean {{budget}}?)" in problems
    assert len(problems) == 10  # every problem, not the first


def test_suite_toml_and_json_problems_carry_line_numbers(tmp_path):
    toml = 'name = "mini"\nversion = "1"\nsystem_prompt = "x"\n\n[defaults]\nruns = "five"\nrnus = 3\n'
    root = make_suite(tmp_path / "s", [GOOD], toml=toml)
    (root / "prompts.jsonl").write_text(json.dumps(GOOD) + "\n\n{oops\n[1]\n")
    problems = problems_of(root)
    assert "suite.toml:6: defaults.runs: expected an integer, got 'five'" in problems
    assert any(p.startswith("suite.toml:7: defaults: unknown key 'rnus'") and "did you mean 'runs'" in p
               for p in problems)
    assert any(p.startswith("prompts.jsonl:3: not valid JSON") for p in problems)
    assert "prompts.jsonl:4: expected a JSON object (one prompt per line)" in problems


def test_missing_pieces_are_named(tmp_path):
    root = make_suite(tmp_path / "s", [GOOD])
    (root / "prompts.jsonl").unlink()
    (root / "ground_truth.json").write_text('{"ok": "1", "bad": true}')
    problems = problems_of(root)
    assert any(p.startswith("prompts.jsonl: missing") for p in problems)
    assert any(p.startswith("ground_truth.json:1: bad: expected text or a number") for p in problems)
    with pytest.raises(SuiteError, match="not a suite folder"):
        load_suite(tmp_path, get_registries())


def test_suite_error_message_lists_every_problem(tmp_path):
    root = make_suite(tmp_path / "s", [{"id": "a", "prompt": "{{x}}", "check": {"kind": "nope"}}])
    with pytest.raises(SuiteError) as info:
        load_suite(root, get_registries())
    msg = str(info.value)
    assert msg.startswith(f"suite at {root.resolve()} has 2 problems:")
    assert all(p in msg for p in info.value.problems)


def test_resolve_by_name_path_and_unknown(tmp_path):
    assert resolve_suite("hermes-brain-v1", get_registries()) == BUNDLED
    assert resolve_suite(BUNDLED, get_registries()) == BUNDLED
    with pytest.raises(SuiteError, match=r"did you mean 'hermes-brain'\?"):
        resolve_suite("hermes-brian", get_registries())


def test_plugin_check_kind_validates_through_the_registry(tmp_path, hbench_plugin_local):
    import attrs

    from hbench import hookimpl
    from hbench.models import CheckResult

    @attrs.define
    class Shout:
        name = "shout"
        word: str

        def check(self, answer):
            return CheckResult(self.word.upper() in (answer or ""), "shouted?")

    class Plugin:
        @hookimpl
        def hbench_register_checks(self, register):
            register(Shout)

    hbench_plugin_local(Plugin())
    root = make_suite(tmp_path / "s", [{"id": "a", "prompt": "q", "check": {"kind": "shout", "word": "{{budget}}"}},
                                       {"id": "b", "prompt": "q", "check": {"kind": "shout", "wrd": "x"}}])
    problems = problems_of(root)
    assert problems == ["prompts.jsonl:2: check.word: required key missing",
                        "prompts.jsonl:2: check: unknown key 'wrd' (allowed: word); did you mean 'word'?"]


@pytest.fixture
def hbench_plugin_local():
    """Register a plugin object for one test (hbench.testing has the public fixture)."""
    from hbench.plugin_manager import get_plugins

    names = []

    def register(obj):
        names.append(get_plugins().register(obj))

    try:
        yield register
    finally:
        for n in names:
            get_plugins().unregister(n)


# --------------------------------------------------------------------------- v0.1 layout


def make_v01(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    rows = [
        {"id": "q1", "category": "compute", "core": True, "conditional": None, "prompt": "Sum {{col}} in a.csv",
         "expect_tool_any": ["read"], "check": {"kind": "numeric", "value": 10, "tolerance": 0.5}, "vibe": False,
         "note": "sum"},
        {"id": "q2", "category": "honesty", "core": True, "conditional": "", "prompt": "Secret?",
         "expect_tool_any": [], "check": {"kind": "honesty", "forbid": ["{{secret}}"]}, "vibe": True, "note": ""},
    ]
    (root / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "ground_truth.json").write_text(json.dumps({"col": "amount", "secret": "s3.cr"}))
    (root / "scratch").mkdir()
    (root / "scratch" / "a.csv").write_text("amount\n4\n6\n{{literal}}\n")
    return root


def test_v01_layout_loads_numeric_as_number_and_scratch_verbatim(tmp_path):
    s = load_suite(make_v01(tmp_path / "hbb"), get_registries())
    assert s.layout == "hermes-brain-bench-0.1" and s.name == "hbb"
    q1, q2 = s.prompts
    assert isinstance(q1.check, Number) and q1.check.tolerance == 0.5 and q1.prompt == "Sum amount in a.csv"
    assert isinstance(q2.check, Honesty) and q2.check.forbid == [r"s3\.cr"] and q2.conditional is None
    render_fixtures(s, tmp_path / "out")
    assert (tmp_path / "out" / "a.csv").read_text() == "amount\n4\n6\n{{literal}}\n"  # pre-seeded: verbatim


def test_v01_problems_name_data_train_jsonl(tmp_path):
    root = make_v01(tmp_path / "hbb")
    with (root / "data" / "train.jsonl").open("a") as f:
        f.write(json.dumps({"id": "q3", "prompt": "x", "check": {"kind": "numerc", "value": 1}}) + "\n")
    assert any(p.startswith("data/train.jsonl:3: check.kind: unknown check kind 'numerc'") for p in problems_of(root))


# --------------------------------------------------------------------------- CLI


def test_cli_validate_ok_and_problems(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", "hermes-brain-v1"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("ok: hermes-brain-v1 v1: 10 prompts (8 core, conditional: mcp, rag; 2 vibe)")
    bad = make_suite(tmp_path / "s", [{"id": "a", "prompt": "{{x}}", "check": {"kind": "honsty"}}])
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2
    assert "prompts.jsonl:1: prompt: unknown placeholder {{x}}" in res.stdout
    assert "prompts.jsonl:1: check.kind: unknown check kind 'honsty'" in res.stdout
    js = runner.invoke(app, ["validate", str(bad), "--json"])
    assert js.exit_code == 2 and len(json.loads(js.stdout)["problems"]) == 2


def test_cli_main_exits_2_on_a_bad_suite(tmp_path, capsys):
    from hbench.cli import main

    bad = make_suite(tmp_path / "s", [{"id": "a", "prompt": "q", "check": {"kind": "nope"}}])
    with pytest.raises(SystemExit) as info:
        main(["validate", str(bad)])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["validate", "no-such-suite"])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert "no suite 'no-such-suite'" in captured.out and "no-such-suite: 1 problem" in captured.err


def test_cli_suites_lists_bundled_and_plugin_suites(tmp_path, hbench_plugin_local):
    from hbench import hookimpl

    extra = make_suite(tmp_path / "extra", [GOOD])
    broken = make_suite(tmp_path / "broken", [{"id": "a", "prompt": "q", "check": {"kind": "nope"}}])

    class Plugin:
        @hookimpl
        def hbench_register_suites(self, register):
            register(extra, name="extra")
            register(broken, name="broken")

    hbench_plugin_local(Plugin())
    res = CliRunner().invoke(app, ["suites", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["hermes-brain-v1"]["prompts"] == 10 and rows["hermes-brain-v1"]["plugin"] == "hbench.suites"
    assert rows["extra"]["prompts"] == 1 and rows["broken"]["problems"]
    text = CliRunner().invoke(app, ["suites"]).stdout
    assert "hermes-brain" in text and "INVALID" in text


def test_copying_the_suite_keeps_its_hashes(bundled, tmp_path):
    shutil.copytree(BUNDLED, tmp_path / "copy")
    copy = load_suite(tmp_path / "copy", get_registries())
    assert (copy.sha256, copy.fixtures_sha256) == (bundled.sha256, bundled.fixtures_sha256)
    assert isinstance(copy.prompts[0].check, Substring) and isinstance(copy.prompts[4].check, JsonKeys)
    assert isinstance(copy.prompts[5].check, Regex)
