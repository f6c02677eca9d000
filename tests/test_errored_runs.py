"""End to end through `hbench run` against the scripted server: stack errors are the
stack's, not the brain's. A lane answering 500 to everything, one pointed at a wrong
model id (404), one that dies mid-run, a run interrupted with SIGINT, a skipped honesty
prompt, a 503 lane beside a healthy one (then --resume once it is fixed), --fail-under,
same-named lanes from two machines, and lanes that ran different prompt sets."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest

import hbench.suites

from hbench import hookimpl
from hbench.cli import main
from hbench.journal import completed, iter_records
from hbench.lanes import free_port
from hbench.logging import configure
from hbench.plugins.reporters.tables import host_name
from hbench.report import load_scorecard
from hbench.runner import RunOptions, run
from test_runner import HONESTY, steady_scripts

SUITE = "hermes-brain-v1"
SUITES = Path(hbench.suites.__path__[0])
#: every chat request answered 503, with Retry-After: 0 so the client's retries are quick
DOWN_503 = [{"content": "unused", "faults": [{"kind": "http", "status": 503, "retry_after_s": 0}]}]
DOWN_500 = [{"content": "unused", "faults": [{"kind": "http", "status": 500, "retry_after_s": 0}]}]


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:  # main() points structlog at pytest's captured stderr: point it back
        configure("json", "warning", stream=sys.__stderr__)
    out = capsys.readouterr()
    return code, out.out, out.err


def two_lanes(tmp_path: Path, broken: Any, healthy: Any) -> Path:
    cfg = tmp_path / "hbench.toml"
    cfg.write_text(f'[lanes.broken]\nkind = "openai"\nbase_url = "{broken.url}"\nmodel = "scripted-model"\n'
                   f'[lanes.healthy]\nkind = "openai"\nbase_url = "{healthy.url}"\nmodel = "scripted-model"\n')
    return cfg


def starts(srv: Any) -> Counter[str]:
    """Attempts the server saw start, by prompt script (throughput probes match none)."""
    return Counter(r.script for r in srv.chat_requests if r.starts_attempt and r.script)


def attempt_records(journal: Path, lane: str) -> list[dict[str, Any]]:
    return [r for _, r in iter_records(journal) if r["type"] == "attempt" and r["lane"] == lane]


def last_line(err: str) -> str:
    return [ln for ln in err.splitlines() if ln.strip()][-1]


# --------------------------------------------------------------------------- done when


def test_a_503_lane_beside_a_healthy_one_then_resume_once_fixed(scripted_server, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    broken = scripted_server(None, default=DOWN_503)
    healthy = scripted_server(steady_scripts())
    cfg = two_lanes(tmp_path, broken, healthy)
    out = tmp_path / "r"
    argv = ["--config", str(cfg), "run", "--lanes", "broken,healthy", "--suite", SUITE, "--runs", "3",
            "--out", str(out), "--report", "json,md,html", "--no-progress"]
    code, stdout, err = cli(argv, capsys)

    # hbench run exits 3
    assert code == 3, err
    card = json.loads((out / "broken.json").read_text())
    # it stops after 5 consecutive errors: 5 attempts journaled, the rest never sent
    assert len(attempt_records(out / "journal.jsonl", "broken")) == 5
    assert len(broken.chat_requests) == 5 * 4  # 5 attempts, each 1 try + the client's 3 bounded retries
    assert (card["complete"], card["attempts_planned"], card["attempts_scored"], card["errored"]) == (False, 24, 0, 5)
    assert card["incomplete_reason"] == (
        "5 of 24 attempts errored: HTTP 503: scripted fault: HTTP 503; stopped after 5 consecutive errored "
        "attempts (--max-consecutive-errors 5); 19 of 24 attempts did not run")
    assert card["rankable"] is False and card["schema"] == "hbench.scorecard/1.1"
    # the broken lane is not ranked, and its reason names the 503 (not honesty)
    summary = (out / "summary.md").read_text()
    not_ranked = summary.split("**Not ranked**")[1].split("## Per-prompt")[0]
    row = next(ln for ln in not_ranked.splitlines() if ln.startswith("| broken |"))
    assert "incomplete: 5 of 24 attempts errored: HTTP 503" in row and "honesty" not in row
    # the healthy lane is ranked alone
    ranked_rows = [ln for ln in summary.split("## Ranking")[1].split("**Not ranked**")[0].splitlines()
                   if ln.startswith("| 1 ")]
    assert [r.split("|")[2].strip() for r in ranked_rows] == ["healthy"]
    assert "Top lane: healthy " in summary and "Not ranked: broken (incomplete)" in summary
    assert "Top lane: broken" not in (out / "report.html").read_text()
    good = json.loads((out / "healthy.json").read_text())
    assert good["complete"] is True and good["rankable"] is True and good["errored"] == 0
    # the summary on stdout and the last stderr line say which lane failed what
    assert "broken: core 0/0" in stdout and "[not ranked: incomplete: 5 of 24 attempts errored: HTTP 503" in stdout
    line = last_line(err)
    assert line.startswith("exit 3: lane 'broken' incomplete: 5 of 24 attempts errored: HTTP 503") and "--resume" in line
    errored_keys = {(r["prompt_id"], r["n"]) for r in attempt_records(out / "journal.jsonl", "broken")}

    # after the server is fixed, --resume re-runs exactly the errored (and the missing) attempts
    broken.set_scripts(steady_scripts())
    broken.clear_requests()
    healthy.clear_requests()
    code, _stdout, err = cli(argv + ["--resume"], capsys)
    assert code == 0, err
    assert sum(starts(broken).values()) == 24 - 0  # 5 errored + 19 never run: every attempt of the lane
    assert healthy.chat_requests == []  # nothing of the complete lane runs again
    records = attempt_records(out / "journal.jsonl", "broken")
    assert len(records) == 5 + 24  # the old errored records are kept; the new ones supersede them
    rerun = [(r["prompt_id"], r["n"]) for r in records[5:]]
    assert errored_keys <= set(rerun) and len(rerun) == len(set(rerun)) == 24
    final = completed(out / "journal.jsonl", "broken")
    assert len(final) == 24 and all(a.error is None for a in final.values())
    card = json.loads((out / "broken.json").read_text())
    assert card["complete"] is True and card["errored"] == 0 and card["rankable"] is True
    assert card["core_pass"] == good["core_pass"]  # the same scripts as the healthy lane: the same verdicts


def test_resume_reruns_only_the_errored_attempts_of_a_flaky_lane(scripted_server, tmp_path: Path) -> None:
    """Errors that do not come 5 in a row: the lane runs to the end, incomplete, and
    --resume re-runs exactly those attempts."""
    scripts = steady_scripts()
    # the honesty prompt's 2nd attempt: 503 on every try of its first request
    scripts[HONESTY] = {"attempts": [scripts[HONESTY],
                                     [{"content": "I don't know.",
                                       "faults": [{"kind": "http", "status": 503, "retry_after_s": 0, "times": 4}]}],
                                     scripts[HONESTY]]}
    srv = scripted_server(scripts)
    o = RunOptions(lane_url=srv.url, model="scripted-model", suite=SUITE, runs=3, out=str(tmp_path / "r"),
                   report="json", progress=False)
    first = run(o)
    (sc,) = first.scorecards
    assert first.exit_code == 3 and not sc.complete and sc.errored == 1 and sc.attempts_planned == 24
    assert sc.incomplete_reason == "1 of 24 attempts errored: HTTP 503: scripted fault: HTTP 503"
    assert sc.gate["status"] == "passed"  # the 2 scored honesty attempts are evidence
    hon = {p.id: p for p in sc.prompts}["honesty-mobile-number"]
    assert (hon.runs, hon.errors) == (2, 1)
    assert "exit 3: lane 'scripted-model' incomplete: 1 of 24 attempts errored" in first.verdict
    srv.clear_requests()
    again = run(_resume(o))
    assert again.exit_code == 0
    assert starts(srv) == Counter({HONESTY: 1})  # exactly the errored attempt
    (sc,) = again.scorecards
    assert sc.complete and sc.rankable and sc.attempts_scored == 24


def _resume(o: RunOptions) -> RunOptions:
    import attrs

    return attrs.evolve(o, resume=True)


# --------------------------------------------------------------------------- the cases


def test_a_lane_answering_500_to_everything_is_not_top_lane(scripted_server, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The bug: its empty answers all 'agreed' (consistency 100%), it was ranked first, exit 0."""
    srv = scripted_server(None, default=DOWN_500)
    out = tmp_path / "r"
    code, stdout, err = cli(["run", "--lane-url", srv.url, "--model", "scripted-model", "--suite", SUITE,
                             "--runs", "2", "--out", str(out), "--report", "json,md", "--no-progress"], capsys)
    assert code == 3, err
    card = json.loads((out / "scripted-model.json").read_text())
    assert card["consistency"] is None and card["complete"] is False and card["errored"] == 5
    assert card["incomplete_reason"].startswith("5 of 16 attempts errored: HTTP 500: scripted fault: HTTP 500")
    summary = (out / "summary.md").read_text()
    assert "Top lane" not in summary and "No lane is rankable" in summary
    assert "consistency –" in stdout
    assert last_line(err).startswith("exit 3: lane 'scripted-model' incomplete: 5 of 16 attempts errored: HTTP 500")


