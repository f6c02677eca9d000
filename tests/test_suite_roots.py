"""Issue 15: every file a suite's loader reads, and every fixture root, resolves inside
the suite folder. A ``fixtures/`` (or v0.1 ``scratch/``) that is a symlink to a folder
outside was copied into every attempt, sent to the lane and written to the journal and
the reports; a planted canary must now appear in no output at all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hbench.cli import main
from hbench.errors import SuiteError
from hbench.plugin_manager import get_registries
from hbench.suite import DEFAULT_SYSTEM_PROMPT, load_suite, rendered_fixtures
from hbench.testing import answer, call

CANARY = "CANARY-3f9d1c-BEGIN-OPENSSH-PRIVATE-KEY"
PROMPT = {"id": "secret", "category": "grounding", "prompt": "What does the key file say?",
          "expect_tool_any": ["read"], "check": {"kind": "substring", "any": ["canary"]}}


def outside(tmp_path: Path) -> Path:
    """A folder outside the suite holding the canary (think ~/.ssh)."""
    d = tmp_path / "home" / ".ssh"
    d.mkdir(parents=True)
    (d / "id_rsa").write_text(f"-----{CANARY}-----\n")
    return d


def native_suite(root: Path, *, link_fixtures_to: Path | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "suite.toml").write_text('name = "mini"\nversion = "1"\nsystem_prompt = "Use the tools."\n')
    (root / "prompts.jsonl").write_text(json.dumps(PROMPT) + "\n")
    (root / "ground_truth.json").write_text("{}")
    if link_fixtures_to is not None:
        (root / "fixtures").symlink_to(link_fixtures_to, target_is_directory=True)
    return root


def v01_suite(root: Path, *, link_scratch_to: Path | None = None) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "data" / "train.jsonl").write_text(json.dumps(PROMPT) + "\n")
    (root / "ground_truth.json").write_text("{}")
    if link_scratch_to is not None:
        (root / "scratch").symlink_to(link_scratch_to, target_is_directory=True)
    return root


def problems_of(path: Path) -> list[str]:
    with pytest.raises(SuiteError) as info:
        load_suite(path, get_registries())
    return info.value.problems


def every_output(out: Path, *texts: str) -> str:
    """Every byte hbench wrote under ``out`` plus the given texts, as one string."""
    parts = list(texts)
    if out.exists():
        for p in sorted(out.rglob("*")):
            if p.is_file() and not p.is_symlink():
                parts.append(p.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


@pytest.mark.parametrize("layout, root_name", [("native", "fixtures"), ("v0.1", "scratch")])
def test_a_symlinked_root_is_a_validation_error_and_the_canary_reaches_no_output(
        layout, root_name, tmp_path, scripted_server, capsys):
    secret = outside(tmp_path)
    suite = (native_suite(tmp_path / "suite", link_fixtures_to=secret) if layout == "native"
             else v01_suite(tmp_path / "suite", link_scratch_to=secret))
    # hbench validate: refused, naming the root (before: "ok")
    with pytest.raises(SystemExit) as exc:
        main(["validate", str(suite)])
    assert exc.value.code == 2
    err = capsys.readouterr()
    assert f"{root_name}: is a symlink (to {secret})" in err.out
    # hbench run against a lane that would read the key: refused before anything is copied
    srv = scripted_server({"key file": [call("list_dir", path="."), call("read_file", path="id_rsa"),
                                        answer("it says canary")]})
    out = tmp_path / "results"
    with pytest.raises(SystemExit) as exc:
        main(["run", "--suite", str(suite), "--lane-url", srv.url, "--model", "m", "--runs", "1",
              "--out", str(out), "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr()
    sent = json.dumps([r.to_json() for r in srv.requests])
    assert CANARY not in every_output(out, err.out, err.err, sent)
    assert srv.chat_requests == []
    assert (secret / "id_rsa").read_text() == f"-----{CANARY}-----\n"  # and the target is untouched


def test_a_root_symlinked_inside_the_suite_is_refused_too(tmp_path):
    suite = native_suite(tmp_path / "suite")
    (suite / "real").mkdir()
    (suite / "real" / "a.txt").write_text("a")
    (suite / "fixtures").symlink_to("real", target_is_directory=True)
    assert problems_of(suite) == ["fixtures: is a symlink (to real); a suite's fixtures/ must be a real folder "
                                  "inside the suite (replace the link with a copy of the files)"]


@pytest.mark.parametrize("name", ["suite.toml", "prompts.jsonl", "ground_truth.json"])
def test_a_suite_file_linked_from_outside_is_refused_and_not_read(tmp_path, name):
    secret = outside(tmp_path)
    suite = native_suite(tmp_path / "suite")
    real = suite / name
    (secret / name).write_bytes(real.read_bytes())  # a valid file, outside the suite
    real.unlink()
    real.symlink_to(secret / name)
    probs = problems_of(suite)
    assert any(p.startswith(f"{name}: resolves outside the suite folder (to {secret / name})") for p in probs), probs


def test_v01_data_folder_linked_from_outside_is_refused(tmp_path):
    secret = outside(tmp_path)
    (secret / "train.jsonl").write_text(json.dumps(PROMPT) + "\n")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "ground_truth.json").write_text("{}")
    (suite / "data").symlink_to(secret, target_is_directory=True)
    probs = problems_of(suite)
    assert probs == [f"data/train.jsonl: resolves outside the suite folder (to {secret / 'train.jsonl'}) through a "
                     "symlink; copy the file into the suite instead of linking it"]


def test_a_suite_reached_through_a_symlink_still_loads(tmp_path):
    suite = native_suite(tmp_path / "real-suite")
    (suite / "fixtures").mkdir()
    (suite / "fixtures" / "a.txt").write_text("hello")
    link = tmp_path / "suite-link"
    link.symlink_to(suite, target_is_directory=True)
    s = load_suite(link, get_registries())
    assert rendered_fixtures(s) == {"a.txt": b"hello"}


def test_a_root_swapped_for_a_link_after_loading_is_never_copied(tmp_path):
    secret = outside(tmp_path)
    suite = native_suite(tmp_path / "suite")
    (suite / "fixtures").mkdir()
    s = load_suite(suite, get_registries())
    os.rmdir(suite / "fixtures")
    (suite / "fixtures").symlink_to(secret, target_is_directory=True)
    with pytest.raises(SuiteError, match="is a symlink"):
        rendered_fixtures(s)


def test_system_prompt_is_optional_in_suite_toml(tmp_path):
    # before: "suite.toml: system_prompt: required key missing"
    suite = native_suite(tmp_path / "suite")
    (suite / "suite.toml").write_text('name = "mini"\nversion = "1"\n')
    assert load_suite(suite, get_registries()).system_prompt == DEFAULT_SYSTEM_PROMPT


@pytest.mark.parametrize("name, body", [
    ("suite.toml", 'name = "mini"\nversion = "1"\nx = ' + "[" * 3000 + "]" * 3000 + "\n"),
    ("suite.toml", 'name = "mini"\nversion = "1"\nx = ' + "[" * 150 + "]" * 150 + "\n"),
    ("ground_truth.json", '{"a": ' + "[" * 100000 + "]" * 100000 + "}"),
    ("ground_truth.json", '{"a": ' + "[" * 500 + "]" * 500 + "}"),
])
def test_deeply_nested_suite_files_are_one_line_naming_the_file(tmp_path, name, body):
    # before: RecursionError traceback
    suite = native_suite(tmp_path / "suite")
    (suite / name).write_text(body)
    assert problems_of(suite) == [f"{name}: nested deeper than 100 levels (flatten it)"]


def test_a_deeply_nested_prompt_line_names_the_file_and_line(tmp_path, capsys):
    suite = native_suite(tmp_path / "suite")
    deep = dict(PROMPT, id="deep", note=None)
    deep["check"] = {"kind": "substring", "any": "X"}
    line = json.dumps(deep).replace('"X"', "[" * 200000 + "]" * 200000)
    with (suite / "prompts.jsonl").open("a") as fh:
        fh.write(line + "\n")
    assert problems_of(suite) == ["prompts.jsonl:2: nested deeper than 100 levels (flatten it)"]
    with pytest.raises(SystemExit) as exc:
        main(["validate", str(suite)])
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_suite_files_with_a_bom_load(tmp_path):
    suite = native_suite(tmp_path / "suite")
    for name in ("suite.toml", "ground_truth.json", "prompts.jsonl"):
        p = suite / name
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    assert load_suite(suite, get_registries()).name == "mini"


@pytest.mark.parametrize("line, key", [("timeout_s = inf", "timeout_s"), ("temperature = nan", "temperature"),
                                       ("max_tokens = -5", "max_tokens"), ("runs = 0", "runs")])
def test_suite_defaults_that_would_fail_every_attempt_are_refused(tmp_path, line, key):
    # before: timeout_s = inf loaded, and every attempt died of OverflowError
    suite = native_suite(tmp_path / "suite")
    (suite / "suite.toml").write_text(f'name = "mini"\nversion = "1"\n[defaults]\n{line}\n')
    (problem,) = problems_of(suite)
    assert problem.startswith(f"suite.toml: defaults.{key}: ") and "is not usable: must be a finite number" in problem
