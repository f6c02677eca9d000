"""Shared parts of the benchmarks: the scripted server in its own process, scripts for the
bundled suite, synthetic suites, and the figure line.

The scripted server runs as a separate process (``python -m hbench.testing serve``) in
every benchmark that measures hbench's own CPU or memory, so the fake model's work is
never counted as the harness's. Its ``--record`` file gives server-side request times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent

# substrings of the bundled hermes-brain prompts (the scripted server matches on them)
FREIGHT = "account number with the freight carrier"
VENDOR = "current account manager at Larkspur"
MARCH = "What did we spend in March"
HONESTY = "personal mobile number"
JSON_ = "Who leads the warehouse"
CODE = "loyalty-programme discount"
JOIN = "total value of the orders"
TRAP = "gateway's read timeout"


def _call(name: str, **args: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": args}]}


def _answer(text: str) -> dict[str, Any]:
    return {"content": text}


def bundled_scripts() -> list[dict[str, Any]]:
    """A plausible lane on the bundled suite: right, wrong and flaky prompts, one to
    three model turns an attempt, every tool really run in the scratch copy."""
    right_vendor = [_call("list_dir", path="vendors"), _call("read_file", path="vendors/v02_larkspur-saddles.txt"),
                    _answer("o.marchetti@larkspur-saddles.example")]
    wrong_vendor = [_call("list_dir", path="vendors"),
                    _call("read_file", path="vendors/x09_larkspur-saddles-archive-2019.txt"),
                    _answer("g.holt@larkspur-saddles.example")]
    return [
        {"match": FREIGHT, "turns": [_call("read_file", path="ops/shipping.md"), _answer("CFW-7731-QX")]},
        {"match": VENDOR, "attempts": [right_vendor, wrong_vendor, right_vendor]},
        {"match": MARCH, "turns": [_call("read_file", path="ops/expenses_march.csv"),
                                   _answer("The total is $2,754.85.")]},
        {"match": HONESTY, "turns": [_answer("I don't know: no file holds her personal mobile number.")]},
        {"match": JSON_, "turns": [_call("grep", pattern="Warehouse", path="staff"),
                                   _answer('{"name": "Tomasz Wierzbicki", "role": "Warehouse lead", '
                                           '"extension": "4417"}')]},
        {"match": CODE, "turns": [_call("read_file", path="code/pricing.py"), _answer("price_for_member")]},
        {"match": JOIN, "turns": [_call("calculate", expression="3*34.90 + 12*7.45 + 4*18.00 + 2*89.00 + 1*34.90"),
                                  _answer("$424.90")]},
        {"match": TRAP, "turns": [_call("grep", pattern="read_timeout", path="ops"), _answer("15 seconds")]},
    ]


def write_json(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


class ServerProcess:
    """``python -m hbench.testing serve`` in its own process (so its CPU and memory are
    not hbench's), with every request recorded to a JSONL file."""

    def __init__(self, script: Path, workdir: Path, *, latency_s: float = 0.0, token_latency_s: float = 0.0,
                 record: bool = True, name: str = "server"):
        self.record = workdir / f"{name}.requests.jsonl" if record else None
        cmd = [sys.executable, "-m", "hbench.testing", "serve", "--script", str(script),
               "--latency", str(latency_s), "--token-latency", str(token_latency_s)]
        if self.record:
            cmd += ["--record", str(self.record)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()  # type: ignore[union-attr]
        if not line.startswith("ready "):
            self.proc.kill()
            raise RuntimeError(f"scripted server did not start: {line!r}")
        self.url = line.split(" ", 1)[1]

    def requests(self) -> list[dict[str, Any]]:
        if not self.record or not self.record.exists():
            return []
        return [json.loads(x) for x in self.record.read_text(encoding="utf-8").splitlines() if x.strip()]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def chat_requests(records: list[dict[str, Any]], *, attempts_only: bool = True) -> list[dict[str, Any]]:
    """Chat requests from a record file; ``attempts_only`` drops the throughput probe's
    (they carry no tools)."""
    out = [r for r in records if str(r.get("path", "")).rstrip("/").endswith("/chat/completions")]
    if attempts_only:
        out = [r for r in out if isinstance(r.get("body"), dict) and r["body"].get("tools")]
    return out


def max_in_flight(records: list[dict[str, Any]]) -> int:
    events = []
    for r in records:
        if r.get("t_end") is None:
            continue
        events += [(r["t_start"], 1), (r["t_end"], -1)]
    best = cur = 0
    for _t, d in sorted(events, key=lambda e: (e[0], e[1])):
        cur += d
        best = max(best, cur)
    return best


def synthetic_suite(dest: Path, prompts: list[dict[str, Any]], *, name: str = "bench", runs: int = 5,
                    fixtures: dict[str, str] | None = None) -> Path:
    """A suite folder: ``prompts`` are prompts.jsonl rows (``id``, ``prompt``, ``check``, ...)."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "suite.toml").write_text(
        f'name = "{name}"\nversion = "1"\ndescription = "benchmark suite"\n'
        'system_prompt = "You answer from the files."\n\n'
        f"[defaults]\nruns = {runs}\ntimeout_s = 60\nmax_turns = 6\nmax_tokens = 256\ntemperature = 0.0\n",
        encoding="utf-8")
    rows = []
    for p in prompts:
        row = {"category": "bench", "core": True, "conditional": None, "expect_tool_any": [], "vibe": False,
               "note": "benchmark"}
        row.update(p)
        rows.append(json.dumps(row))
    (dest / "prompts.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (dest / "ground_truth.json").write_text("{}\n", encoding="utf-8")
    fx = dest / "fixtures"
    fx.mkdir(exist_ok=True)
    for rel, text in (fixtures or {"notes.md": "The code word is heron-42.\n"}).items():
        (fx / rel).parent.mkdir(parents=True, exist_ok=True)
        (fx / rel).write_text(text, encoding="utf-8")
    return dest


def lanes_toml(path: Path, lanes: dict[str, str], model: str = "scripted-model") -> Path:
    """An hbench.toml with one ``openai`` lane per ``name -> base_url``."""
    lines = []
    for name, url in lanes.items():
        lines += [f"[lanes.{name}]", 'kind = "openai"', f'base_url = "{url}"', f'model = "{model}"', ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def quiet_logs() -> None:
    """Benchmarks print figures; hbench's structlog lines (stderr) at warning and above only."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def cpu_s() -> float:
    """This process's CPU time, every thread."""
    return time.process_time()


def figure(name: str, value: float, unit: str, goal: str, fmt: str = "{:.2f}") -> str:
    """The benchmark's last line: ``NAME: VALUE UNIT (goal ...)``."""
    return f"{name}: {fmt.format(value)} {unit} (goal {goal})"


def verdict(ok: bool) -> str:
    return "(meets the goal)" if ok else "(MISSES the goal)"


def iter_lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        yield from f


def env_quiet() -> dict[str, str]:
    return {**os.environ, "HBENCH_LOG_LEVEL": "warning"}
