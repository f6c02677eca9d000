"""The background sampler: summary over a known series, attempt tags, bounded probe
calls (a hanging probe is abandoned), failures logged once, real probes end to end,
and ``hbench probe``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any, ClassVar, Iterator

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from hbench.models import Telemetry
from hbench.probes import Probe, merge_readings, summarise, thin
from hbench.sampler import Sampler


@pytest.fixture(autouse=True)
def _debug_logs() -> Iterator[None]:
    from hbench.logging import configure

    configure("json", "debug")
    yield
    configure("json", "warning")


class Scripted(Probe):
    """Returns the readings in ``script`` one after another (the last one repeats)."""

    name: ClassVar[str] = "scripted"
    priority: ClassVar[int] = 50

    def __init__(self, script: list[dict[str, Any]] | None = None):
        self.script = list(script or [{"gpu_util": 1.0}])
        self.calls = 0
        self.closed = False

    def sample(self) -> dict[str, Any]:
        r = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return dict(r)

    def close(self) -> None:
        self.closed = True


class Hanging(Probe):
    name: ClassVar[str] = "hanging"

    def __init__(self, hang_in: str = "sample"):
        self.hang_in = hang_in
        self.release = threading.Event()
        self.entered = 0

    def available(self) -> tuple[bool, str]:
        if self.hang_in == "available":
            self.release.wait(30)
        return True, "ok"

    def sample(self) -> dict[str, Any]:
        self.entered += 1
        self.release.wait(30)
        return {"gpu_util": 99.0}


class Failing(Probe):
    name: ClassVar[str] = "failing"

    def __init__(self, fail_times: int = 10**9):
        self.fail_times = fail_times
        self.calls = 0

    def sample(self) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise OSError("sensor unplugged")
        return {"power_w": 50.0}


# --------------------------------------------------------------------------- pure parts


def test_summary_over_a_known_series():
    series = [
        {"gpu_util": 10.0, "unified_used_gb": 30.0, "cpu_percent": 20.0, "rss_gb": 5.0},
        {"gpu_util": 50.0, "unified_used_gb": 98.5, "gpu_temp_c": 71.0, "power_w": 180.0},
        {"unified_used_gb": 40.0, "cpu_percent": 40.0, "gpu_temp_c": 64.0},
        {"gpu_util": 0.0},  # a real idle reading is 0, and counts
    ]
    tel = summarise(series, {"nvml": "ok"})
    assert tel.n_samples == 4
    assert tel.gpu_util_mean == 20.0 and tel.gpu_util_max == 50.0
    assert tel.unified_used_gb_max == 98.5 and tel.gpu_temp_c_max == 71.0
    assert tel.power_w_max == 180.0 and tel.rss_gb_max == 5.0 and tel.cpu_percent_mean == 30.0
    assert tel.gpu_mem_used_gb_max is None
    assert tel.probes == {"nvml": "ok"}


def test_summary_of_unknowns_is_none_never_zero():
    tel = summarise([{"cpu_percent": 3.0}, {"gpu_util": None, "gpu_temp_c": float("nan"), "power_w": True}])
    assert tel.n_samples == 2
    assert tel.gpu_util_mean is None and tel.gpu_util_max is None and tel.gpu_temp_c_max is None
    assert tel.unified_used_gb_max is None and tel.power_w_max is None
    assert summarise([]) == Telemetry()


def test_the_probes_class_says_which_probes_explain_the_memory_source():
    """No probe name in core: a probe class with memory_source = "gpu" is a GPU probe, and
    its status is why the memory source fell back to meminfo; other probes' are not."""

    class MyGpu(Probe):
        name = "my-gpu"
        memory_source = "gpu"

        def available(self):
            return False, "no such accelerator here"

    class Ram(Probe):
        name = "ram"

        def sample(self):
            return {"unified_used_gb": 3.0}

    class Quiet(Probe):
        name = "quiet"

        def available(self):
            return False, "not this time"

    s = Sampler([MyGpu, Ram, Quiet], hz=50).open("lane")
    s.sample_once()
    assert s.gpu_probes() == {"my-gpu"}
    tel = s.stop()
    assert tel.memory_source == {"source": "meminfo (system RAM)",
                                 "why": "no GPU memory reading (my-gpu: no such accelerator here)"}
    from hbench.plugins.probes.nvidia_smi import NvidiaSmiProbe
    from hbench.plugins.probes.nvml import NvmlProbe

    assert NvmlProbe.memory_source == NvidiaSmiProbe.memory_source == "gpu" and Probe.memory_source is None


