"""The managed lifecycle with real processes: start in a process group, wait ready, stop
with SIGTERM then SIGKILL, no survivor (not even a child that ignores SIGTERM), memory."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hbench.errors import LaneError
from hbench.lanes import open_lane
from hbench.lifecycle import check_envelope, group_members, mem_available_gb, wait_memory_returned
from hbench.models import LaneSpec
from hbench.plugin_manager import get_registries

IMITATION = str(Path(__file__).with_name("lane_imitations.py"))


def lane(name: str, *args: str, kind: str = "llamacpp", **kw) -> LaneSpec:
    kw.setdefault("stop_grace_s", 1.0)
    kw.setdefault("ready_timeout_s", 20.0)
    kw.setdefault("memory_return_timeout_s", 5.0)
    return LaneSpec(name=name, kind=kind,
                    start=[sys.executable, IMITATION, "--kind", kind, "--port", "{port}", *args], **kw)


def kind(name: str):
    return get_registries().lane_kinds.get(name)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_managed_lane_starts_serves_and_leaves_no_process(tmp_path: Path):
    pidfile = tmp_path / "child.pid"
    statuses: list[str] = []
    spec = lane("llama one", "--load-s", "1.2", "--stubborn-child", str(pidfile))
    with open_lane(spec, kind("llamacpp"), out_dir=tmp_path, on_status=statuses.append) as running:
        assert running.is_alive() and running.pid
        assert os.getpgid(running.pid) == running.pid  # its own process group
        assert os.getpgid(running.pid) != os.getpgid(0)
        assert running.served_model == "imit-model"
        assert running.spec.base_url.startswith("http://127.0.0.1:")
        child = int(pidfile.read_text())
        assert os.getpgid(child) == running.pid and not gone(child)
        members = {p.pid for p in group_members(running.pid)}
        assert {running.pid, child} <= members
        pgid, leader = running.pid, running.pid
    assert any(s.startswith("loading, ") and "503" in s for s in statuses)  # the live message
    assert gone(leader) and gone(child)  # the SIGTERM-ignoring child got SIGKILL
    assert group_members(pgid) == []
    log = (tmp_path / "logs" / "llama_one.log").read_text()
    assert "starting lane llama one" in log and "imitation llamacpp starting" in log
    assert not running.is_alive()


def test_leader_that_ignores_sigterm_is_killed(tmp_path: Path):
    spec = lane("stubborn", "--ignore-sigterm", kind="openai")
    t0 = time.monotonic()
    with open_lane(spec, kind("openai"), out_dir=tmp_path) as running:
        leader = running.pid
        t_stop = time.monotonic()
    assert gone(leader) and group_members(leader) == []
    assert time.monotonic() - t_stop >= 0.9  # waited out the 1 s grace before SIGKILL
    assert time.monotonic() - t0 < 15


def test_vllm_and_nim_managed_wait_through_their_loading(tmp_path: Path):
    with open_lane(lane("v", "--load-s", "1", kind="vllm"), kind("vllm"), out_dir=tmp_path) as running:
        assert running.is_alive()
    with open_lane(lane("n", "--load-s", "1", kind="nim"), kind("nim"), out_dir=tmp_path) as running:
        assert running.is_alive()


def test_never_ready_fails_with_log_tail_and_stops(tmp_path: Path):
    spec = lane("sleepy", "--never-ready", ready_timeout_s=1.5)
    with pytest.raises(LaneError) as info:
        with open_lane(spec, kind("llamacpp"), out_dir=tmp_path):
            pytest.fail("must not become ready")
    msg = str(info.value)
    assert "not ready after 2 s" in msg or "not ready after 1 s" in msg
    assert "last lines of" in msg and "imitation llamacpp starting" in msg
    assert not [p for p in psutil.process_iter(["cmdline"]) if "sleepy" in " ".join(p.info["cmdline"] or [])]


def test_exit_while_loading_fails_with_exit_code_and_tail(tmp_path: Path):
    spec = lane("crashy", "--load-s", "30", "--exit-after", "0.3")
    t0 = time.monotonic()
    with pytest.raises(LaneError, match=r"(?s)server exited while loading.*exit code 3.*simulated crash"):
        with open_lane(spec, kind("llamacpp"), out_dir=tmp_path):
            pass
    assert time.monotonic() - t0 < 10  # noticed the exit, did not wait for the timeout


def test_death_mid_run_is_visible_with_reason(tmp_path: Path):
    spec = lane("dies", "--exit-after", "1.0")
    with open_lane(spec, kind("llamacpp"), out_dir=tmp_path) as running:
        assert running.is_alive()
        deadline = time.monotonic() + 10
        while running.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running.is_alive()
        reason = running.died_reason()
    assert "exited mid-run (exit code 3)" in reason and "simulated crash" in reason


def test_missing_start_command_is_a_clear_error(tmp_path: Path):
    spec = LaneSpec(name="nobin", kind="openai", start=["no-such-server-binary", "--port", "{port}"])
    with pytest.raises(LaneError, match=r"cannot run start command 'no-such-server-binary'.*lanes.nobin.start"):
        with open_lane(spec, kind("openai"), out_dir=tmp_path):
            pass


def test_memory_envelope_refuses_before_starting(tmp_path: Path):
    marker = tmp_path / "marker"
    spec = lane("huge", "--marker", str(marker), kind="openai", expected_memory_gb=10_000_000.0)
    with pytest.raises(LaneError, match=r"does not fit: it needs 10000000.0 GB .* \+ 2.0 GB headroom"):
        with open_lane(spec, kind("openai"), out_dir=tmp_path, headroom_gb=2.0):
            pass
    assert not marker.exists()  # never started


def test_memory_envelope_admits_a_lane_that_fits(tmp_path: Path):
    marker = tmp_path / "marker"
    spec = lane("small", "--marker", str(marker), kind="openai", expected_memory_gb=0.05)
    with open_lane(spec, kind("openai"), out_dir=tmp_path, headroom_gb=0.0) as running:
        assert running.is_alive()
    lines = marker.read_text().split()
    assert lines[0] == "up" and "down" in lines  # SIGTERM reached it and it shut down cleanly


@given(st.floats(0, 500), st.floats(0, 50), st.floats(0, 1000))
def test_envelope_refuses_exactly_when_it_does_not_fit(expected: float, headroom: float, available: float):
    spec = LaneSpec(name="p", expected_memory_gb=expected)
    if available < expected + headroom:
        with pytest.raises(LaneError, match="does not fit"):
            check_envelope(spec, headroom, available)
    else:
        check_envelope(spec, headroom, available)
    check_envelope(LaneSpec(name="p"), headroom, 0.0)  # no expectation: no check


def test_meminfo_parsing(tmp_path: Path):
    f = tmp_path / "meminfo"
    f.write_text("MemTotal:       131072000 kB\nMemFree: 1 kB\nMemAvailable:   65536000 kB\n")
    assert mem_available_gb(f) == pytest.approx(65536000 * 1024 / 1e9)
    f.write_text("garbage\n")
    assert mem_available_gb(f) is None
    assert mem_available_gb(tmp_path / "absent") is None
    assert mem_available_gb() is not None  # this machine has /proc/meminfo


def test_memory_not_returned_is_a_bounded_warning():
    now = mem_available_gb()
    spec = LaneSpec(name="leaky", memory_return_timeout_s=0.6)
    t0 = time.monotonic()
    warning = wait_memory_returned(spec, baseline_gb=now + 1000.0)
    assert 0.5 <= time.monotonic() - t0 < 5
    assert warning and "memory not returned" in warning
    assert wait_memory_returned(spec, baseline_gb=now - 10.0) is None
    assert wait_memory_returned(spec, baseline_gb=None) is None


# --------------------------------------------------------------------------- with the scripted server

LAUNCHER = '''
import os, subprocess, sys, psutil
pids_file, overlap_file, lane = sys.argv[1], sys.argv[2], sys.argv[3]
# never both up at once: no process of an earlier lane may still be alive when this one starts
if os.path.exists(pids_file):
    for line in open(pids_file).read().split():
        name, pid = line.split(":")
        try:
            if psutil.Process(int(pid)).status() != psutil.STATUS_ZOMBIE:
                open(overlap_file, "a").write(f"{lane} started while {name} pid {pid} was up\\n")
        except psutil.NoSuchProcess:
            pass
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
with open(pids_file, "a") as fh:
    fh.write(f"{lane}:{os.getpid()} {lane}:{child.pid}\\n")
os.execv(sys.executable, [sys.executable, "-m", "hbench.testing", *sys.argv[4:]])
'''


def test_scripted_server_lane_with_a_stubborn_child_leaves_nothing(tmp_path: Path):
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    pids = tmp_path / "pids"
    spec = LaneSpec(name="scripted", kind="llamacpp", stop_grace_s=1.0, ready_timeout_s=30,
                    start=[sys.executable, str(launcher), str(pids), str(tmp_path / "overlap"), "scripted",
                           "serve", "--port", "{port}", "--loading", "1"])
    statuses: list[str] = []
    with open_lane(spec, kind("llamacpp"), out_dir=tmp_path, on_status=statuses.append) as running:
        assert running.served_model and running.is_alive()
        recorded = [int(x.split(":")[1]) for x in pids.read_text().split()]
        assert recorded[0] == running.pid  # exec kept the leader's pid
    assert any("Loading model" in s for s in statuses)
    assert all(gone(p) for p in recorded) and group_members(recorded[0]) == []


def test_run_lanes_all_runs_managed_lanes_one_after_the_other(tmp_path: Path, capsys):
    from hbench.cli import main
    from hbench.logging import configure

    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    pids, overlap = tmp_path / "pids", tmp_path / "overlap"
    script = tmp_path / "s.json"
    script.write_text(json.dumps({"scripts": [], "default": [{"content": "I don't know."}]}))
    cfg = tmp_path / "hbench.toml"
    body = ""
    # `--lanes all` also takes plugin lanes; naming one lane `embedded` overrides the bundled
    # one, so "all" is exactly these two managed lanes from hbench.toml
    for name in ("embedded", "second"):
        start = [sys.executable, str(launcher), str(pids), str(overlap), name, "serve", "--port", "{port}",
                 "--loading", "0.5", "--script", str(script), "--model", f"model-{name}"]
        body += (f'[lanes.{name}]\nkind = "llamacpp"\nstop_grace_s = 1\nready_timeout_s = 30\n'
                 f"expected_memory_gb = 0.05\nstart = {json.dumps(start)}\n")
    cfg.write_text(body)
    out = tmp_path / "r"
    try:
        code = 0
        try:
            main(["--config", str(cfg), "run", "--lanes", "all", "--runs", "1", "--core-only", "--timeout", "30",
                  "--out", str(out), "--report", "json"])
        except SystemExit as exc:
            code = exc.code
    finally:
        configure(stream=sys.__stderr__)
    assert code in (0, None), capsys.readouterr().err
    assert not overlap.exists(), overlap.read_text()
    started = [x.split(":")[0] for x in pids.read_text().split()]
    assert sorted(started) == ["embedded", "embedded", "second", "second"]
    assert started[0] == started[1] and started[2] == started[3]  # one after the other
    assert all(gone(int(x.split(":")[1])) for x in pids.read_text().split())
    for name in ("embedded", "second"):
        card = json.loads((out / f"{name}.json").read_text())
        assert card["failed"] is None and card["attempts_run"] > 0
        assert card["throughput"]["tok_s"] is not None and card["throughput"]["error"] is None
        assert (out / "logs" / f"{name}.log").read_text().count("starting lane") == 1


PARENT = r'''
import sys, time
from pathlib import Path
from hbench.lanes import open_lane
from hbench.models import LaneSpec
from hbench.plugin_manager import get_registries

spec = LaneSpec(name="orphan-check", kind="openai", ready_timeout_s=30,
                start=[sys.executable, "-m", "hbench.testing", "serve", "--port", "{port}"])
with open_lane(spec, get_registries().lane_kinds.get("openai"), out_dir=Path(sys.argv[1])) as running:
    print(running.pid, flush=True)
    time.sleep(120)
'''


def test_a_managed_server_dies_with_a_killed_hbench(tmp_path: Path):
    """kill -9 of hbench cannot run its stop code: the parent-death signal stops the server."""
    import shutil
    import signal
    import subprocess

    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) not installed: managed servers can outlive a kill -9 here")
    proc = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        server_pid = int(proc.stdout.readline())
        assert psutil.pid_exists(server_pid) and not gone(server_pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while not gone(server_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(server_pid), "the managed server outlived the hbench that started it"
    finally:
        proc.kill()
