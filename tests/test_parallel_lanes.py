"""--parallel-lanes: three unmanaged lanes, each its own scripted server answering after
0.5 s, run side by side in one process: the same scorecards as one lane after another,
the lanes really overlap, and a kill -9 mid-run leaves a journal that --resume finishes
into those same scorecards. Managed lanes of one node never overlap; of two nodes they do."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hbench.journal import iter_records
from hbench.runner import RunOptions, run
from test_resume import comparable
from test_runner import steady_scripts

LANES = ("lane-a", "lane-b", "lane-c")
LATENCY_S = 0.5
COMMON = dict(suite="hermes-brain-v1", runs=1, core_only=True, max_turns=3, concurrency=4, report="json",
              progress=False)


def lanes_toml(path: Path, urls: dict[str, str], extra: dict[str, str] | None = None) -> Path:
    text = "".join(f'[lanes.{name}]\nbase_url = "{url}"\nmodel = "scripted-model"\n{(extra or {}).get(name, "")}\n'
                   for name, url in urls.items())
    path.write_text(text)
    return path


@pytest.fixture
def three(scripted_server, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    servers = {n: scripted_server(steady_scripts(), latency_s=LATENCY_S) for n in LANES}
    return servers, lanes_toml(tmp_path / "hbench.toml", {n: s.url for n, s in servers.items()})


def same_parts(card: dict[str, Any]) -> dict[str, Any]:
    """What must not differ between two runs of a lane: the scorecard without timings."""
    card = comparable(card)
    card["lane"] = {k: v for k, v in card["lane"].items() if not k.endswith("_s")}  # ready_s: a timing
    if isinstance(card.get("efficiency"), dict):  # seconds per solved prompt etc.: timings
        card["efficiency"] = {k: v for k, v in card["efficiency"].items()
                              if not (k.endswith("_s") or "_s_" in k or k.startswith("s_per"))}
    return card


def cards(out: Path) -> dict[str, Any]:
    return {n: same_parts(json.loads((out / f"{n}.json").read_text())) for n in LANES}


def differences(a: Any, b: Any, at: str = "") -> list[str]:
    """Where two JSON values differ (for a readable assertion message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in differences(a.get(k), b.get(k), f"{at}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{at}[{i}]")]
    return [] if a == b else [f"{at}: {a!r} != {b!r}"]


def spans(servers: dict[str, Any]) -> dict[str, tuple[float, float]]:
    out = {}
    for name, srv in servers.items():
        reqs = [r for r in srv.chat_requests if r.script]
        out[name] = (min(r.t_start for r in reqs), max(r.t_end for r in reqs))
    return out


def test_three_lanes_side_by_side_score_as_one_after_another(three, tmp_path: Path) -> None:
    servers, toml = three
    serial = run(RunOptions(lanes="all", config=str(toml), out=str(tmp_path / "serial"), **COMMON))
    assert serial.exit_code == 0
    for srv in servers.values():
        srv.clear_requests()
    par = run(RunOptions(lanes="all", config=str(toml), out=str(tmp_path / "par"), parallel_lanes=3, **COMMON))
    assert par.exit_code == 0, par.verdict
    assert [sc.lane["name"] for sc in par.scorecards] == list(LANES)  # lane order, whatever finished first
    assert not differences(cards(tmp_path / "par"), cards(tmp_path / "serial"))
    assert all(sc.complete for sc in par.scorecards)
    # the lanes overlapped: every lane's attempts began before any lane's ended
    s = spans(servers)
    assert max(a for a, _ in s.values()) < min(b for _, b in s.values())
    # one journal, every record naming its lane; each attempt once
    recs = [r for _, r in iter_records(tmp_path / "par" / "journal.jsonl")]
    keys = [(r["lane"], r["prompt_id"], r["n"]) for r in recs if r["type"] == "attempt"]
    assert len(keys) == len(set(keys)) == 3 * 8
    assert {r["lane"] for r in recs if r["type"] == "lane_finished"} == set(LANES)


@pytest.mark.slow
def test_kill_9_mid_parallel_run_then_resume(three, tmp_path: Path) -> None:
    servers, toml = three
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hbench", "--config", str(toml), "run", "--lanes", "all", "--parallel-lanes", "3",
         "--suite", "hermes-brain-v1", "--runs", "1", "--core-only", "--max-turns", "3", "--concurrency", "4",
         "--out", str(out), "--report", "json", "--no-history"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = out / "journal.jsonl"
    end = time.monotonic() + 90
    while True:  # every lane has journaled some attempts, none has finished
        lanes = [r["lane"] for _, r in iter_records(journal) if r["type"] == "attempt"] if journal.exists() else []
        if {n: lanes.count(n) for n in LANES if lanes.count(n) >= 2}.keys() == set(LANES):
            break
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < end, "the lanes did not journal in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    before = [(r["lane"], r["prompt_id"], r["n"]) for _, r in iter_records(journal) if r["type"] == "attempt"]
    assert len(before) < 3 * 8

    resumed = run(RunOptions(lanes="all", config=str(toml), out=str(out), parallel_lanes=3, resume=True,
                             **COMMON))
    assert resumed.exit_code == 0, resumed.verdict
    keys = [(r["lane"], r["prompt_id"], r["n"]) for _, r in iter_records(journal) if r["type"] == "attempt"]
    assert len(set(keys)) == 3 * 8 and set(before) <= set(keys)
    serial = run(RunOptions(lanes="all", config=str(toml), out=str(tmp_path / "serial"), **COMMON))
    assert not differences(cards(out), cards(tmp_path / "serial"))