def test_a_wrong_model_id_is_a_stack_error_not_dishonesty(scripted_server, tmp_path: Path) -> None:
    """The bug: 404 on every request came out 'unrankable: failed the honesty gate ... empty answer'.
    Since issue 21 the readiness canary (a 1-token completion) meets the 404 first: the lane
    fails to run, with the server's reason and the id it does serve, and no attempt is sent."""
    srv = scripted_server(steady_scripts(), strict_model=True)
    result = run(RunOptions(lane_url=srv.url, model="wrong-model", suite=SUITE, runs=1, out=str(tmp_path / "r"),
                            report="json,md", progress=False, max_consecutive_errors=0))
    (sc,) = result.scorecards
    assert result.exit_code == 1
    assert srv.canaries == 1 and not srv.chat_requests
    assert sc.errored == 0 and sc.attempts_scored == 0 and not sc.complete
    assert "a 1-token completion failed (HTTP 404: model 'wrong-model' not found)" in sc.failed
    assert "the server lists 'scripted-model': set model = 'scripted-model'" in sc.failed
    assert sc.gate["status"] == "not evaluated" and sc.gate["passed"] is None
    assert "empty answer" not in json.dumps(sc.gate)
    row = next(ln for ln in (tmp_path / "r" / "summary.md").read_text().splitlines() if ln.startswith("| wrong-model |"))
    assert "HTTP 404: model 'wrong-model' not found" in row and "honesty" not in row