def test_throttle_summary_counts_only_samples_that_read_the_reasons():
    series = [
        {"cpu_percent": 3.0},  # before the GPU probe answered: not counted either way
        {"throttle_reasons": [], "throttle_source": "nvml"},
        {"throttle_reasons": ["sw_power_cap"], "throttle_source": "nvml"},
        {"throttle_reasons": ["sw_power_cap", "hw_thermal_slowdown"], "throttle_source": "nvml"},
        {"throttle_reasons": "garbage"},
        {"throttle_reasons": [], "throttle_source": "nvml"},
    ]
    tel = summarise(series)
    assert tel.throttle == {"share": 0.5, "reasons": {"hw_thermal_slowdown": 0.25, "sw_power_cap": 0.5},
                            "source": "nvml", "n_samples": 4}
    assert summarise([{"cpu_percent": 1.0}]).throttle == {}  # no reading: unknown, never "not throttled"
    assert summarise([{"throttle_reasons": []}]).throttle == {"share": 0.0, "reasons": {}, "source": "unknown",
                                                              "n_samples": 1}


readings = st.one_of(st.none(), st.floats(0, 1e4, allow_nan=False), st.integers(0, 500))
rows = st.fixed_dictionaries({}, optional={k: readings for k in
                                          ("gpu_util", "unified_used_gb", "gpu_temp_c", "power_w", "rss_gb",
                                           "cpu_percent", "gpu_mem_used_gb")})


@given(st.lists(rows, max_size=40))
def test_summary_matches_its_definition(series):
    tel = summarise(series)
    assert tel.n_samples == len(series)

    def vals(k: str) -> list[float]:
        return [float(r[k]) for r in series if r.get(k) is not None]

    for key, field, fn in [("gpu_util", "gpu_util_max", max), ("gpu_temp_c", "gpu_temp_c_max", max),
                           ("unified_used_gb", "unified_used_gb_max", max), ("power_w", "power_w_max", max),
                           ("rss_gb", "rss_gb_max", max), ("gpu_mem_used_gb", "gpu_mem_used_gb_max", max),
                           ("gpu_util", "gpu_util_mean", lambda v: sum(v) / len(v)),
                           ("cpu_percent", "cpu_percent_mean", lambda v: sum(v) / len(v))]:
        v = vals(key)
        got = getattr(tel, field)
        if not v:
            assert got is None
        else:
            assert got == pytest.approx(fn(v), abs=1e-3)


@given(st.lists(st.integers(), max_size=300), st.integers(1, 50))
def test_thin_keeps_at_most_max_evenly_with_first_and_last(values, max_len):
    series = [{"t": i, "v": v} for i, v in enumerate(values)]
    out = thin(series, max_len)
    assert len(out) <= max_len
    assert [r["t"] for r in out] == sorted({r["t"] for r in out})  # in order, no repeats
    if series:
        assert out[-1] is series[-1]
        if max_len > 1:
            assert out[0] is series[0]
    if len(series) <= max_len:
        assert out == series


def test_merge_prefers_the_lower_priority_number_and_skips_none():
    merged = merge_readings([(40, {"unified_used_gb": 3.0, "gpu_util": 5.0}), (10, {"gpu_util": None}),
                             (20, {"gpu_util": 70.0})])
    assert merged == {"gpu_util": 70.0, "unified_used_gb": 3.0}


def test_a_bad_rate_is_refused():
    with pytest.raises(ValueError, match="--sample-hz"):
        Sampler([], hz=0)


# --------------------------------------------------------------------------- the thread


