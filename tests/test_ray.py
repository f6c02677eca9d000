"""--ray on a real local Ray cluster started here: a head node (label hbench-node=alpha) and
a second node (hbench-node=beta), each its own `ray start --block` process group with its
own temp folder, both killed in every case. Two lanes pinned to the two nodes, one managed
(hbench starts its scripted server on its node): each lane runs on its node, and the
results equal a local run. Then the worker node is killed mid-lane: that lane is
incomplete (exit 3), and --resume finishes it to the local run's scores."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (pip install 'hermes-bench[ray]')")

from hbench.journal import iter_records  # noqa: E402
from hbench.runner import RunOptions, run  # noqa: E402
from test_parallel_lanes import differences, same_parts  # noqa: E402
from test_runner import steady_scripts  # noqa: E402

RAY = Path(sys.executable).with_name("ray")
COMMON = dict(suite="hermes-brain-v1", runs=1, core_only=True, max_turns=3, concurrency=4, report="json",
              progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hb-ray-"))  # short: Ray's socket paths have a length limit
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_memory_monitor_refresh_ms": "0", "RAY_USAGE_STATS_ENABLED": "0"}
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, label: str, head: bool) -> None:
        cmd = [str(RAY), "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "4",
               "--labels", f"hbench-node={label}", "--temp-dir", str(self.root / label), "--disable-usage-stats"]
        cmd += ["--head", "--port", str(self.port), "--include-dashboard", "false"] if head else \
               ["--address", self.address]
        log = open(self.root / f"{label}.log", "w")  # noqa: SIM115 - the node's whole life
        self.procs[label] = subprocess.Popen(cmd, env=self.env, start_new_session=True, stdout=log,
                                             stderr=subprocess.STDOUT)

    def kill(self, label: str) -> None:
        proc = self.procs.pop(label, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the node: its raylet, its workers (one process group)
        except ProcessLookupError:
            pass
        proc.wait(30)

    def wait_nodes(self, n: int, timeout: float = 150) -> None:
        end = time.monotonic() + timeout
        while True:
            try:
                if not ray.is_initialized():
                    ray.init(address=self.address, log_to_driver=False, configure_logging=False)
                alive = [x for x in ray.nodes() if x.get("Alive")]
                if len(alive) >= n:
                    return
            except Exception:  # noqa: BLE001 - the head is still starting
                pass
            for label, p in self.procs.items():
                assert p.poll() is None, f"ray node {label} exited: " + (self.root / f"{label}.log").read_text()[-2000:]
            assert time.monotonic() < end, "the Ray cluster did not come up in time"
            time.sleep(0.5)

    def stop(self) -> None:
        try:
            if ray.is_initialized():
                ray.shutdown()
        finally:
            for label in list(self.procs):
                self.kill(label)
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        c.start("alpha", head=True)
        time.sleep(2)
        c.start("beta", head=False)
        c.wait_nodes(2)
        yield c
    finally:
        c.stop()


def config(tmp: Path, beta_url: str, latency: float = 0.05) -> Path:
    script = tmp / "script.json"
    script.write_text(json.dumps({"scripts": [{"match": m, "turns": t if isinstance(t, list) else t["attempts"][0]}
                                              for m, t in _plain(steady_scripts()).items()]}))
    start = json.dumps([sys.executable, "-m", "hbench.testing", "serve", "--port", "{port}", "--script", str(script),
                        "--latency", str(latency)])
    toml = tmp / "hbench.toml"
    toml.write_text(f'[lanes.managed-alpha]\nbase_url = "http://127.0.0.1:{{port}}/v1"\nmodel = "scripted-model"\n'
                    f'start = {start}\nnode = "alpha"\nready_timeout_s = 90\n\n'
                    f'[lanes.remote-beta]\nbase_url = "{beta_url}"\nmodel = "scripted-model"\nnode = "beta"\n')
    return toml


def _plain(scripts: dict[str, Any]) -> dict[str, Any]:
    """steady_scripts() as JSON script turns (Turn objects -> dicts)."""
    import attrs

    def turn(t: Any) -> dict[str, Any]:
        d = attrs.asdict(t) if attrs.has(type(t)) else dict(t)
        out: dict[str, Any] = {}
        if d.get("content") is not None:
            out["content"] = d["content"]
        if d.get("tool_calls"):
            out["tool_calls"] = [{"name": c["name"], "arguments": c["arguments"]} for c in d["tool_calls"]]
        return out

    return {m: [turn(t) for t in (v if isinstance(v, (list, tuple)) else v["attempts"][0])] for m, v in scripts.items()}


def nodes_of(journal: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for _, r in iter_records(journal):
        if r["type"] == "attempt":
            out.setdefault(r["lane"], set()).add(r.get("node"))
    return out


def cards(out: Path, lanes: tuple[str, ...]) -> dict[str, Any]:
    out_cards = {n: same_parts(json.loads((out / f"{n}.json").read_text())) for n in lanes}
    for card in out_cards.values():
        if card["lane"]["name"].startswith("managed"):
            card["lane"].pop("base_url")  # a free port, chosen at each start
    return out_cards


def test_lanes_run_on_their_nodes_and_score_as_a_local_run(cluster: Cluster, scripted_server, tmp_path: Path) -> None:
    beta = scripted_server(steady_scripts(), latency_s=0.05)
    toml = config(tmp_path, beta.url)
    t0 = time.monotonic()
    on_ray = run(RunOptions(lanes="all", config=str(toml), out=str(tmp_path / "ray"), ray=cluster.address, **COMMON))
    took = time.monotonic() - t0
    assert on_ray.exit_code == 0, on_ray.verdict
    assert nodes_of(tmp_path / "ray" / "journal.jsonl") == {"managed-alpha": {"alpha"}, "remote-beta": {"beta"}}
    for sc in on_ray.scorecards:
        assert sc.provenance["node"] == {"managed-alpha": "alpha", "remote-beta": "beta"}[sc.lane["name"]]
    # the managed lane's server was started by the task on its node: gone now
    beta.clear_requests()
    local = run(RunOptions(lanes="all", config=str(toml), out=str(tmp_path / "local"), **COMMON))
    assert local.exit_code == 0, local.verdict
    lanes = ("managed-alpha", "remote-beta")
    assert not differences(cards(tmp_path / "ray", lanes), cards(tmp_path / "local", lanes))
    print(f"ray run of two lanes: {took:.1f} s")


def test_a_node_killed_mid_lane_leaves_it_incomplete_and_resumable(cluster: Cluster, scripted_server,
                                                                   tmp_path: Path) -> None:
    beta = scripted_server(steady_scripts(), latency_s=0.4)
    toml = tmp_path / "hbench.toml"
    toml.write_text(f'[lanes.remote-beta]\nbase_url = "{beta.url}"\nmodel = "scripted-model"\nnode = "beta"\n')
    out = tmp_path / "killed"
    opts = dict(COMMON, runs=3, concurrency=1)
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.setdefault("r", run(RunOptions(lanes="all", config=str(toml), out=str(out),
                                                                           ray=cluster.address, **opts))))
    t.start()
    journal = out / "journal.jsonl"
    end = time.monotonic() + 120
    while not journal.exists() or sum(r["type"] == "attempt" for _, r in iter_records(journal)) < 3:
        assert t.is_alive() and time.monotonic() < end, "the lane did not journal attempts on node beta in time"
        time.sleep(0.1)
    cluster.kill("beta")
    t.join(120)
    assert not t.is_alive()
    result = box["r"]
    assert result.exit_code == 3, result.verdict
    (sc,) = result.scorecards
    assert not sc.complete and "beta" in sc.incomplete_reason and "lost" in sc.incomplete_reason
    kept = [(r["prompt_id"], r["n"]) for _, r in iter_records(journal) if r["type"] == "attempt"]
    assert 3 <= len(kept) < 8 * 3 and sc.attempts_scored + sc.errored == len(set(kept))
    # --resume (here without Ray: `node` is not part of the lane's fingerprint) runs the rest
    resumed = run(RunOptions(lanes="all", config=str(toml), out=str(out), resume=True, **opts))
    assert resumed.exit_code == 0, resumed.verdict
    final = [(r["prompt_id"], r["n"]) for _, r in iter_records(journal) if r["type"] == "attempt"]
    assert len(set(final)) == 8 * 3 and set(kept) <= set(final)
    local = run(RunOptions(lanes="all", config=str(toml), out=str(tmp_path / "local"), **opts))
    assert not differences(cards(out, ("remote-beta",)), cards(tmp_path / "local", ("remote-beta",)))