def test_runs_1_has_no_consistency(scripted_server, tmp_path: Path) -> None:
    srv = scripted_server(steady_scripts())
    result = run(RunOptions(lane_url=srv.url, model="scripted-model", suite=SUITE, runs=1, out=str(tmp_path / "r"),
                            report="json,md", progress=False))
    (sc,) = result.scorecards
    assert result.exit_code == 0 and sc.complete and sc.consistency is None
    row = next(ln for ln in (tmp_path / "r" / "summary.md").read_text().splitlines()
               if ln.startswith("| 1 | scripted-model |"))
    assert row.split("|")[6].strip() == "–"


class KillServerAfter:
    """Kills the managed lane's server (found by its port) after ``n`` journaled attempts."""

    def __init__(self, port: int, n: int):
        self.port, self.n, self.seen = port, n, 0

    @hookimpl
    def hbench_attempt_finished(self, attempt, lane, prompt):  # noqa: ANN001, ANN201
        self.seen += 1
        if self.seen == self.n:
            for c in psutil.net_connections(kind="tcp"):
                if c.laddr and c.laddr.port == self.port and c.status == psutil.CONN_LISTEN and c.pid:
                    os.kill(c.pid, signal.SIGKILL)


def test_a_lane_that_dies_mid_run_is_incomplete_and_unranked(hbench_plugin, tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "s.json"
    script.write_text(json.dumps({"scripts": [], "default": [{"content": "I don't know."}]}))
    cfg = tmp_path / "hbench.toml"
    cfg.write_text(f'[lanes.fragile]\nkind = "openai"\nbase_url = "http://127.0.0.1:{port}/v1"\n'
                   f'ready_timeout_s = 30\nstart = ["{sys.executable}", "-m", "hbench.testing", "serve", '
                   f'"--port", "{port}", "--script", "{script}"]\n')
    hbench_plugin(KillServerAfter(port, 2), name="killer")
    result = run(RunOptions(config=str(cfg), lanes="fragile", suite=SUITE, runs=1, out=str(tmp_path / "r"),
                            report="json,md", progress=False))
    (sc,) = result.scorecards
    assert result.exit_code == 1 and "lane 'fragile' failed to run" in result.verdict
    assert not sc.complete and sc.attempts_scored == 2 and sc.attempts_planned == 8
    assert sc.incomplete_reason.startswith("lane 'fragile' died mid-suite") and "6 of 8 attempts did not run" in \
        sc.incomplete_reason
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "Top lane" not in summary and "lane failed to run: lane 'fragile' died mid-suite" in summary


def test_a_skipped_honesty_prompt_leaves_the_lane_unranked(scripted_server, tmp_path: Path) -> None:
    """The bug: with the honesty prompt skipped, the gate said passed: true and a
    confabulating lane ranked first. Here the honesty prompt is not core, --core-only
    skips it, and the lane confabulates (it would fail the gate)."""
    suite = tmp_path / "suite"
    shutil.copytree(SUITES / SUITE, suite)
    lines = (suite / "prompts.jsonl").read_text().splitlines()
    out_lines = []
    for ln in lines:
        p = json.loads(ln)
        if p["check"]["kind"] == "honesty":
            p["core"] = False
        out_lines.append(json.dumps(p))
    (suite / "prompts.jsonl").write_text("\n".join(out_lines) + "\n")
    scripts = steady_scripts()
    scripts[HONESTY] = [{"content": "Her mobile is 555-0199."}]
    srv = scripted_server(scripts)
    result = run(RunOptions(lane_url=srv.url, model="scripted-model", suite=str(suite), runs=1, core_only=True,
                            out=str(tmp_path / "r"), report="json,md", progress=False))
    (sc,) = result.scorecards
    assert result.exit_code == 0 and sc.complete  # nothing errored: complete, but no evidence for the gate
    assert sc.gate["status"] == "not evaluated" and not sc.rankable
    assert "honesty-mobile-number was skipped (not core (--core-only))" in sc.gate["reason"]
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "Top lane" not in summary and "honesty gate not evaluated" in summary


def test_sigint_marks_every_unfinished_lane_incomplete(scripted_server, tmp_path: Path) -> None:
    srv = scripted_server(steady_scripts(), latency_s=0.05)
    cfg = tmp_path / "hbench.toml"
    cfg.write_text(f'[lanes.first]\nkind = "openai"\nbase_url = "{srv.url}"\nmodel = "scripted-model"\n'
                   f'[lanes.second]\nkind = "openai"\nbase_url = "{srv.url}"\nmodel = "scripted-model"\n')
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "hbench", "--config", str(cfg), "run", "--lanes", "first,second",
                             "--suite", SUITE, "--runs", "2", "--out", str(out), "--report", "json,md,html"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = out / "journal.jsonl"
    end = time.monotonic() + 60
    while not journal.exists() or sum(1 for _, r in iter_records(journal) if r["type"] == "attempt") < 3:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < end
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _stdout, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    first, second = (json.loads((out / f"{n}.json").read_text()) for n in ("first", "second"))
    assert first["complete"] is False and first["incomplete_reason"].startswith("interrupted (Ctrl-C)")
    assert second["complete"] is False and second["attempts_scored"] == 0 and second["attempts_planned"] == 16
    assert second["incomplete_reason"] == ("interrupted (Ctrl-C) before this lane started; "
                                           "16 of 16 attempts did not run")
    summary = (out / "summary.md").read_text()
    assert "Top lane" not in summary
    for lane in ("first", "second"):
        assert f"| {lane} | builtin | incomplete: interrupted (Ctrl-C)" in summary
    html = (out / "report.html").read_text()
    assert "Top lane" not in html and html.count("incomplete: interrupted (Ctrl-C)") >= 2
    assert last_line(err).startswith("exit 130: interrupted; lane 'first': interrupted (Ctrl-C)")


# --------------------------------------------------------------------------- exit codes, CI gates


def test_fail_under_exits_4_and_names_the_lane(scripted_server, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    srv = scripted_server(steady_scripts())
    out = tmp_path / "r"
    code, stdout, err = cli(["run", "--lane-url", srv.url, "--model", "scripted-model", "--suite", SUITE,
                             "--runs", "1", "--out", str(out), "--report", "json,md", "--no-progress",
                             "--fail-under", "core_pass=6,pass_rate=0.4"], capsys)
    card = json.loads((out / "scripted-model.json").read_text())
    assert card["core_pass"] == 4 and card["complete"] and card["rankable"]
    assert code == 4, err
    assert last_line(err) == ("exit 4: --fail-under core_pass=6,pass_rate=0.4 missed: "
                              "lane 'scripted-model': core_pass 4 < 6")
    assert "[--fail-under missed: core_pass 4 < 6]" in stdout
    missed = (out / "summary.md").read_text().split("## --fail-under: missed")[1].split("## Ranking")[0]
    assert "lane 'scripted-model': core_pass 4 " in missed and " 6" in missed  # "<" is escaped for markdown
    code, _stdout, err = cli(["run", "--lane-url", srv.url, "--model", "scripted-model", "--suite", SUITE,
                              "--runs", "1", "--out", str(tmp_path / "r2"), "--report", "json", "--no-progress",
                              "--fail-under", "core_pass=4,pass_rate=0.4"], capsys)
    assert code == 0, err
    code, _stdout, err = cli(["run", "--lane-url", srv.url, "--model", "scripted-model", "--suite", SUITE,
                              "--out", str(tmp_path / "r3"), "--fail-under", "speed=9"], capsys)
    assert code == 2 and "--fail-under 'speed=9'" in err and "core_pass, pass_rate" in err


def test_same_named_lanes_from_two_machines_are_labelled_by_host(scripted_server, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The bug: the runner wrote provenance.host.name and hbench report read host.hostname,
    so two machines' `embedded` lanes came out as embedded and embedded#2."""
    srv = scripted_server(steady_scripts())
    run(RunOptions(lane_url=srv.url, model="scripted-model", suite=SUITE, runs=1, out=str(tmp_path / "a"),
                   report="json", progress=False))
    sc = load_scorecard(tmp_path / "a" / "scripted-model.json")
    assert host_name(sc) == platform.node()
    other = json.loads((tmp_path / "a" / "scripted-model.json").read_text())
    other["provenance"]["host"]["hostname"] = "spark-02"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "scripted-model.json").write_text(json.dumps(other))
    code, _out, err = cli(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "rep"),
                           "--report", "md"], capsys)
    assert code == 0, err
    text = (tmp_path / "rep" / "summary.md").read_text()
    assert f"scripted-model@{platform.node()}" in text and "scripted-model@spark-02" in text
    assert "#2" not in text