def test_series_is_tagged_with_the_lane_and_the_attempts_in_flight():
    probe = Scripted([{"gpu_util": 10.0}, {"gpu_util": 30.0}, {"gpu_util": 20.0, "unified_used_gb": 7.5}])
    s = Sampler([probe], hz=50).open("lane-a")
    first = s.sample_once()
    s.attempt_started("p1#1")
    s.attempt_started("p2#1")
    second = s.sample_once()
    s.attempt_finished("p1#1")
    s.attempt_started("p3#1")
    s.attempt_finished("p3#1")  # began and ended between two samples: still tagged
    third = s.sample_once()
    fourth = s.sample_once()
    s.attempt_finished("p2#1")
    fifth = s.sample_once()
    sixth = s.sample_once()
    tel = s.stop()
    assert [r["attempts"] for r in (first, second, third, fourth, fifth, sixth)] == [
        [], ["p1#1", "p2#1"], ["p1#1", "p2#1", "p3#1"], ["p2#1"], ["p2#1"], []]
    assert all(r["lane"] == "lane-a" for r in tel.series)
    assert tel.n_samples == 6 and tel.gpu_util_max == 30.0 and tel.unified_used_gb_max == 7.5
    assert tel.gpu_util_mean == pytest.approx((10 + 30 + 20 * 4) / 6, abs=1e-3)
    assert probe.closed
    json.dumps(attrs.asdict(tel))  # the scorecard can carry it


def test_background_thread_samples_at_the_requested_rate():
    s = Sampler([Scripted()], hz=20).start("lane-r")
    s.attempt_started("a#1")
    time.sleep(1.0)
    s.attempt_finished("a#1")
    tel = s.stop()
    assert 12 <= tel.n_samples <= 23  # 20 Hz for 1 s (+ the one at start), loose for a busy 2-core box
    ts = [r["t"] for r in tel.series]
    assert ts == sorted(ts)
    assert any(r["attempts"] == ["a#1"] for r in tel.series)


def test_concurrent_attempt_bookkeeping_is_thread_safe():
    s = Sampler([Scripted()], hz=200).start("lane-c")

    def worker(i: int) -> None:
        for j in range(200):
            label = f"p{i}#{j}"
            s.attempt_started(label)
            s.attempt_finished(label)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.05)
    s.sample_once()
    tel = s.stop()
    assert tel.series[-1]["attempts"] == []  # nothing is left in flight
    assert s._in_flight == {}


def test_a_hanging_probe_is_abandoned_and_the_others_carry_on():
    hang = Hanging()
    good = Scripted([{"unified_used_gb": 1.0}])
    with capture_logs() as logs:
        s = Sampler([hang, good], hz=10, probe_timeout_s=0.2).start("lane-h")
        time.sleep(1.2)
        t0 = time.monotonic()
        tel = s.stop()
        stop_s = time.monotonic() - t0
    hang.release.set()
    assert tel.probes["hanging"].startswith("hung: sample() took longer than 0.2 s")
    assert tel.probes["scripted"] == "ok"
    assert hang.entered == 1  # never called again once abandoned
    assert tel.n_samples >= 7 and all(r["unified_used_gb"] == 1.0 for r in tel.series)
    assert stop_s < 1.0
    assert [e["event"] for e in logs if e.get("probe") == "hanging"] == ["probe.hung"]


def test_a_hanging_available_is_bounded_too():
    hang = Hanging(hang_in="available")
    t0 = time.monotonic()
    s = Sampler([hang, Scripted()], hz=10, available_timeout_s=0.3).open("lane-h2")
    assert time.monotonic() - t0 < 1.5
    r = s.sample_once()
    s.stop()
    hang.release.set()
    assert "did not answer within 0.3 s" in s.statuses()["hanging"]
    assert r["gpu_util"] == 1.0


def test_a_failing_probe_is_logged_once_disabled_and_never_fatal():
    bad, good = Failing(), Scripted([{"gpu_util": 5.0}])
    with capture_logs() as logs:
        s = Sampler([bad, good], hz=50, max_failures=3).open("lane-f")
        rows = [s.sample_once() for _ in range(6)]
        tel = s.stop()
    assert bad.calls == 3
    assert "failed 3 times in a row" in tel.probes["failing"] and "sensor unplugged" in tel.probes["failing"]
    assert all(r["gpu_util"] == 5.0 for r in rows)
    assert [e["event"] for e in logs if e.get("probe") == "failing"] == ["probe.failed", "probe.disabled"]


