"""Helpers for the reliability tests: a small real suite on disk, an in-process or
subprocess ``hbench run`` against a real loopback server, and a strict journal reader.

Everything here drives the real parts (runner, builtin agent, client, journal, sandbox,
reporters) end to end; the only fake is the model, played by ``hbench.testing``'s
scripted OpenAI-compatible server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
#: the secret every secrets test plants; it must never reach any output
CANARY = "sk-canary-7f3a9c1e5b2d4086-DO-NOT-LEAK"

SYSTEM = "You answer from the files in your working directory."


def write_suite(root: Path, prompts: list[dict[str, Any]], *, fixtures: dict[str, str] | None = None,
                ground_truth: dict[str, str] | None = None, runs: int = 1, timeout_s: float = 20,
                max_turns: int = 6, name: str = "rel") -> Path:
    """A suite folder (suite.toml, prompts.jsonl, ground_truth.json, fixtures/)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.toml").write_text(
        f'name = "{name}"\nversion = "1"\ndescription = "reliability"\n'
        f'system_prompt = "{SYSTEM}"\n\n[defaults]\nruns = {runs}\ntimeout_s = {timeout_s}\n'
        f"max_turns = {max_turns}\nmax_tokens = 256\ntemperature = 0.0\n", encoding="utf-8")
    rows = []
    for p in prompts:
        row = {"category": "rel", "core": True, "expect_tool_any": [],
               "check": {"kind": "substring", "any": ["ok"]}, **p}
        rows.append(json.dumps(row))
    (root / "prompts.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "ground_truth.json").write_text(json.dumps(ground_truth or {"x": "1"}), encoding="utf-8")
    fx = root / "fixtures"
    fx.mkdir(exist_ok=True)
    for rel, text in (fixtures or {"notes.md": "the answer is ok\n"}).items():
        f = fx / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text, encoding="utf-8")
    return root


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every line of the journal, parsed; fails the test on any line that is not one
    complete JSON object (a torn or corrupt journal)."""
    data = Path(path).read_bytes()
    assert data.endswith(b"\n"), f"{path}: the last line is torn (no newline)"
    records = []
    for no, line in enumerate(data.split(b"\n")[:-1], 1):
        try:
            rec = json.loads(line)
        except ValueError as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{path}:{no} is not JSON ({exc}): {line[:200]!r}")
        assert isinstance(rec, dict) and "type" in rec, f"{path}:{no} is not a journal record"
        records.append(rec)
    assert records and records[0]["type"] == "header"
    return records


def attempts_of(records: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Journaled attempts by (prompt_id, n); fails on a duplicate (an attempt run twice)."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for r in records:
        if r["type"] == "attempt":
            key = (r["prompt_id"], r["n"])
            assert key not in out, f"attempt {key} journaled twice"
            out[key] = r["attempt"]
    return out


def run_inproc(out: Path, suite: Path, url: str | None, *, model: str | None = "scripted-model", **kw: Any) -> Any:
    """``hbench run --lane-url URL`` in this process (the real Runner); ``url=None``
    runs the lanes of ``config=`` instead."""
    from hbench.runner import RunOptions, run

    if not url:
        url, model = None, None
    opts = RunOptions(suite=str(suite), lane_url=url, model=model, out=str(out), progress=False,
                      sample_hz=kw.pop("sample_hz", 5.0), **kw)
    return run(opts)


def hbench_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HBENCH_")}
    env.update({"PYTHONUNBUFFERED": "1", "HBENCH_VALIDATE_SCORECARDS": "1", "HBENCH_LOAD_PLUGINS": ""})
    env.update(extra)
    return env