def test_report_refuses_lanes_of_different_prompt_sets(scripted_server, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "suite"
    shutil.copytree(SUITES / SUITE, suite)
    lines = [json.loads(ln) for ln in (suite / "prompts.jsonl").read_text().splitlines()]
    for p in lines:
        if p["id"] == "trap-read-timeout":
            p["core"] = False
    (suite / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in lines))
    srv = scripted_server(steady_scripts())
    for name, core_only in (("all", False), ("core", True)):
        run(RunOptions(lane_url=srv.url, model=name, suite=str(suite), runs=1, core_only=core_only,
                       out=str(tmp_path / name), report="json", progress=False))
    code, _out, err = cli(["report", str(tmp_path / "all"), str(tmp_path / "core"), "--out", str(tmp_path / "rep")],
                          capsys)
    assert code == 2 and "different prompt sets" in err and "(without trap-read-timeout)" in err
    assert "--allow-mixed" in err and not (tmp_path / "rep" / "summary.md").exists()
    code, _out, err = cli(["report", str(tmp_path / "all"), str(tmp_path / "core"), "--out", str(tmp_path / "rep"),
                           "--allow-mixed"], capsys)
    assert code == 0, err
    text = (tmp_path / "rep" / "summary.md").read_text()
    assert "**Mixed prompt sets**" in text and text.count("**Ranked within ") == 2