def test_a_probe_that_recovers_stays_on():
    flaky = Failing(fail_times=2)
    s = Sampler([flaky], hz=50, max_failures=3).open("lane-g")
    rows = [s.sample_once() for _ in range(4)]
    s.stop()
    assert s.statuses()["failing"] == "ok"
    assert [r.get("power_w") for r in rows] == [None, None, 50.0, 50.0]


def test_unavailable_and_broken_probes_are_reported_not_raised():
    class Unavail(Probe):
        name: ClassVar[str] = "unavail"

        def available(self) -> tuple[bool, str]:
            return False, "no such sensor here"

        def sample(self) -> dict[str, Any]:
            raise AssertionError("an unavailable probe is never sampled")

    class Broken(Probe):
        name: ClassVar[str] = "broken"

        def __init__(self) -> None:
            raise RuntimeError("bad constructor")

    class RaisesInAvailable(Probe):
        name: ClassVar[str] = "raises"

        def available(self) -> tuple[bool, str]:
            raise KeyError("boom")

    s = Sampler([Unavail, Broken, RaisesInAvailable, Scripted], hz=50).open("lane-u")
    s.sample_once()
    tel = s.stop()
    assert tel.probes == {"unavail": "no such sensor here", "broken": "failed to start: RuntimeError: bad constructor",
                          "raises": "unavailable: available() raised KeyError: 'boom'", "scripted": "ok"}


def test_the_sampler_can_run_again_for_the_next_lane():
    s = Sampler([Scripted], hz=50)
    s.start("one")
    time.sleep(0.1)
    a = s.stop()
    s.start("two")
    time.sleep(0.1)
    b = s.stop()
    assert {r["lane"] for r in a.series} == {"one"} and {r["lane"] for r in b.series} == {"two"}
    with pytest.raises(RuntimeError, match="already running"):
        s.start("three")
        s.start("three")
    s.stop()


def test_the_series_is_thinned_but_the_summary_is_over_every_sample():
    script = [{"gpu_util": float(i)} for i in range(100)]
    s = Sampler([Scripted(script)], hz=50, max_series=10).open("lane-t")
    for _ in range(100):
        s.sample_once()
    tel = s.stop()
    assert tel.n_samples == 100 and len(tel.series) <= 10
    assert tel.gpu_util_max == 99.0 and tel.gpu_util_mean == pytest.approx(49.5)
    assert tel.series[-1]["gpu_util"] == 99.0


# --------------------------------------------------------------------------- real probes


def _builtin_probe_classes() -> list[type]:
    from hbench.plugins.probes import hbench_register_probes

    got: list[type] = []
    hbench_register_probes(register=lambda cls, name=None: got.append(cls))
    return got


def test_real_probes_end_to_end_on_this_machine(monkeypatch):
    monkeypatch.delenv("HBENCH_METRICS_URL", raising=False)
    server = subprocess.Popen([sys.executable, "-c", "b = bytearray(48 * 2**20); import time; time.sleep(30)"])
    try:
        time.sleep(0.3)
        s = Sampler(_builtin_probe_classes(), hz=10).start("embedded", pid=server.pid)
        s.attempt_started("p#1")
        time.sleep(0.8)
        s.attempt_finished("p#1")
        tel = s.stop()
    finally:
        server.kill()
        server.wait()
    assert tel.probes["meminfo"] == "ok" and tel.probes["host"] == "ok"
    assert tel.n_samples >= 4
    assert tel.unified_used_gb_max > 0 and tel.rss_gb_max > 40 * 2**20 / 2**30
    assert tel.cpu_percent_mean is not None and 0 <= tel.cpu_percent_mean <= 100
    if not os.path.exists("/dev/nvidiactl"):  # this CI box: no GPU, and the reason is given
        assert "driver" in tel.probes["nvml"] or "not installed" in tel.probes["nvml"]
        assert tel.gpu_util_mean is None and tel.gpu_temp_c_max is None
    assert "metrics_url" in tel.probes["prometheus"]


# --------------------------------------------------------------------------- hbench probe


def _hbench(*args: str) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(sys.executable), "hbench")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)


