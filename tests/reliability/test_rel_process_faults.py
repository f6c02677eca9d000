"""Process faults: a managed lane killed mid-suite, SIGINT and SIGKILL to ``hbench run``
(a real subprocess), and a full disk under the journal (a real tmpfs when this machine
lets us mount one, and a fault-injecting writer everywhere)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from hbench import hookimpl
from hbench.errors import HBenchError
from hbench.testing import ScriptedServer, answer
from relhelp import PYTHON, attempts_of, hbench_env, read_journal, run_inproc, write_suite

HBENCH = [PYTHON, "-m", "hbench"]


def _script_file(path: Path, text: str = "ok", tokens_latency: float | None = None) -> Path:
    turn: dict = {"content": text}
    if tokens_latency is not None:
        turn["token_latency_s"] = tokens_latency
    path.write_text(json.dumps({"scripts": [], "default": [turn]}))
    return path


def _toml(path: Path, lanes: dict[str, dict]) -> Path:
    lines = []
    for name, spec in lanes.items():
        lines.append(f"[lanes.{name}]")
        for k, v in spec.items():
            lines.append(f"{k} = {json.dumps(v)}")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def _managed(script: Path, pidfile: Path, record: Path | None = None, token_latency: float = 0.0) -> dict:
    cmd = f"echo $$ > {pidfile}; exec {sys.executable} -m hbench.testing serve --port {{port}} --script {script}"
    if record:
        cmd += f" --record {record}"
    if token_latency:
        cmd += f" --token-latency {token_latency}"
    return {"kind": "openai", "model": "scripted-model", "start": ["sh", "-c", cmd], "ready_timeout_s": 30,
            "stop_grace_s": 3, "memory_return_timeout_s": 1}


def _wait(pred, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _n_attempts(journal: Path) -> int:
    try:
        return sum(1 for line in journal.read_bytes().splitlines() if b'"type":"attempt"' in line)
    except FileNotFoundError:
        return 0


# --------------------------------------------------------------------------- managed lane killed


def test_managed_lane_killed_mid_suite_is_failed_and_the_next_lane_runs(tmp_path: Path, hbench_plugin,
                                                                         monkeypatch) -> None:
    suite = write_suite(tmp_path / "suite", [{"id": f"p{i}", "prompt": f"prompt {i}"} for i in range(4)], runs=2)
    pidfile = tmp_path / "victim.pid"
    cfg = _toml(tmp_path / "hbench.toml", {
        "a-victim": _managed(_script_file(tmp_path / "s.json"), pidfile),
        "b-next": _managed(_script_file(tmp_path / "s2.json"), tmp_path / "next.pid"),
    })

    class Killer:
        done = 0

        @hookimpl
        def hbench_attempt_finished(self, attempt, lane, prompt):  # noqa: ANN001, ANN201
            if lane.name == "a-victim":
                Killer.done += 1
                if Killer.done == 3:  # mid-suite: kill the whole server process group
                    os.killpg(int(pidfile.read_text()), signal.SIGKILL)

    hbench_plugin(Killer(), name="killer")
    monkeypatch.chdir(tmp_path)
    result = run_inproc(tmp_path / "out", suite, "", config=str(cfg), lanes="a-victim,b-next", report="json")
    assert result.exit_code == 1  # a lane failed
    by_lane = {sc.lane["name"]: sc for sc in result.scorecards}
    assert "died mid-suite" in (by_lane["a-victim"].failed or "")
    assert not by_lane["b-next"].failed and by_lane["b-next"].attempts_run == 8
    records = read_journal(result.journal)
    victim = [r for r in records if r["type"] == "attempt" and r["lane"] == "a-victim"]
    assert len(victim) >= 3  # what finished before the kill is kept
    assert any(r["type"] == "lane_failed" and r["lane"] == "a-victim" for r in records)
    assert (tmp_path / "out" / "a-victim.json").exists() and (tmp_path / "out" / "b-next.json").exists()


# --------------------------------------------------------------------------- SIGINT


def test_sigint_stops_in_flight_attempt_and_managed_lane_and_says_how_to_resume(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite", [{"id": f"p{i}", "prompt": f"prompt {i}"} for i in range(2)],
                        runs=2, timeout_s=60)
    pidfile, record = tmp_path / "lane.pid", tmp_path / "requests.jsonl"
    # 20 tokens at 50 ms each: an attempt takes ~1 s, so one is in flight when SIGINT comes
    script = _script_file(tmp_path / "s.json", " ".join(["ok"] * 20))
    cfg = _toml(tmp_path / "hbench.toml", {"slow": _managed(script, pidfile, record, token_latency=0.05)})
    out = tmp_path / "out"
    proc = subprocess.Popen([*HBENCH, "--config", str(cfg), "run", "--suite", str(suite), "--out", str(out),
                             "--report", "json,md", "--no-progress"], cwd=tmp_path, env=hbench_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait(lambda: _n_attempts(out / "journal.jsonl") >= 1, 60, "the first attempt")
        lane_pid = int(pidfile.read_text())
        time.sleep(0.5)  # the next attempt is streaming now
        t_sig = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
        stop_s = time.monotonic() - t_sig
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert stop_s < 8  # it did not run on through the 4 planned attempts
    assert "--resume" in stderr and "resume with" in stderr
    assert "Traceback" not in stderr
    assert not psutil.pid_exists(lane_pid) or psutil.Process(lane_pid).status() == psutil.STATUS_ZOMBIE
    recs = [json.loads(line) for line in record.read_text().splitlines()]
    chats = [r for r in recs if r["path"].endswith("/chat/completions")]
    assert chats[-1]["disconnected"]  # the in-flight request was closed, not finished
    records = read_journal(out / "journal.jsonl")
    n_done = len(attempts_of(records))
    assert 1 <= n_done < 4
    assert (out / "slow.json").exists() and (out / "summary.md").exists()  # wrote what it has
    card = json.loads((out / "slow.json").read_text())
    assert any("interrupted" in w for w in card["warnings"])
    # and the printed command finishes the job, running only what is missing
    resume = subprocess.run([*HBENCH, "--config", str(cfg), "run", "--suite", str(suite), "--out", str(out),
                             "--report", "json", "--no-progress", "--resume"], cwd=tmp_path, env=hbench_env(),
                            capture_output=True, text=True, timeout=120)
    assert resume.returncode == 0, resume.stderr
    assert len(attempts_of(read_journal(out / "journal.jsonl"))) == 4


# --------------------------------------------------------------------------- SIGKILL + resume


def test_sigkill_then_resume_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    prompts = [{"id": f"p{i}", "prompt": f"prompt number {i}"} for i in range(4)]
    suite = write_suite(tmp_path / "suite", prompts, runs=3, timeout_s=60)
    out = tmp_path / "out"
    scripts = {f"prompt number {i}": [answer("ok " * 8, token_latency_s=0.02)] for i in range(4)}
    with ScriptedServer(scripts) as srv:
        cmd = [*HBENCH, "run", "--suite", str(suite), "--out", str(out), "--lane-url", srv.url,
               "--model", "scripted-model", "--report", "json", "--no-progress", "--concurrency", "2"]
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=hbench_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            _wait(lambda: _n_attempts(out / "journal.jsonl") >= 5, 60, "five journaled attempts")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        before = attempts_of(read_journal(out / "journal.jsonl"))
        assert 5 <= len(before) < 12
        started_before = {}
        for r in srv.chat_requests:
            if r.starts_attempt and r.script:  # "" = the throughput probe's requests
                started_before[r.script] = started_before.get(r.script, 0) + 1
        srv.clear_requests()

        resumed = subprocess.run(cmd + ["--resume"], cwd=tmp_path, env=hbench_env(), capture_output=True,
                                 text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        started_after: dict[str, int] = {}
        for r in srv.chat_requests:
            if r.starts_attempt and r.script:
                started_after[r.script] = started_after.get(r.script, 0) + 1

    after = attempts_of(read_journal(out / "journal.jsonl"))  # fails on any duplicate
    assert set(after) == {(p["id"], n) for p in prompts for n in (1, 2, 3)}  # zero lost
    for k, a in before.items():
        assert after[k]["finished_at"] == a["finished_at"]  # journaled attempts were kept, not rerun
    # zero repeated: after the resume the server saw exactly the attempts that were missing
    for i in range(4):
        missing = sum(1 for n in (1, 2, 3) if (f"p{i}", n) not in before)
        assert started_after.get(f"prompt number {i}", 0) == missing, (i, started_after)
    assert sum(started_after.values()) == 12 - len(before)


# --------------------------------------------------------------------------- full disk


def _can_mount_tmpfs(where: Path) -> bool:
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True)
    if r.returncode != 0:
        return False
    subprocess.run(["umount", str(where)], check=False)
    return True


def test_full_disk_on_a_real_tmpfs_is_a_clear_error_and_resume_finishes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    if not _can_mount_tmpfs(out):
        pytest.skip("cannot mount a tmpfs here (needs root); the fault-injecting writer test covers it")
    prompts = [{"id": f"p{i}", "prompt": f"prompt {i} zqmark"} for i in range(6)]
    suite = write_suite(tmp_path / "suite", prompts, runs=2)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(out)], check=True)
    try:
        with ScriptedServer({"zqmark": [answer("ok " + "word " * 3000)]}) as srv:
            with pytest.raises(HBenchError) as info:
                run_inproc(out, suite, srv.url, report="json")
            msg = str(info.value)
            assert "No space left on device" in msg and "--resume" in msg and "journal.jsonl" in msg
            before = attempts_of(read_journal(out / "journal.jsonl"))  # whole records only
            assert 0 < len(before) < 12
            subprocess.run(["mount", "-o", "remount,size=4m", str(out)], check=True)
            srv.clear_requests()
            result = run_inproc(out, suite, srv.url, report="json", resume=True)
            assert result.exit_code == 0
            after = attempts_of(read_journal(out / "journal.jsonl"))
            assert len(after) == 12
            assert sum(r.starts_attempt for r in srv.chat_requests if r.script) == 12 - len(before)
    finally:
        subprocess.run(["umount", "-l", str(out)], check=False)


def test_journal_write_failing_mid_record_leaves_whole_records_only(tmp_path: Path, monkeypatch) -> None:
    """A fault-injecting writer: the 4th attempt record gets half written, then ENOSPC."""
    import hbench.journal as journal_mod

    prompts = [{"id": f"p{i}", "prompt": f"prompt {i} x"} for i in range(3)]
    suite = write_suite(tmp_path / "suite", prompts, runs=2)
    real_write = os.write
    state = {"attempts": 0, "failed": False}

    def faulty_write(fd: int, data) -> int:  # noqa: ANN001
        if bytes(data[:20]).startswith(b'{"type":"attempt"'):
            state["attempts"] += 1
            if state["attempts"] == 4 and not state["failed"]:
                state["failed"] = True
                real_write(fd, bytes(data[: len(data) // 2]))  # a torn half record hits the disk
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(journal_mod.os, "write", faulty_write)
    with ScriptedServer({"x": [answer("ok")]}) as srv:
        with pytest.raises(HBenchError) as info:
            run_inproc(tmp_path / "out", suite, srv.url, report="json")
        assert "cannot write the journal" in str(info.value) and "No space left on device" in str(info.value)
        journal = tmp_path / "out" / "journal.jsonl"
        before = attempts_of(read_journal(journal))  # no torn half line is left behind
        assert len(before) == 3
        monkeypatch.setattr(journal_mod.os, "write", real_write)
        result = run_inproc(tmp_path / "out", suite, srv.url, report="json", resume=True)
    assert result.exit_code == 0
    assert len(attempts_of(read_journal(journal))) == 6
