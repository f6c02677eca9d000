"""Issue 15: ``--out`` owns only what hbench made.

Before: ``hbench run --out DIR`` silently deleted ``DIR/fixtures/`` (a user's own folder);
``[run] out = ""`` deleted ``./fixtures``; ``--out`` at the suite folder deleted the
suite's fixtures; and two runs on one folder had no lock (the second rotated the first's
live journal away). Each case here keeps every user file byte-identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from hbench.cli import main
from hbench.outdir import WORK, OutDirError, claim, holds_hbench_run, is_marked
from hbench.runner import RunOptions, run
from hbench.testing import answer


def make_suite(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "suite.toml").write_text('name = "mini"\nversion = "1"\n')
    (root / "prompts.jsonl").write_text(json.dumps(
        {"id": "hello", "prompt": "Say hello to the notes.", "check": {"kind": "substring", "any": ["hello"]}}) + "\n")
    (root / "ground_truth.json").write_text("{}")
    (root / "fixtures").mkdir()
    (root / "fixtures" / "notes.txt").write_text("the suite's own fixture\n")
    return root


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (folders as None, files as their bytes)."""
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        out[p.relative_to(root).as_posix()] = p.read_bytes() if p.is_file() else None
    return out


def user_folder(root: Path) -> Path:
    """A user's own folder that happens to hold fixtures/ and scratch/."""
    (root / "fixtures" / "deep").mkdir(parents=True)
    (root / "fixtures" / "deep" / "thesis.tex").write_text("years of work\n")
    (root / "scratch").mkdir()
    (root / "scratch" / "todo.md").write_text("- call mum\n")
    (root / "summary.md").write_text("my own summary\n")
    return root


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit code, stderr) of ``hbench ARGV`` in this process (main returns on 0)."""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def run_argv(srv, suite: Path, *more: str) -> list[str]:
    return ["run", "--suite", str(suite), "--lane-url", srv.url, "--model", "m", "--runs", "1",
            "--no-progress", "--report", "json", *more]


@pytest.fixture
def srv(scripted_server):
    return scripted_server({"hello": [answer("hello notes")]})


def test_a_users_folder_with_fixtures_is_refused_and_left_byte_identical(srv, tmp_path, capsys):
    suite = make_suite(tmp_path / "suite")
    mine = user_folder(tmp_path / "mine")
    before = snapshot(mine)
    code, err = cli(run_argv(srv, suite, "--out", str(mine)), capsys)
    assert code == 2
    assert f"--out {mine}: a folder that is not empty and holds no earlier hbench run" in err
    assert snapshot(mine) == before
    assert srv.chat_requests == []


@pytest.mark.parametrize("how", ["toml", "flag"])
def test_an_empty_out_is_refused_and_the_current_folder_is_left_byte_identical(srv, tmp_path, capsys,
                                                                                monkeypatch, how):
    suite = make_suite(tmp_path / "suite")
    cwd = user_folder(tmp_path / "cwd")
    monkeypatch.chdir(cwd)
    if how == "toml":
        (cwd / "hbench.toml").write_text('[run]\nout = ""\n')
        argv = run_argv(srv, suite)
        want = 'hbench.toml: run.out: empty'
    else:
        argv = run_argv(srv, suite, "--out", "")
        want = "--out '': empty"
    before = snapshot(cwd)
    code, err = cli(argv, capsys)
    assert code == 2 and want in err, err
    assert snapshot(cwd) == before


@pytest.mark.parametrize("where", [".", "results"])
def test_out_at_or_inside_the_suite_folder_is_refused(srv, tmp_path, capsys, where):
    suite = make_suite(tmp_path / "suite")
    before = snapshot(suite)
    out = suite / where
    code, err = cli(run_argv(srv, suite, "--out", str(out)), capsys)
    assert code == 2
    assert f"is the suite folder {suite} or inside it" in err
    assert snapshot(suite) == before
    # and the suite still validates with its fixture (before: "ok" with none)
    code, _ = cli(["validate", str(suite)], capsys)
    assert code == 0


def test_a_new_folder_is_made_marked_and_holds_the_working_files(srv, tmp_path):
    suite = make_suite(tmp_path / "suite")
    out = tmp_path / "results"
    opts = RunOptions(suite=str(suite), lane_url=srv.url, model="m", runs=1, out=str(out), report="json",
                      progress=False)
    result = run(opts)
    assert result.exit_code == 0
    assert is_marked(out / WORK) and holds_hbench_run(out)
    top = sorted(p.name for p in out.iterdir())
    assert top == [WORK, "journal.jsonl", "m.json"]
    assert (out / WORK / "fixtures" / "notes.txt").read_text() == "the suite's own fixture\n"
    assert not (out / WORK / "scratch").exists()  # every attempt's copy is gone
    # a second run, and a --resume, on hbench's own folder are accepted; the lock was released
    assert run(opts).exit_code == 0
    assert run(attrs.evolve(opts, resume=True)).exit_code == 0


def test_an_existing_empty_folder_is_accepted(srv, tmp_path):
    suite = make_suite(tmp_path / "suite")
    out = tmp_path / "empty"
    out.mkdir()
    assert run(RunOptions(suite=str(suite), lane_url=srv.url, model="m", runs=1, out=str(out), report="json",
                          progress=False)).exit_code == 0


def test_resume_onto_a_results_folder_of_an_earlier_hbench_is_accepted_and_its_files_kept(srv, tmp_path, capsys):
    # a results folder written before OUT/.hbench existed: journal.jsonl at the top, and the
    # rendered fixtures in OUT/fixtures. It is accepted (resume works) and nothing there is deleted.
    suite = make_suite(tmp_path / "suite")
    out = tmp_path / "results"
    code, _ = cli(run_argv(srv, suite, "--out", str(out)), capsys)
    assert code == 0
    import shutil

    shutil.rmtree(out / WORK)  # as an earlier hbench left it: no marker
    (out / "fixtures").mkdir()
    (out / "fixtures" / "notes.txt").write_text("rendered by an earlier hbench\n")
    assert holds_hbench_run(out) and not is_marked(out / WORK)
    before = {k: v for k, v in snapshot(out).items() if k.startswith("fixtures")}
    code, err = cli(run_argv(srv, suite, "--out", str(out), "--resume"), capsys)
    assert code == 0, err
    assert {k: v for k, v in snapshot(out).items() if k.startswith("fixtures")} == before


def test_a_second_run_on_a_folder_in_use_fails_at_once_and_changes_nothing(scripted_server, tmp_path, capsys):
    suite = make_suite(tmp_path / "suite")
    out = tmp_path / "results"
    slow = scripted_server({"hello": [answer("hello notes", latency_s=8)]})
    first = subprocess.Popen(
        [sys.executable, "-m", "hbench", *run_argv(slow, suite, "--out", str(out))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert slow.wait_for(lambda reqs: any(r.path.endswith("/chat/completions") for r in reqs), timeout=60)
        before = snapshot(out)
        code, err = cli(run_argv(slow, suite, "--out", str(out)), capsys)
        assert code == 2
        assert f"results dir in use by pid {first.pid} since " in err
        assert snapshot(out) == before  # the first run's live journal was not rotated away
        assert first.wait(timeout=120) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    journal = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    assert [r["type"] for r in journal].count("attempt") == 1
    assert not list(out.glob("journal.*.jsonl"))


def test_the_lock_is_released_when_the_run_is_refused_after_claiming(srv, tmp_path, capsys):
    suite = make_suite(tmp_path / "suite")
    out = tmp_path / "results"
    assert cli(run_argv(srv, suite, "--out", str(out)), capsys)[0] == 0
    other = make_suite(tmp_path / "other")
    (other / "suite.toml").write_text('name = "other"\nversion = "1"\n')
    code, err = cli(run_argv(srv, other, "--out", str(out), "--resume"), capsys)  # journal is another suite's
    assert code == 2 and "cannot --resume" in err
    with claim(out) as held:  # not left locked
        assert held.work == out / WORK


def test_hbench_deletes_only_inside_its_marked_folder(tmp_path):
    out = user_folder(tmp_path / "empty-then-used")
    with pytest.raises(OutDirError):
        claim(out)
    fresh = tmp_path / "fresh"
    with claim(fresh) as od:
        (fresh / "fixtures").mkdir()
        with pytest.raises(OutDirError, match="not inside hbench's own folder"):
            od.remove(fresh / "fixtures")
        with pytest.raises(OutDirError):
            od.remove(od.work)
        with pytest.raises(OutDirError):
            od.remove(od.work / ".." / "fixtures")
        (od.work / "scratch").mkdir()
        od.remove(od.work / "scratch")
        assert not (od.work / "scratch").exists() and (fresh / "fixtures").is_dir()
        (od.work / "marker.json").unlink()  # no marker: not hbench's any more
        (od.work / "x").mkdir()
        with pytest.raises(OutDirError):
            od.remove(od.work / "x")


def test_an_unmarked_dot_hbench_or_a_file_is_not_taken_over(tmp_path):
    out = tmp_path / "out"
    (out / WORK).mkdir(parents=True)
    (out / WORK / "mine.txt").write_text("x")
    (out / "journal.jsonl").write_text('{"type": "header", "schema": "hbench.journal/1"}\n')
    with pytest.raises(OutDirError, match="exists without hbench's marker"):
        claim(out)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutDirError, match="exists and is not a folder"):
        claim(f)
