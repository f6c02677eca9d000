"""Unified-memory safety (issue 21): a managed lane does not start while MemAvailable is
below the memory floor (default 8 GiB where memory is unified), and a running lane is
stopped, and recorded incomplete with the reason, when MemAvailable falls below it.

MemAvailable comes from a fake /proc/meminfo (``hbench.lifecycle.MEMINFO``); the lanes
are real processes (tests/lane_imitations.py, ``python -m hbench.testing serve``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import attrs
import psutil
import pytest

from hbench import hookimpl, lifecycle
from hbench.config import run_problems, RunDefaults, lane_problems
from hbench.errors import LaneError
from hbench.lanes import free_port, open_lane
from hbench.models import LaneSpec
from hbench.plugin_manager import get_registries
from hbench.runner import RunOptions, run

IMITATION = str(Path(__file__).with_name("lane_imitations.py"))
GIB_KB = 1024 * 1024  # /proc/meminfo counts kB (KiB)


def write_meminfo(path: Path, available_gib: float, total_gib: float = 128.0) -> None:
    path.write_text(f"MemTotal:       {int(total_gib * GIB_KB)} kB\n"
                    f"MemFree:        {int(available_gib * GIB_KB / 2)} kB\n"
                    f"MemAvailable:   {int(available_gib * GIB_KB)} kB\n")


@pytest.fixture
def meminfo(tmp_path, monkeypatch):
    path = tmp_path / "meminfo"
    write_meminfo(path, 64.0)
    monkeypatch.setattr(lifecycle, "MEMINFO", path)
    monkeypatch.setattr(lifecycle, "FLOOR_POLL_S", 0.1)
    monkeypatch.setenv(lifecycle.UNIFIED_ENV, "1")
    return path


def imitation_lane(name: str, **kw) -> LaneSpec:
    kw.setdefault("stop_grace_s", 1.0)
    kw.setdefault("ready_timeout_s", 20.0)
    kw.setdefault("memory_return_timeout_s", 0.5)
    return LaneSpec(name=name, kind="llamacpp",
                    start=[sys.executable, IMITATION, "--kind", "llamacpp", "--port", "{port}"], **kw)


def kind(name: str):
    return get_registries().lane_kinds.get(name)


def test_unified_memory_is_named_by_the_machine_or_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(lifecycle.UNIFIED_ENV, raising=False)
    model = tmp_path / "product_name"
    model.write_text("NVIDIA DGX Spark\n")
    monkeypatch.setattr(lifecycle, "MACHINE_FILES", (tmp_path / "absent", model))
    assert lifecycle.unified_memory() == (True, f"{model} says 'NVIDIA DGX Spark'")
    model.write_text("ProLiant DL380 Gen10\n")
    unified, why = lifecycle.unified_memory()
    assert not unified and "no unified-memory machine named" in why
    monkeypatch.setenv(lifecycle.UNIFIED_ENV, "1")
    assert lifecycle.unified_memory()[0]


def test_the_floor_is_8_gib_where_unified_none_elsewhere_and_configurable(monkeypatch):
    monkeypatch.setenv(lifecycle.UNIFIED_ENV, "1")
    floor, why = lifecycle.memory_floor(LaneSpec(name="a"))
    assert floor == 8.0 and "unified" in why
    monkeypatch.setenv(lifecycle.UNIFIED_ENV, "0")
    assert lifecycle.memory_floor(LaneSpec(name="a"))[0] == 0.0
    assert lifecycle.memory_floor(LaneSpec(name="a", memory_floor_gb=12))[0] == 12.0
    assert lifecycle.memory_floor(LaneSpec(name="a", memory_floor_gb=0))[0] == 0.0
    assert any(p and p.startswith("memory_floor_gb: -1") for p in run_problems(RunDefaults(memory_floor_gb=-1)))
    assert any(p and p.startswith("memory_floor_gb: nan") for p in lane_problems(LaneSpec(name="a", memory_floor_gb=float("nan"))))


def test_no_start_below_the_floor_and_nothing_is_spawned(meminfo, tmp_path):
    write_meminfo(meminfo, 6.0)
    marker = tmp_path / "marker"
    spec = imitation_lane("low")
    spec.start += ["--marker", str(marker)]
    with pytest.raises(LaneError) as err:
        with open_lane(spec, kind("llamacpp"), out_dir=tmp_path, headroom_gb=0):
            pytest.fail("started below the floor")
    msg = str(err.value)
    assert "lane 'low' not started: 6.0 GiB available (MemAvailable), below the memory floor of 8.0 GiB" in msg
    assert "memory_floor_gb" in msg and not marker.exists()


def test_expected_memory_counts_against_the_floor(meminfo, tmp_path):
    write_meminfo(meminfo, 20.0)
    spec = imitation_lane("big", expected_memory_gb=15.0)  # 15 GB = 14.0 GiB: 6.0 GiB would be left
    with pytest.raises(LaneError, match=r"6\.0 GiB once its expected_memory_gb is taken, below the memory floor"):
        with open_lane(spec, kind("llamacpp"), out_dir=tmp_path, headroom_gb=0):
            pass


def test_a_floor_of_zero_or_memory_not_unified_starts_the_lane(meminfo, tmp_path, monkeypatch):
    write_meminfo(meminfo, 6.0)
    with open_lane(imitation_lane("off", memory_floor_gb=0), kind("llamacpp"), out_dir=tmp_path, headroom_gb=0) as r:
        assert r.is_alive()
    monkeypatch.setenv(lifecycle.UNIFIED_ENV, "0")
    with open_lane(imitation_lane("discrete"), kind("llamacpp"), out_dir=tmp_path, headroom_gb=0) as r:
        assert r.is_alive()


def test_a_running_lane_is_stopped_when_memory_drops_below_the_floor(meminfo, tmp_path):
    with open_lane(imitation_lane("tight"), kind("llamacpp"), out_dir=tmp_path, headroom_gb=0) as running:
        tree = [running.pid, *(p.pid for p in psutil.Process(running.pid).children(recursive=True))]
        time.sleep(0.3)
        assert running.is_alive() and running.stop_reason is None
        write_meminfo(meminfo, 7.5)
        deadline = time.monotonic() + 10
        while running.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running.is_alive()
        reason = running.died_reason()
        assert reason.startswith("lane 'tight' stopped: MemAvailable fell to 7.5 GiB, below the memory floor "
                                 "of 8.0 GiB")
    assert not [p for p in tree if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


class LowerMemoryAfter:
    """After ``n`` finished attempts, MemAvailable (the fake meminfo) falls to 2 GiB."""

    def __init__(self, path: Path, n: int):
        self.path, self.n, self.seen = path, n, 0

    @hookimpl
    def hbench_attempt_finished(self, attempt, lane, prompt):  # noqa: ANN001, ANN201
        self.seen += 1
        if self.seen == self.n:
            write_meminfo(self.path, 2.0)


def test_hbench_run_records_the_lane_incomplete_with_the_floor_as_the_reason(meminfo, hbench_plugin, tmp_path):
    port = free_port()
    script = tmp_path / "s.json"
    script.write_text(json.dumps({"scripts": [], "default": [{"content": "I don't know.", "latency_s": 0.3}]}))
    cfg = tmp_path / "hbench.toml"
    cfg.write_text(f'[run]\nmemory_floor_gb = 4\n\n[lanes.tight]\nkind = "openai"\n'
                   f'base_url = "http://127.0.0.1:{port}/v1"\nready_timeout_s = 30\nstop_grace_s = 2\n'
                   f'memory_return_timeout_s = 0.5\n'
                   f'start = ["{sys.executable}", "-m", "hbench.testing", "serve", "--port", "{port}", '
                   f'"--script", "{script}"]\n')
    hbench_plugin(LowerMemoryAfter(meminfo, 2), name="squeeze")
    result = run(RunOptions(config=str(cfg), lanes="tight", suite="hermes-brain-v1", runs=1,
                            out=str(tmp_path / "r"), report="json,md", progress=False))
    (sc,) = result.scorecards
    assert not sc.complete and sc.attempts_planned == 8 and sc.attempts_scored < 8
    assert sc.incomplete_reason.startswith("lane 'tight' stopped: MemAvailable fell to 2.0 GiB, below the "
                                           "memory floor of 4.0 GiB"), sc.incomplete_reason
    assert "lanes.tight.memory_floor_gb (or [run].memory_floor_gb)" in sc.incomplete_reason


# --------------------------------------------------------------------------- the memory source


def test_telemetry_names_its_memory_source_and_why():
    from hbench.probes import summarise

    # which probes read a GPU's own memory: their class says so (memory_source = "gpu"), the
    # sampler passes their names (core names no probe)
    gpu = {"gpu_probes": {"nvml"}}
    gb10 = summarise([{"unified_memory": True, "unified_used_gb": 40.0, "gpu_util": 90}], {"nvml": "ok", "meminfo": "ok"},
                     **gpu)
    assert gb10.memory_source["source"] == "meminfo (unified memory)" and "NotSupported" in gb10.memory_source["why"]
    discrete = summarise([{"gpu_mem_used_gb": 20.0, "unified_used_gb": 30.0}], {"nvml": "ok"})
    assert discrete.memory_source["source"] == "gpu"
    laptop = summarise([{"unified_used_gb": 3.0}], {"nvml": "unavailable: no NVIDIA driver", "meminfo": "ok"}, **gpu)
    assert laptop.memory_source == {"source": "meminfo (system RAM)",
                                    "why": "no GPU memory reading (nvml: unavailable: no NVIDIA driver)"}
    nothing = summarise([{"cpu_percent": 5.0}], {"meminfo": "unavailable: /proc/meminfo does not exist"})
    assert nothing.memory_source == {"source": "none", "why": "meminfo: unavailable: /proc/meminfo does not exist"}
    assert summarise([]).memory_source == {}