def test_hbench_probe_json_prints_real_readings_and_why_nvml_is_not_there():
    out = _hbench("probe", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data["probes"]) >= {"nvml", "nvidia-smi", "meminfo", "host", "prometheus"}
    assert data["probes"]["meminfo"]["status"] == "ok"
    assert data["readings"]["unified_used_gb"] > 0 and 0 <= data["readings"]["cpu_percent"] <= 100
    if not os.path.exists("/dev/nvidiactl"):
        assert data["probes"]["nvml"]["status"] != "ok" and data["probes"]["nvml"]["readings"] is None


def test_hbench_probe_watch_and_bad_input():
    out = _hbench("probe", "--watch", "--json", "--count", "3", "--hz", "10", "--pid", str(os.getpid()))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 3 and all(line["readings"]["rss_gb"] > 0 for line in lines)
    bad = _hbench("probe", "--pid", "4194000")
    assert bad.returncode == 2 and "no such process" in bad.stderr and "Traceback" not in bad.stderr
    bad = _hbench("probe", "--hz", "0", "--watch")
    assert bad.returncode == 2 and "--hz" in bad.stderr


def test_hbench_probe_text_output_names_each_probe():
    out = _hbench("probe")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("meminfo") and line.split()[-1] == "ok" for line in lines)
    assert any(line.startswith("nvml") for line in lines)
    assert "unified_used_gb=" in out.stdout


# --------------------------------------------------------------------------- remote lanes


class LocalThing(Scripted):
    name: ClassVar[str] = "local-thing"


class RemoteThing(Scripted):
    name: ClassVar[str] = "remote-thing"
    local: ClassVar[bool] = False


@pytest.mark.parametrize("base_url, remote", [
    ("http://127.0.0.1:8080/v1", None),
    ("http://localhost:8000/v1", None),
    ("http://[::1]:8000/v1", None),
    ("http://0.0.0.0:8000/v1", None),
    ("http://192.0.2.7:8000/v1", "192.0.2.7"),  # TEST-NET-1: never this machine
    ("http://no-such-host.invalid:8000/v1", None),  # unresolvable: measure here rather than lose it
])
def test_remote_host(base_url, remote):
    from hbench.models import LaneSpec
    from hbench.probes import remote_host

    assert remote_host(LaneSpec(name="x", base_url=base_url)) == remote


def test_this_machines_own_address_is_local():
    import psutil

    from hbench.models import LaneSpec
    from hbench.probes import remote_host

    addrs = [a.address for nics in psutil.net_if_addrs().values() for a in nics
             if a.family.name == "AF_INET" and not a.address.startswith("127.")]
    if not addrs:
        pytest.skip("no non-loopback IPv4 address on this machine")
    assert remote_host(LaneSpec(name="x", base_url=f"http://{addrs[0]}:8000/v1")) is None


def test_a_remote_lane_skips_the_probes_that_measure_this_machine():
    from hbench.models import LaneSpec

    lane = LaneSpec(name="far", base_url="http://192.0.2.7:8000/v1")
    s = Sampler([LocalThing, RemoteThing], hz=50).open("far", lane=lane)
    s.sample_once()
    tel = s.stop()
    assert tel.probes["remote-thing"] == "ok"
    assert tel.probes["local-thing"].startswith("skipped: lane 'far' runs on 192.0.2.7, not on this machine")
    # with a server pid the lane is local whatever its URL says
    s = Sampler([LocalThing], hz=50).open("near", pid=os.getpid(), lane=lane)
    assert s.statuses() == {"local-thing": "ok"}
    s.stop()


def test_a_server_in_a_local_container_network_is_local(monkeypatch):
    import socket
    from collections import namedtuple

    import psutil

    from hbench.models import LaneSpec
    from hbench.probes import remote_host

    Addr = namedtuple("Addr", "family address netmask broadcast ptp")
    real = psutil.net_if_addrs()
    fake = {**real, "docker0": [Addr(socket.AF_INET, "172.17.0.1", "255.255.0.0", None, None)]}
    monkeypatch.setattr(psutil, "net_if_addrs", lambda: fake)
    assert remote_host(LaneSpec(name="nim", base_url="http://172.17.0.2:8000/v1")) is None
    assert remote_host(LaneSpec(name="far", base_url="http://172.18.0.2:8000/v1")) == "172.18.0.2"
