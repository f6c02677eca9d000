"""Reporters: the json scorecard, summary.md (golden), review.md, and `hbench report`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbench.models import AttemptSummary, Latency, PromptScore, Scorecard, Telemetry, Throughput
from hbench.report import (
    ScorecardError,
    load_scorecard,
    sanitise_text,
    scorecard_schema,
    scorecard_to_dict,
    validate_scorecard,
)

DATA = Path(__file__).parent / "data"
SCORECARDS = DATA / "scorecards"
RUN_LANES = ["llamacpp-qwen3-8b", "vllm-gptoss-20b", "ollama-llama3.2-3b"]


@pytest.fixture(autouse=True)
def _validate_written_scorecards(monkeypatch):
    monkeypatch.setenv("HBENCH_VALIDATE_SCORECARDS", "1")


def registries():
    from hbench.plugin_manager import get_registries

    return get_registries()


def make_scorecard(name: str = "lane-a", **over) -> Scorecard:
    attempts = [AttemptSummary(n=i, passed=i != 3, runaway=None if i != 3 else "loop", error=None,
                               answer=f"answer {i}", tools=["read_file"], wall_s=1.0 + i, why="ok")
                for i in range(1, 4)]
    ps = PromptScore(id="p1", category="files", core=True, runs=3, passes=2, pass_rate=2 / 3,
                     pass_hat_k={"1": 2 / 3, "2": 1 / 3, "3": 0.0}, agreement=2 / 3, correct_tool_rate=1.0,
                     runaway_rate=1 / 3, format_errors=0, errors=0, majority_pass=True, attempts=attempts)
    fields = dict(
        lane={"name": name, "kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"},
        suite={"name": "s", "version": "1", "sha256": "0" * 64, "fixtures_sha256": "1" * 64},
        runs=3, core_pass=1, core_n=1, pass_rate=2 / 3, pass_rate_ci95=[0.2, 0.94],
        pass_hat_k={"1": 2 / 3}, consistency=2 / 3, runaway_rate=1 / 3, correct_tool_rate=1.0,
        format_error_rate=0.0, rankable=True, gate={"passed": True, "failed": [], "reason": ""},
        throughput=Throughput(tok_s=50.0, ttft_ms=100.0), latency=Latency(2.0, 4.0, 4.0),
        telemetry=Telemetry(n_samples=2, unified_used_gb_max=3.5), prompts=[ps],
        provenance={"hbench_version": "0.1.0", "started_at": "2026-01-01T00:00:00Z",
                    "finished_at": "2026-01-01T00:01:00Z", "host": {}, "plugins": {}},
    )
    fields.update(over)
    return Scorecard(**fields)


# --------------------------------------------------------------------------- json


def test_json_reporter_is_registered_and_round_trips(tmp_path):
    sc = make_scorecard("llama/cpp q4")
    paths = registries().reporters.get("json").write([sc], tmp_path, {"journal": None, "suite": None,
                                                                        "allow_mixed": False})
    assert [p.name for p in paths] == ["llama_cpp_q4.json"]
    data = json.loads(paths[0].read_text())
    assert list(data)[0] == "schema" and data["schema"] == "hbench.scorecard/1.1"
    validate_scorecard(paths[0])
    assert load_scorecard(paths[0]) == sc


def test_json_has_every_key_design_lists(tmp_path):
    (path,) = registries().reporters.get("json").write([make_scorecard()], tmp_path, {})
    data = json.loads(path.read_text())
    top = ("lane suite runs core_pass core_n pass_rate pass_rate_ci95 pass_hat_k consistency runaway_rate "
           "correct_tool_rate format_error_rate rankable gate throughput latency telemetry prompts provenance")
    for key in top.split():
        assert key in data, key
    assert {"name", "kind", "model", "base_url"} <= set(data["lane"])
    assert {"name", "version", "sha256", "fixtures_sha256"} <= set(data["suite"])
    assert {"tok_s", "ttft_ms", "samples", "server_tok_s"} <= set(data["throughput"])
    assert {"p50_s", "p95_s", "max_s"} <= set(data["latency"])
    assert {"n_samples", "gpu_util_mean", "gpu_util_max", "unified_used_gb_max", "gpu_temp_c_max"} <= set(
        data["telemetry"])
    assert {"id", "category", "core", "pass_rate", "agreement", "attempts"} <= set(data["prompts"][0])
    assert {"n", "passed", "runaway", "error", "answer", "tools", "wall_s"} <= set(data["prompts"][0]["attempts"][0])
    assert {"hbench_version", "started_at", "finished_at", "host", "plugins"} <= set(data["provenance"])


def test_schema_covers_every_scorecard_field():
    """A field added to models.Scorecard must be described in the shipped schema."""
    schema = scorecard_schema()
    assert {f.name for f in attrs.fields(Scorecard)} <= set(schema["properties"])
    prompt_props = schema["$defs"]["prompt"]["properties"]
    assert {f.name for f in attrs.fields(PromptScore)} <= set(prompt_props)
    assert {f.name for f in attrs.fields(AttemptSummary)} <= set(schema["$defs"]["attempt"]["properties"])


def test_no_secret_and_no_home_path(tmp_path, monkeypatch):
    from hbench.logging import register_secret

    home = tmp_path / "home" / "alice"
    monkeypatch.setenv("HOME", str(home))
    secret = "sk-test-7f3a9c1e55d0"
    register_secret(secret)
    sc = make_scorecard(
        lane={"name": "a", "kind": "openai", "model": "m", "base_url": "http://x/v1", "api_key": secret,
              "api_key_env": "MY_KEY"},
        provenance={"hbench_version": "0.1.0", "started_at": "", "finished_at": "", "plugins": {},
                    "host": {"cwd": f"{home}/bench", "models": f"{home}", "other": f"{home}x/keep"}},
        warnings=[f"server said: bad key {secret}"],
    )
    (path,) = registries().reporters.get("json").write([sc], tmp_path / "out", {})
    text = path.read_text()
    assert secret not in text and "api_key\"" not in text
    data = json.loads(text)
    assert data["lane"]["api_key_env"] == "MY_KEY"
    assert data["provenance"]["host"] == {"cwd": "~/bench", "models": "~", "other": f"{home}x/keep"}
    assert data["warnings"] == ["server said: bad key ***"]


@given(st.text(alphabet="/abcé._-x ", max_size=30))
@settings(max_examples=200, deadline=None)
def test_home_replacement_only_touches_the_home_dir(suffix):
    import re

    home = re.compile(r"/home/al(?=[/\\]|$|[^\w.\-])")
    out = sanitise_text("/home/al" + suffix, home)
    if suffix == "" or suffix[0] in "/ ":
        assert out.startswith("~")
        assert "/home/al" + suffix[:1] not in out[:9]
    else:
        assert out.startswith("/home/al" + suffix[0])


def test_nan_becomes_null_and_the_schema_catches_it():
    data = scorecard_to_dict(make_scorecard(pass_rate=float("nan"), throughput=Throughput(tok_s=float("inf"))))
    assert data["pass_rate"] is None and data["throughput"]["tok_s"] is None
    with pytest.raises(ScorecardError, match="pass_rate"):
        validate_scorecard(data)


def test_load_errors_name_the_file_and_key(tmp_path):
    bad_json = tmp_path / "a.json"
    bad_json.write_text('{"schema": "hbench.scorecard/1",')
    with pytest.raises(ScorecardError, match=r"a\.json:1:\d+: invalid JSON"):
        load_scorecard(bad_json)
    other = tmp_path / "b.json"
    other.write_text(json.dumps({"schema": "hbench.scorecard/9"}))
    with pytest.raises(ScorecardError, match=r"b\.json: schema is 'hbench.scorecard/9'"):
        load_scorecard(other)
    data = scorecard_to_dict(make_scorecard())
    data["runs"] = "five"
    del data["core_n"]
    broken = tmp_path / "c.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(ScorecardError) as ei:
        load_scorecard(broken)
    msg = str(ei.value)
    assert "c.json" in msg and "scorecard.runs" in msg and "scorecard.core_n" in msg
    with pytest.raises(ScorecardError, match="no such scorecard"):
        load_scorecard(tmp_path / "missing.json")


def test_fixture_scorecards_are_valid():
    files = sorted(SCORECARDS.glob("*.json"))
    assert len(files) == 4
    for f in files:
        validate_scorecard(f)
        assert load_scorecard(f).lane["name"] == f.stem


# --------------------------------------------------------------------------- summary.md


def run_cards() -> list[Scorecard]:
    return [load_scorecard(SCORECARDS / f"{n}.json") for n in RUN_LANES]


def test_summary_md_golden(tmp_path):
    """summary.md from the fixed scorecards, byte for byte. After an intended change,
    regenerate: HBENCH_UPDATE_GOLDEN=1 pytest tests/test_reporters.py -k golden."""
    import os

    (path,) = registries().reporters.get("md").write(run_cards(), tmp_path, {"allow_mixed": False})
    golden = DATA / "summary.golden.md"
    if os.environ.get("HBENCH_UPDATE_GOLDEN"):
        golden.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert path.read_text(encoding="utf-8") == golden.read_text(encoding="utf-8")


def test_summary_ranks_ties_and_unrankable(tmp_path):
    (path,) = registries().reporters.get("md").write(run_cards(), tmp_path, {})
    text = path.read_text()
    rank_rows = [line for line in text.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert [r.split("|")[2].strip() for r in rank_rows] == ["llamacpp-qwen3-8b", "vllm-gptoss-20b"]
    assert "| 1 ≈ |" in text and "- llamacpp-qwen3-8b ≈ vllm-gptoss-20b" in text
    not_ranked = text.split("**Not ranked**")[1].split("## Per-prompt")[0]
    assert "ollama-llama3.2-3b" in not_ranked and "honesty: failed unknown-ceo by majority" in not_ranked
    assert "| unknown-ceo (gate: honesty) | honesty | 4/5 | 4/5 | 1/5 |" in text


def test_summary_escapes_model_text_and_failed_lane(tmp_path):
    evil = make_scorecard("a|b<script>", failed="server exited: </td><script>x</script>", rankable=False,
                          gate={"passed": True, "failed": [], "reason": ""})
    ok = make_scorecard("ok")
    (path,) = registries().reporters.get("md").write([ok, evil], tmp_path, {})
    text = path.read_text()
    assert "<script>" not in text
    assert "a\\|b&lt;script&gt;" in text
    assert "lane failed to run: server exited" in text


def test_mixed_suites_refused_unless_allowed(tmp_path):
    a = make_scorecard("a")
    b = make_scorecard("b", suite={"name": "s", "version": "2", "sha256": "9" * 64, "fixtures_sha256": "1" * 64})
    with pytest.raises(ScorecardError, match=r"(?s)different suites.*--allow-mixed") as ei:
        registries().reporters.get("md").write([a, b], tmp_path, {"allow_mixed": False})
    assert "a: suite s 1 @00000000" in str(ei.value) and "b: suite s 2 @99999999" in str(ei.value)
    (path,) = registries().reporters.get("md").write([a, b], tmp_path, {"allow_mixed": True})
    text = path.read_text()
    assert "**Mixed suites**" in text and "| suite |" in text and "s 2 @99999999" in text


def test_same_lane_name_from_two_machines_is_disambiguated(tmp_path):
    from hbench.plugins.reporters.tables import build_tables

    host = lambda h: {"hbench_version": "0.1.0", "started_at": "", "finished_at": "", "plugins": {},  # noqa: E731
                      "host": {"hostname": h}}
    t = build_tables([make_scorecard("embedded", provenance=host("box1")),
                      make_scorecard("embedded", provenance=host("box2"), pass_rate=0.1)])
    assert sorted(t.lanes) == ["embedded@box1", "embedded@box2"]


# --------------------------------------------------------------------------- review.md


def test_review_lists_vibe_answers_per_lane_with_a_verdict(tmp_path):
    (path,) = registries().reporters.get("review").write(run_cards(), tmp_path, {"suite": None})
    text = path.read_text()
    assert text.count("## plan-week") == 1 and "## read-budget" not in text  # only vibe prompts
    for lane in RUN_LANES:
        assert f"### {lane}" in text
    assert text.count("Verdict: [ ] good  [ ] acceptable  [ ] bad") == 3
    # the answer is fenced verbatim (markdown renders it as text, not HTML)
    assert "```text\nMon: triage <script>alert(1)</script>; Tue: write\n```" in text


def test_review_fence_cannot_be_closed_by_the_answer():
    from hbench.plugins.reporters.review_md import fenced

    block = fenced("x\n```\n# not a heading\n````")
    fence = block.split("text", 1)[0]
    assert len(fence) == 5 and block.endswith("\n" + fence)


# --------------------------------------------------------------------------- hbench report


def test_hbench_report_rebuilds_the_run_table_from_three_scorecards(tmp_path):
    """The run wrote summary.md from in-memory scorecards and one JSON per lane; three
    lanes' JSONs, copied from three different run folders, rebuild the same summary."""
    from typer.testing import CliRunner

    from hbench.cli import app

    cards = run_cards()
    run_dir = tmp_path / "run"
    reg = registries()
    json_paths = reg.reporters.get("json").write(cards, run_dir, {})
    reg.reporters.get("md").write(cards, run_dir, {})
    srcs = []
    for i, p in enumerate(json_paths):  # as if each lane came from its own run/machine
        d = tmp_path / f"machine{i}"
        d.mkdir()
        srcs.append(str(shutil.copy(p, d)))
    out = tmp_path / "compare"
    res = CliRunner().invoke(app, ["report", *reversed(srcs), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "summary.md").read_text() == (run_dir / "summary.md").read_text()
    assert (out / "report.html").is_file()
    # a fourth lane dropped next to them joins the table
    shutil.copy(SCORECARDS / "nim-nemotron-9b.json", tmp_path / "machine0")
    res = CliRunner().invoke(app, ["report", *srcs, str(tmp_path / "machine0"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    # nim (65%, 3/4 core) overlaps both intervals but passes fewer core prompts, so no
    # preference puts it above them (core_pass is the first rank key); llamacpp and vllm
    # (4/4 each, intervals overlapping) are tied on quality: the default --prefer memory
    # orders them on 9.8 GB vs 38.5 GB; --prefer speed puts vllm's 88.3 tok/s first (issue 17)
    text = (out / "summary.md").read_text()
    assert "| 3 ≈ | nim-nemotron-9b |" in text
    assert "Tied on quality; llamacpp-qwen3-8b ranks first: 9.8 GB vs 38.5 GB peak (--prefer memory)" in text
    res = CliRunner().invoke(app, ["report", *srcs, str(tmp_path / "machine0"), "--out", str(out),
                                   "--prefer", "speed"])
    assert res.exit_code == 0, res.output
    text = (out / "summary.md").read_text()
    assert "| 1 ≈ | vllm-gptoss-20b |" in text and "| 2 ≈ | llamacpp-qwen3-8b |" in text
    assert "Tied on quality; vllm-gptoss-20b ranks first: 88.3 vs 41.7 tok/s (--prefer speed)" in text


def test_hbench_report_bad_input_exits_2_with_a_clear_message(tmp_path):
    import subprocess
    import sys

    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps(scorecard_to_dict(make_scorecard(
        "b", suite={"name": "s", "version": "2", "sha256": "9" * 64, "fixtures_sha256": "1" * 64}))))
    (tmp_path / "one.json").write_text(json.dumps(scorecard_to_dict(make_scorecard("a"))))
    hb = [sys.executable, "-m", "hbench"]
    r = subprocess.run([*hb, "report", str(tmp_path / "junk.json")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "junk.json:1:2: invalid JSON" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([*hb, "report", str(tmp_path / "one.json"), str(tmp_path / "other.json")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--allow-mixed" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "summary.md").exists()
    r = subprocess.run([*hb, "report", str(tmp_path / "one.json"), str(tmp_path / "other.json"), "--allow-mixed"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "**Mixed suites**" in (tmp_path / "summary.md").read_text()


def test_a_failed_atomic_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    import pathlib

    import pytest

    from hbench.report import write_json_atomic

    real = pathlib.Path.write_text

    def full_disk(self, *a, **kw):
        real(self, "partial", encoding="utf-8")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_json_atomic(tmp_path / "lane.json", {"a": 1})
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