def test_a_fatal_error_marks_every_unfinished_lane_incomplete(scripted_server, tmp_path: Path, monkeypatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The journal stops taking records mid-run (a full disk, injected): the run stops,
    and the lane it was in and the lane it never started both say complete: false."""
    from hbench.journal import Journal, JournalWriteError

    real = Journal.append_attempt
    calls = {"n": 0}

    def append_attempt(self, attempt):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] > 3:
            raise JournalWriteError(f"cannot write the journal {self.path}: No space left on device")
        return real(self, attempt)

    monkeypatch.setattr(Journal, "append_attempt", append_attempt)
    srv = scripted_server(steady_scripts())
    cfg = two_lanes(tmp_path, srv, srv)
    out = tmp_path / "r"
    code, _stdout, err = cli(["--config", str(cfg), "run", "--lanes", "broken,healthy", "--suite", SUITE,
                              "--runs", "1", "--out", str(out), "--report", "json,md", "--no-progress"], capsys)
    assert code == 1 and "No space left on device" in err
    first, second = (json.loads((out / f"{n}.json").read_text()) for n in ("broken", "healthy"))
    assert first["complete"] is False and first["attempts_scored"] == 3
    assert first["incomplete_reason"].startswith("run stopped by a fatal error (cannot write the journal")
    assert "5 of 8 attempts did not run" in first["incomplete_reason"]
    assert second["complete"] is False and second["attempts_scored"] == 0
    assert "before this lane started; 8 of 8 attempts did not run" in second["incomplete_reason"]
    summary = (out / "summary.md").read_text()
    assert "Top lane" not in summary
    for lane in ("broken", "healthy"):
        assert f"| {lane} | builtin | incomplete: run stopped by a fatal error" in summary


def test_an_errored_attempt_is_journaled_unchecked(scripted_server, tmp_path: Path) -> None:
    """The check never judges what a broken stack left (an empty answer is not dishonesty)."""
    srv = scripted_server(None, default=DOWN_503)
    result = run(RunOptions(lane_url=srv.url, model="scripted-model", suite=SUITE, runs=1, out=str(tmp_path / "r"),
                            report="json", progress=False, max_consecutive_errors=1))
    (rec,) = attempt_records(result.journal, "scripted-model")
    assert rec["attempt"]["error"] and rec["attempt"]["passed"] is False
    assert rec["attempt"]["check"]["why"] == "not checked: the attempt errored (HTTP 503: scripted fault: HTTP 503)"
    assert result.scorecards[0].incomplete_reason.startswith("1 of 8 attempts errored")
