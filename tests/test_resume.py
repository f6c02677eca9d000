"""Resume: kill -9 of `hbench run` halfway, then --resume repeats no attempt and ends with
the scorecard an uninterrupted run gets; Ctrl-C prints a working --resume command; a
journal of another suite or lane config is refused."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hbench.cli import main
from hbench.journal import completed, iter_records
from hbench.logging import configure
from hbench.runner import RunOptions, run
from test_runner import steady_scripts

RUNS = 3
TOTAL = 8 * RUNS  # 8 core prompts run with the builtin agent


def starts(srv: Any) -> Counter[str]:
    """Attempts the server saw start, by prompt script."""
    return Counter(r.script for r in srv.chat_requests if r.starts_attempt and r.script)


def comparable(card: dict[str, Any]) -> dict[str, Any]:
    """A scorecard without what legitimately differs between two runs (timings, telemetry)."""
    card = json.loads(json.dumps(card))
    for key in ("throughput", "telemetry", "latency", "provenance", "warnings", "efficiency"):
        card.pop(key, None)
    for key in ("ready_s", "resting_memory_gb", "resting_memory_source"):  # timings of getting ready
        card["lane"].pop(key, None)
    for p in card["prompts"]:
        p.pop("wall_s", None)
        for a in p["attempts"]:
            a.pop("wall_s", None)
    return card


def journaled(path: Path) -> int:
    return sum(1 for _, r in iter_records(path) if r["type"] == "attempt") if path.exists() else 0


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:  # main() points structlog at pytest's captured stderr: point it back
        configure("json", "warning", stream=sys.__stderr__)
    return code, capsys.readouterr().err


def spawn(srv: Any, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hbench", "run", "--lane-url", srv.url, "--model", "scripted-model",
         "--suite", "hermes-brain-v1", "--runs", str(RUNS), "--out", str(out), "--report", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_journal(path: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while journaled(path) < n:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < end, "the run did not journal in time"
        time.sleep(0.01)


@pytest.mark.slow
def test_kill_9_then_resume_repeats_nothing(scripted_server, tmp_path: Path) -> None:
    srv = scripted_server(steady_scripts(), latency_s=0.04)
    out = tmp_path / "killed"
    proc = spawn(srv, out)
    wait_journal(out / "journal.jsonl", TOTAL // 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    journal = out / "journal.jsonl"
    done = completed(journal, "scripted-model")
    assert TOTAL // 2 <= len(done) < TOTAL
    before = starts(srv)
    srv.clear_requests()

    result = run(RunOptions(lane_url=srv.url, model="scripted-model", suite="hermes-brain-v1", runs=RUNS,
                            out=str(out), report="json", progress=False, resume=True))
    assert result.exit_code == 0
    after = starts(srv)
    # the resumed run started exactly the attempts the journal lacked, no more
    assert sum(after.values()) == TOTAL - len(done)
    # at most the one attempt in flight at the kill ran twice in total
    assert TOTAL <= sum(before.values()) + sum(after.values()) <= TOTAL + 1
    final = completed(journal, "scripted-model")
    assert sorted(final) == sorted({(p, n) for p, _ in final for n in range(1, RUNS + 1)})
    assert len(final) == TOTAL
    keys = [(r["prompt_id"], r["n"]) for _, r in iter_records(journal) if r["type"] == "attempt"]
    assert len(keys) == len(set(keys)) == TOTAL  # never journaled twice

    # the same scorecard as an uninterrupted run, timings aside
    srv.set_scripts(steady_scripts())
    clean = run(RunOptions(lane_url=srv.url, model="scripted-model", suite="hermes-brain-v1", runs=RUNS,
                           out=str(tmp_path / "clean"), report="json", progress=False))
    resumed_card = json.loads((out / "scripted-model.json").read_text())
    clean_card = json.loads((tmp_path / "clean" / "scripted-model.json").read_text())
    assert comparable(resumed_card) == comparable(clean_card)
    assert resumed_card["provenance"]["resumed"] is True
    assert clean.scorecards[0].core_pass == result.scorecards[0].core_pass == 4


@pytest.mark.slow
def test_ctrl_c_prints_a_resume_command_that_finishes_the_run(scripted_server, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    srv = scripted_server(steady_scripts(), latency_s=0.04)
    out = tmp_path / "r"
    proc = spawn(srv, out)
    wait_journal(out / "journal.jsonl", 5, proc)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    line = next(ln for ln in stderr.splitlines() if ln.startswith("resume with: "))
    cmd = shlex.split(line.removeprefix("resume with: "))
    assert cmd[0] == "hbench" and "--resume" in cmd and "--out" in cmd
    n_before = journaled(out / "journal.jsonl")
    assert 5 <= n_before < TOTAL
    card = json.loads((out / "scripted-model.json").read_text())  # what it had, written
    assert any("interrupted" in w for w in card["warnings"])
    srv.clear_requests()
    code, err = cli(cmd[1:], capsys)
    assert code == 0, err
    assert sum(starts(srv).values()) == TOTAL - n_before
    assert len(completed(out / "journal.jsonl", "scripted-model")) == TOTAL


def test_resume_of_a_finished_run_sends_nothing(scripted_server, tmp_path: Path) -> None:
    srv = scripted_server(steady_scripts())
    o = dict(lane_url=srv.url, model="scripted-model", suite="hermes-brain-v1", runs=1, out=str(tmp_path / "r"),
             report="json", progress=False)
    first = run(RunOptions(**o))
    srv.clear_requests()
    again = run(RunOptions(**o, resume=True))
    assert srv.requests == []  # not even /v1/models: the lane is not reopened
    assert again.scorecards[0].throughput.tok_s == first.scorecards[0].throughput.tok_s
    assert comparable(json.loads(json.dumps(_card(again)))) == comparable(json.loads(json.dumps(_card(first))))
    assert "rebuilt from the journal" in " ".join(again.scorecards[0].warnings)


def _card(result: Any) -> dict[str, Any]:
    return json.loads((result.out_dir / "scripted-model.json").read_text())


def test_resume_refuses_another_suite_or_lane_config(scripted_server, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    srv = scripted_server(steady_scripts())
    out = tmp_path / "r"
    base = ["run", "--lane-url", srv.url, "--model", "scripted-model", "--runs", "1", "--out", str(out),
            "--report", "json", "--no-progress"]
    code, err = cli([*base, "--suite", "hermes-brain-v1"], capsys)
    assert code == 0, err
    n = journaled(out / "journal.jsonl")

    from hbench.suite import resolve_suite

    copy = tmp_path / "hermes-brain-edited"
    shutil.copytree(resolve_suite("hermes-brain-v1"), copy)
    gt = json.loads((copy / "ground_truth.json").read_text())
    gt["freight_account"] = "CFW-0000-XX"
    (copy / "ground_truth.json").write_text(json.dumps(gt))
    code, err = cli([*base, "--suite", str(copy), "--resume"], capsys)
    assert code == 2 and "cannot --resume" in err and "another --out" in err, err

    code, err = cli([*base, "--suite", "hermes-brain-v1", "--timeout", "99", "--resume"], capsys)
    assert code == 2 and "lane 'scripted-model'" in err and "changed" in err, err
    assert journaled(out / "journal.jsonl") == n  # nothing appended by a refused resume
