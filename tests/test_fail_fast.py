"""The first ten minutes: an unmanaged lane gets a short ready wait (15 s unless set); a
401/403 is an immediate error naming ``api_key_env`` and whether it is set; a refused
connection ends the lane with the URL and the cause; while waiting, a status line goes to
stderr every few seconds even when piped; the first Ctrl-C stops the wait at once with the
resume command; an unset ``--api-key-env`` is an error before anything starts; and piped,
one plain line per finished prompt."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hbench.lanes import (KeyRejected, LaneUnreachable, LaneWaitCancelled, free_port, open_lane, ready_timeout,
                          wait_ready)
from hbench.models import LaneSpec
from hbench.plugin_manager import get_registries
from hbench.testing import ScriptedServer, answer

sys.path.insert(0, str(Path(__file__).parent / "reliability"))
from relhelp import PYTHON, hbench_env, write_suite  # noqa: E402

KEY_ENV = "HBENCH_T_FAILFAST_KEY"


def kind(name: str = "openai"):
    return get_registries().lane_kinds.get(name)


def test_default_ready_waits():
    assert ready_timeout(LaneSpec(name="x", base_url="http://h/v1"), managed=False) == 15.0
    assert ready_timeout(LaneSpec(name="x", base_url="http://h/v1"), managed=True) == 600.0
    assert ready_timeout(LaneSpec(name="x", base_url="http://h/v1", ready_timeout_s=42), managed=False) == 42.0


@pytest.mark.parametrize("key", [None, "wrong-key-123"])
def test_401_from_models_is_immediate_and_names_api_key_env(tmp_path: Path, monkeypatch, key):
    if key:
        monkeypatch.setenv(KEY_ENV, key)
    else:
        monkeypatch.delenv(KEY_ENV, raising=False)
    with ScriptedServer({}, api_key="the-right-key") as srv:
        spec = LaneSpec(name="locked", base_url=srv.url, api_key_env=KEY_ENV, ready_timeout_s=60)
        t0 = time.monotonic()
        with pytest.raises(KeyRejected) as ei:
            with open_lane(spec, kind(), out_dir=tmp_path):
                pass
    assert time.monotonic() - t0 < 3.0
    msg = str(ei.value)
    assert "key rejected (HTTP 401" in msg and KEY_ENV in msg
    assert ("is set, but" in msg) if key else ("not set" in msg)
    assert "wrong-key-123" not in msg


def test_connection_refused_ends_an_unmanaged_lane_at_once(tmp_path: Path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    t0 = time.monotonic()
    with pytest.raises(LaneUnreachable) as ei:
        with open_lane(LaneSpec(name="down", base_url=url, ready_timeout_s=60), kind(), out_dir=tmp_path):
            pass
    assert time.monotonic() - t0 < 3.0
    assert url in str(ei.value) and "cannot connect" in str(ei.value) and "refused" in str(ei.value).lower()


def test_the_wait_ends_on_cancel_and_on_its_timeout():
    import threading

    with ScriptedServer({}, loading_s=300) as srv:  # /health answers 503 "Loading model"
        spec = LaneSpec(name="slow", kind="llamacpp", base_url=srv.url)
        cancel = threading.Event()
        threading.Timer(0.5, cancel.set).start()
        t0 = time.monotonic()
        with pytest.raises(LaneWaitCancelled):
            wait_ready(kind("llamacpp"), spec, 60, managed=False, cancel=cancel)
        assert time.monotonic() - t0 < 2.0
        seen: list[str] = []
        t0 = time.monotonic()
        with pytest.raises(Exception, match=r"not ready after 2 s"):
            wait_ready(kind("llamacpp"), spec, 2, seen.append, managed=False)
        assert time.monotonic() - t0 < 5.0
    assert seen and all(f"waiting for {srv.url} to be ready" in s for s in seen)


def _config(tmp_path: Path, url: str, **extra: str) -> Path:
    cfg = tmp_path / "hbench.toml"
    lines = ["[lanes.slow]", 'kind = "llamacpp"', f'base_url = "{url}"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def test_piped_wait_prints_status_lines_and_the_first_ctrl_c_stops_it(tmp_path: Path):
    suite = write_suite(tmp_path / "s", [{"id": "a", "prompt": "p"}])
    with ScriptedServer({}, loading_s=300) as srv:
        cfg = _config(tmp_path, srv.url, ready_timeout_s="120")
        proc = subprocess.Popen(
            [PYTHON, "-m", "hbench", "--config", str(cfg), "run", "--lanes", "slow", "--suite", str(suite),
             "--out", str(tmp_path / "out")],
            cwd=tmp_path, env=hbench_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        err: list[str] = []
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < 60:  # the status lines come while it waits
                line = proc.stderr.readline()
                err.append(line)
                if sum("waiting for" in x for x in err) >= 2:
                    break
            t_sig = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, rest = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
        stopped_in = time.monotonic() - t_sig
    text = "".join(err) + rest + out
    waits = [x for x in err if "waiting for" in x]
    assert len(waits) >= 2 and f"slow: waiting for {srv.url} to be ready" in waits[0], text[-2000:]
    assert "\x1b" not in text  # plain lines, no escape codes
    assert proc.returncode == 130, text[-2000:]
    assert stopped_in < 5.0, stopped_in
    assert "resume with: hbench" in text and "--resume" in text


def test_run_with_a_rejected_key_fails_fast_naming_the_variable(tmp_path: Path):
    suite = write_suite(tmp_path / "s", [{"id": "a", "prompt": "p"}])
    with ScriptedServer({}, api_key="the-right-key") as srv:
        t0 = time.monotonic()
        r = subprocess.run(
            [PYTHON, "-m", "hbench", "run", "--lane-url", srv.url, "--model", "scripted-model", "--suite", str(suite),
             "--out", str(tmp_path / "out"), "--api-key-env", KEY_ENV],
            cwd=tmp_path, env=hbench_env(**{KEY_ENV: "wrong-key-456"}), capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 30
    assert r.returncode == 1, r.stderr[-2000:]
    assert "key rejected (HTTP 401" in r.stderr and KEY_ENV in r.stderr and "is set, but" in r.stderr
    assert "wrong-key-456" not in r.stderr + r.stdout


def test_unset_api_key_env_is_an_error_before_anything_starts(tmp_path: Path):
    suite = write_suite(tmp_path / "s", [{"id": "a", "prompt": "p"}])
    env = hbench_env()
    env.pop(KEY_ENV, None)
    with ScriptedServer({}) as srv:
        r = subprocess.run(
            [PYTHON, "-m", "hbench", "run", "--lane-url", srv.url, "--model", "scripted-model", "--suite", str(suite),
             "--out", str(tmp_path / "out"), "--api-key-env", KEY_ENV],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert srv.requests == []  # not even a readiness probe
    assert r.returncode == 2, r.stderr
    assert f"--api-key-env {KEY_ENV}: the variable {KEY_ENV} is not set" in r.stderr
    assert not (tmp_path / "out").exists()


def test_piped_progress_is_one_plain_line_per_finished_prompt(tmp_path: Path):
    suite = write_suite(tmp_path / "s", [{"id": "first", "prompt": "one"}, {"id": "second", "prompt": "two"}],
                        runs=2)
    with ScriptedServer({"one": [answer("ok")], "two": [answer("no")]}) as srv:
        r = subprocess.run(
            [PYTHON, "-m", "hbench", "run", "--lane-url", srv.url, "--model", "scripted-model", "--suite", str(suite),
             "--out", str(tmp_path / "out")],
            cwd=tmp_path, env=hbench_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "\x1b" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if " passed · " in x]
    assert len(lines) == 2, r.stderr
    assert lines[0].startswith("scripted-model · first: 2/2 passed · ") and lines[0].endswith(" s elapsed")
    assert lines[1].startswith("scripted-model · second: 0/2 passed · ")


def test_ready_timeout_flag_is_validated(tmp_path: Path):
    suite = write_suite(tmp_path / "s", [{"id": "a", "prompt": "p"}])
    r = subprocess.run(
        [PYTHON, "-m", "hbench", "run", "--lane-url", "http://127.0.0.1:9/v1", "--model", "m", "--suite", str(suite),
         "--out", str(tmp_path / "out"), "--ready-timeout", "-1"],
        cwd=tmp_path, env=hbench_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--ready-timeout" in r.stderr, r.stderr