def test_managed_lanes_of_one_node_never_overlap_two_nodes_do(tmp_path: Path) -> None:
    """Four managed scripted lanes (hbench starts each): two on node n1, two on n2, with
    --parallel-lanes 4. The lanes of one node run one after another; the nodes overlap."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"scripts": [], "default": [{"content": "I don't know."}]}))
    names = {"m1": "n1", "m2": "n1", "m3": "n2", "m4": "n2"}
    text = ""
    for name, node in names.items():
        start = json.dumps([sys.executable, "-m", "hbench.testing", "serve", "--port", "{port}",
                            "--script", str(script), "--latency", "0.3"])
        text += (f'[lanes.{name}]\nkind = "openai"\nbase_url = "http://127.0.0.1:{{port}}/v1"\n'
                 f'model = "scripted-model"\nstart = {start}\nnode = "{node}"\nready_timeout_s = 60\n\n')
    toml = tmp_path / "hbench.toml"
    toml.write_text(text)
    result = run(RunOptions(lanes="all", config=str(toml), out=str(tmp_path / "out"), parallel_lanes=4,
                            suite="hermes-brain-v1", runs=1, core_only=True, max_turns=2, concurrency=8,
                            report="json,md,html", progress=False))
    assert all(not sc.failed for sc in result.scorecards), [sc.failed for sc in result.scorecards]
    summary = (tmp_path / "out" / "summary.md").read_text()
    html = (tmp_path / "out" / "report.html").read_text()
    for name, node in names.items():  # each lane's row names its node (its telemetry is that node's)
        assert f"{name} (on {node})" in summary
    assert html.count(" · on n1") == 2 and html.count(" · on n2") == 2
    # the journal's per-lane order is what the lane records show: each node's second lane
    # began after its first lane's last attempt; the two nodes' lanes overlapped
    order = [r["lane"] for _, r in iter_records(tmp_path / "out" / "journal.jsonl") if r["type"] in ("lane",
                                                                                                     "lane_finished")]
    for a, b in (("m1", "m2"), ("m3", "m4")):
        ia_end, ib_begin = order.index(a, order.index(a) + 1), order.index(b)
        assert ia_end < ib_begin, order  # a's lane_finished before b's lane record
    assert order.index("m3") < order.index("m1", order.index("m1") + 1), order  # n2 began before n1's first ended


@pytest.mark.parametrize("node, ok", [("spark2", True), ("gpu-box.lab_1", True), ("", False), ("two words", False),
                                      ("-lead", False), ("x" * 64, False)])
def test_a_lanes_node_is_validated_naming_the_key(tmp_path: Path, node: str, ok: bool) -> None:
    from hbench.config import load_config
    from hbench.errors import ConfigError

    toml = tmp_path / "hbench.toml"
    toml.write_text(f'[lanes.a]\nbase_url = "http://127.0.0.1:8000/v1"\nnode = "{node}"\n')
    if ok:
        assert load_config(toml).lanes["a"].node == node
    else:
        with pytest.raises(ConfigError, match=r"lanes\.a\.node: .* is not a node name"):
            load_config(toml)


def test_parallel_lanes_below_one_is_bad_input(tmp_path: Path) -> None:
    from hbench.errors import BadInput

    with pytest.raises(BadInput, match="--parallel-lanes 0"):
        run(RunOptions(lane_url="http://127.0.0.1:9/v1", model="m", parallel_lanes=0, out=str(tmp_path / "o")))


def test_node_is_not_part_of_the_fingerprint() -> None:
    from hbench.journal import lane_fingerprint
    from hbench.models import LaneSpec

    a, b = LaneSpec(name="x", base_url="http://h:1/v1"), LaneSpec(name="x", base_url="http://h:1/v1", node="spark2")
    assert lane_fingerprint(a, {}) == lane_fingerprint(b, {})


def test_parallel_lanes_from_hbench_toml(tmp_path: Path) -> None:
    from hbench.config import load_config
    from hbench.errors import ConfigError

    toml = tmp_path / "hbench.toml"
    toml.write_text("[run]\nparallel_lanes = 3\n")
    assert load_config(toml).run.parallel_lanes == 3
    toml.write_text("[run]\nparallel_lanes = 0\n")
    with pytest.raises(ConfigError, match="run.parallel_lanes: 0 is not usable"):
        load_config(toml)
