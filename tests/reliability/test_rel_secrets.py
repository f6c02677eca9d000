"""Secrets canary: a canary API key in the lane's env var, a full suite with faults,
then every output is grepped for it: journal, scorecards, summary, HTML, review, logs
(console and JSON) and the traceback of a forced crash. Expect zero hits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hbench.testing import Fault, ScriptedServer, answer, call
from relhelp import CANARY, PYTHON, hbench_env, read_journal, write_suite

KEY_ENV = "HBENCH_REL_API_KEY"


def _hits(root: Path) -> list[str]:
    """Every file under root holding the canary (as text or bytes)."""
    return [str(p) for p in root.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]


def test_canary_key_never_reaches_any_output(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite", [
        {"id": "tool", "prompt": "read the notes", "expect_tool_any": ["read"], "vibe": True},
        {"id": "flaky", "prompt": "flaky server"},
        {"id": "broken", "prompt": "broken reply"},
        {"id": "stall", "prompt": "stalling server"},
    ], runs=2, timeout_s=2)
    scripts = {
        "read the notes": [call("read_file", path="notes.md", turn={"faults": [Fault("malformed_args", times=1)]}),
                           answer("ok, read")],
        "flaky server": [answer("ok", faults=[Fault("http", status=503, times=2), Fault("other_model")])],
        "broken reply": [answer("ok", faults=[Fault("truncated_json")])],
        "stalling server": [answer("ok", faults=[Fault("stall")])],
    }
    out = tmp_path / "out"
    env = hbench_env(**{KEY_ENV: CANARY})
    logs = {}
    with ScriptedServer(scripts, api_key=CANARY) as srv:  # requests without the key get 401
        for fmt in ("json", "console"):
            r = subprocess.run(
                [PYTHON, "-m", "hbench", "--log-format", fmt, "--log-level", "debug", "run", "--suite", str(suite),
                 "--out", str(out), "--lane-url", srv.url, "--model", "scripted-model", "--api-key-env", KEY_ENV,
                 "--no-progress"] + (["--resume"] if fmt == "console" else []),
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
            logs[fmt] = r.stdout + r.stderr
            # exit 3, not 0 (issue 14): 'broken reply' truncates its stream on every try, so
            # those attempts are errored (the stack's fault), the lane is incomplete, and the
            # last stderr line says so; --resume re-runs them and they error again.
            assert r.returncode == 3, r.stderr[-2000:]
            assert "incomplete" in r.stderr.strip().splitlines()[-1], r.stderr[-2000:]
        authed = [q for q in srv.chat_requests if q.status != 401]
    assert authed, "the key never reached the server: the canary proves nothing"
    assert all(q.headers.get("Authorization") == f"Bearer {CANARY}" for q in authed)

    # the run produced every output, and had faults to report
    for name in ("journal.jsonl", "scripted-model.json", "summary.md", "report.html", "review.md"):
        assert (out / name).exists(), name
    attempts = [r for r in read_journal(out / "journal.jsonl") if r["type"] == "attempt"]
    assert any(a["attempt"]["error"] for a in attempts) and any(a["attempt"]["runaway"] for a in attempts)
    assert '"level"' in logs["json"] and "debug" in logs["json"]  # JSON logs at debug level were there

    assert _hits(out) == []
    for fmt, text in logs.items():
        assert CANARY not in text, f"{fmt} log leaks the key"


CRASH = r"""
import os, sys
from hbench import hookimpl
from hbench.agents import Agent
from hbench.plugin_manager import get_plugins
from hbench.cli import main

class Crashing(Agent):
    name = "crashing"
    def usable(self):
        key = os.environ["%s"]  # a bug that puts the key in a local and the message
        raise RuntimeError("driver blew up with " + key)

class P:
    @hookimpl
    def hbench_register_agents(self, register):
        register(Crashing())

get_plugins().register(P(), name="crashing-plugin")
main(sys.argv[1:])
""" % KEY_ENV


def test_traceback_of_a_forced_crash_holds_no_key(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite", [{"id": "a", "prompt": "p"}])
    (tmp_path / "crash.py").write_text(CRASH)
    with ScriptedServer({}) as srv:
        r = subprocess.run(
            [PYTHON, str(tmp_path / "crash.py"), "--log-level", "debug", "run", "--suite", str(suite),
             "--out", str(tmp_path / "out"), "--lane-url", srv.url, "--model", "scripted-model",
             "--api-key-env", KEY_ENV, "--agent", "crashing", "--no-progress"],
            cwd=tmp_path, env=hbench_env(**{KEY_ENV: CANARY}), capture_output=True, text=True, timeout=60)
    output = r.stdout + r.stderr
    assert r.returncode != 0
    assert "Traceback" in output and "driver blew up with ***" in output  # the crash is shown...
    assert CANARY not in output  # ...without the key
    assert _hits(tmp_path / "out") == [] if (tmp_path / "out").exists() else True
