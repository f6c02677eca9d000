"""The built-in telemetry probes: real /proc and psutil, NVML through an injected fake
``pynvml`` module, a fake ``nvidia-smi`` on PATH, and a loopback HTTP server serving
DCGM-exporter / vLLM / llama.cpp metrics text."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path
from typing import Any, Iterator

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from hbench.models import LaneSpec
from hbench.probes import GIB
from hbench.plugins.probes.host import HostProbe
from hbench.plugins.probes.meminfo import MeminfoProbe, parse_meminfo, used_bytes
from hbench.plugins.probes.nvidia_smi import NvidiaSmiProbe, parse_field
from hbench.plugins.probes.nvml import NvmlProbe
from hbench.plugins.probes.prometheus import PrometheusProbe, map_metrics
from hbench.sampler import Sampler

# --------------------------------------------------------------------------- registration


def test_the_five_builtin_probes_register_as_probe_classes():
    from hbench.plugins.probes import hbench_register_probes
    from hbench.probes import Probe

    got: dict[str, Any] = {}
    hbench_register_probes(register=lambda cls, name=None: got.setdefault(name or cls.name, cls))
    assert set(got) == {"nvml", "nvidia-smi", "meminfo", "host", "prometheus"}
    assert all(isinstance(c, type) and issubclass(c, Probe) for c in got.values())


def test_importing_the_probes_does_not_import_pynvml():
    code = "import sys, hbench.plugins.probes.nvml, hbench.plugins.probes; print('pynvml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --------------------------------------------------------------------------- meminfo


def test_meminfo_reads_real_proc_meminfo():
    probe = MeminfoProbe()
    assert probe.available() == (True, "ok")
    r = probe.sample()
    vm = psutil.virtual_memory()
    assert r["mem_total_gb"] == pytest.approx(vm.total / GIB, rel=1e-6)
    assert 0 < r["unified_used_gb"] < r["mem_total_gb"]
    # psutil's own total - available, read a moment apart: same figure within 0.5 GiB
    assert r["unified_used_gb"] == pytest.approx((vm.total - vm.available) / GIB, abs=0.5)


def test_meminfo_without_memavailable_uses_free_buffers_cached(tmp_path):
    f = tmp_path / "meminfo"
    f.write_text("MemTotal:       1048576 kB\nMemFree:         262144 kB\nBuffers:  0 kB\nCached:  262144 kB\n")
    probe = MeminfoProbe(str(f))
    assert probe.available()[0]
    assert probe.sample()["unified_used_gb"] == pytest.approx(0.5)


def test_meminfo_unreadable_or_missing_says_why(tmp_path):
    missing = MeminfoProbe(str(tmp_path / "nope"))
    ok, why = missing.available()
    assert not ok and "does not exist" in why and "nope" in why
    f = tmp_path / "meminfo"
    f.write_text("garbage\nMemFree: 5 kB\n")
    ok, why = MeminfoProbe(str(f)).available()
    assert not ok and "MemTotal" in why


@given(total=st.integers(1, 2**40), avail=st.integers(0, 2**41), junk=st.lists(st.text(max_size=20), max_size=5))
def test_used_memory_is_never_negative_nor_above_total(total, avail, junk):
    text = "\n".join([*junk, f"MemTotal: {total} kB", f"MemAvailable: {avail} kB"])
    fields = parse_meminfo(text)
    got = used_bytes(fields)
    assert got is not None
    t, used = got
    assert t == total * 1024
    assert 0 <= used <= t
    assert used == max(0, (total - avail) * 1024)


# --------------------------------------------------------------------------- host (psutil)

TREE = textwrap.dedent("""
    import subprocess, sys, time
    kid = subprocess.Popen([sys.executable, "-c",
        "import time; b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('up', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    kid.stdout.readline()
    print(kid.pid, flush=True)
    if len(sys.argv) > 1:
        end = time.monotonic() + float(sys.argv[1])
        while time.monotonic() < end:
            pass
    time.sleep(60)
""")


@pytest.fixture
def proc_tree() -> Iterator[Any]:
    procs: list[subprocess.Popen] = []

    def spawn(busy_s: float | None = None) -> tuple[subprocess.Popen, int]:
        args = [sys.executable, "-c", TREE] + ([str(busy_s)] if busy_s else [])
        p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        procs.append(p)
        kid = int(p.stdout.readline())
        return p, kid

    yield spawn
    for p in procs:
        for c in psutil.Process(p.pid).children(recursive=True) if p.poll() is None else []:
            c.kill()
        p.kill()
        p.wait()


def test_host_reports_cpu_and_the_process_tree_rss(proc_tree):
    root, kid = proc_tree()
    probe = HostProbe()
    probe.set_target(pid=root.pid)
    assert probe.available() == (True, "ok")
    time.sleep(0.2)
    r = probe.sample()
    assert 0.0 <= r["cpu_percent"] <= 100.0
    assert r["lane_procs"] == 2
    expect = sum(psutil.Process(p).memory_info().rss for p in (root.pid, kid)) / GIB
    assert r["rss_gb"] == pytest.approx(expect, rel=0.2)
    assert r["rss_gb"] > 64 * 2**20 / GIB  # the child's 64 MiB are counted


def test_host_caches_process_objects_and_measures_tree_cpu(proc_tree):
    root, kid = proc_tree(busy_s=3.0)
    probe = HostProbe()
    probe.set_target(pid=root.pid)
    probe.available()
    probe.sample()  # the child is new here: its first cpu_percent is not reported
    cached = dict(probe._procs)
    time.sleep(0.5)
    r = probe.sample()
    assert probe._procs[kid] is cached[kid] and probe._procs[root.pid] is cached[root.pid]
    assert r["lane_cpu_percent"] > 20  # the root spins a core (2-core box shared with others)


def test_host_handles_children_that_vanish_and_a_root_that_dies(proc_tree):
    root, kid = proc_tree()
    probe = HostProbe()
    probe.set_target(pid=root.pid)
    probe.available()
    assert probe.sample()["lane_procs"] == 2
    k = psutil.Process(kid)
    k.kill()  # its parent never reaps it: a zombie, then gone
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and k.is_running() and k.status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.02)
    r = probe.sample()
    assert r["lane_procs"] == 1 and r["rss_gb"] > 0
    root.kill()
    root.wait()
    r = probe.sample()
    assert "rss_gb" not in r and "cpu_percent" in r  # the lane is gone; the machine is still measured


def test_host_picks_up_new_children_at_the_next_rescan(monkeypatch):
    monkeypatch.setattr(HostProbe, "rescan_s", 0.3)
    probe = HostProbe()
    probe.set_target(pid=os.getpid())
    probe.available()
    before = probe.sample()["lane_procs"]
    kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert probe.sample()["lane_procs"] == before  # cached tree: no /proc scan this time
        time.sleep(0.35)
        assert probe.sample()["lane_procs"] == before + 1
        assert kid.pid in probe._procs
    finally:
        kid.kill()
        kid.wait()
    time.sleep(0.35)
    assert probe.sample()["lane_procs"] == before


def test_host_with_a_pid_that_does_not_exist_reports_cpu_only():
    probe = HostProbe()
    probe.set_target(pid=2**22 + 12345)
    assert probe.available()[0]
    r = probe.sample()
    assert set(r) == {"cpu_percent"}


# --------------------------------------------------------------------------- NVML (fake pynvml)


class FakeNVML:
    """A stand-in for the ``pynvml`` module, driven by per-GPU settings."""

    def __init__(self, gpus: list[dict[str, Any]], init_error: str | None = None,
                 reasons_fn: str | None = "nvmlDeviceGetCurrentClocksEventReasons"):
        self.gpus = gpus
        self.init_error = init_error
        self.reasons_fn = reasons_fn
        self.calls: dict[str, int] = {}
        self.shutdown = 0
        self.module = self._build()

    def _build(self) -> types.ModuleType:
        m = types.ModuleType("pynvml")

        class NVMLError(Exception):
            pass

        m.NVMLError = NVMLError
        for n in ("LibraryNotFound", "DriverNotLoaded", "NotSupported", "NoPermission", "GpuIsLost",
                  "Unknown", "FunctionNotFound"):
            setattr(m, f"NVMLError_{n}", type(f"NVMLError_{n}", (NVMLError,), {}))
        m.NVML_TEMPERATURE_GPU = 0
        fake = self

        def count(name: str) -> None:
            fake.calls[name] = fake.calls.get(name, 0) + 1

        def metric(name: str, h: int) -> Any:
            count(f"{name}:{h}")
            v = fake.gpus[h][name]
            if isinstance(v, str):
                raise getattr(m, f"NVMLError_{v}")(v)
            return v

        def init() -> None:
            if fake.init_error:
                raise getattr(m, f"NVMLError_{fake.init_error}")(fake.init_error)

        m.nvmlInit = init
        m.nvmlShutdown = lambda: setattr(fake, "shutdown", fake.shutdown + 1)
        m.nvmlDeviceGetCount = lambda: len(fake.gpus)
        m.nvmlDeviceGetHandleByIndex = lambda i: i
        m.nvmlDeviceGetName = lambda h: fake.gpus[h].get("name", "NVIDIA Fake").encode()
        m.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=metric("util", h))
        m.nvmlDeviceGetTemperature = lambda h, sensor: metric("temp", h)
        m.nvmlDeviceGetPowerUsage = lambda h: metric("power_mw", h)

        def meminfo(h: int) -> Any:
            used, total = metric("mem", h)
            return types.SimpleNamespace(used=used, total=total, free=total - used)

        m.nvmlDeviceGetMemoryInfo = meminfo
        m.nvmlDeviceGetComputeRunningProcesses = lambda h: [
            types.SimpleNamespace(pid=pid, usedGpuMemory=b) for pid, b in metric("procs", h)]
        if fake.reasons_fn:  # the clock-event (throttle) reasons bitmask, under the name this fake has
            setattr(m, fake.reasons_fn, lambda h: metric("throttle", h))
        return m


def gpu(**kw: Any) -> dict[str, Any]:
    base = {"util": 40, "temp": 65, "power_mw": 250_000, "mem": (10 * 2**30, 80 * 2**30), "procs": [],
            "throttle": 0x1}  # GpuIdle: not throttling
    base.update(kw)
    return base


@pytest.fixture(autouse=True)
def _debug_logs() -> Iterator[None]:
    """Log at debug level so capture_logs sees info events (probe.unavailable)."""
    from hbench.logging import configure

    configure("json", "debug")
    yield
    configure("json", "warning")


@pytest.fixture
def fake_nvml(monkeypatch):
    def install(gpus: list[dict[str, Any]], init_error: str | None = None, **kw: Any) -> FakeNVML:
        fake = FakeNVML(gpus, init_error, **kw)
        monkeypatch.setitem(sys.modules, "pynvml", fake.module)
        return fake

    return install


def test_nvml_library_not_found_is_unavailable_with_a_reason_said_once(fake_nvml):
    fake_nvml([gpu()], init_error="LibraryNotFound")
    with capture_logs() as logs:
        s = Sampler([NvmlProbe, MeminfoProbe], hz=50).start("lane-a")
        time.sleep(0.15)
        tel = s.stop()
    assert "not found" in tel.probes["nvml"] and "driver" in tel.probes["nvml"]
    assert tel.probes["meminfo"] == "ok"
    assert [e["event"] for e in logs if e.get("probe") == "nvml"] == ["probe.unavailable"]
    assert tel.n_samples >= 3 and tel.gpu_util_max is None and tel.gpu_temp_c_max is None


def test_nvml_missing_python_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    ok, why = NvmlProbe().available()
    assert not ok and "pip install nvidia-ml-py" in why


def test_nvml_discrete_gpu_reports_every_metric(fake_nvml):
    fake = fake_nvml([gpu(), gpu(util=90, temp=71, power_mw=300_000, mem=(20 * 2**30, 80 * 2**30))])
    p = NvmlProbe()
    assert p.available() == (True, "ok")
    r = p.sample()
    assert r["gpu_util"] == 90 and r["gpu_temp_c"] == 71  # the busiest / hottest GPU
    assert r["power_w"] == pytest.approx(550.0)  # mW -> W, summed over the GPUs
    assert r["gpu_mem_used_gb"] == pytest.approx(30.0) and r["gpu_mem_total_gb"] == pytest.approx(160.0)
    assert r["unified_memory"] is False and r["gpu_count"] == 2
    p.close()
    assert fake.shutdown == 1


def test_nvml_memory_not_supported_means_unified_memory_from_meminfo(fake_nvml):
    fake = fake_nvml([gpu(mem="NotSupported")])
    s = Sampler([NvmlProbe, MeminfoProbe], hz=50).open("spark")
    rows = [s.sample_once() for _ in range(3)]
    tel = s.stop()
    assert all(r["unified_memory"] is True for r in rows)
    assert all("gpu_mem_used_gb" not in r and r["unified_used_gb"] > 0 for r in rows)
    assert fake.calls["mem:0"] == 1  # asked once, at start: never polled
    assert tel.unified_used_gb_max > 0 and tel.gpu_util_max == 40 and tel.gpu_mem_used_gb_max is None


def test_nvml_memory_total_equal_to_system_ram_means_unified(fake_nvml):
    ram = psutil.virtual_memory().total
    fake = fake_nvml([gpu(mem=(int(ram * 0.6), int(ram * 0.99)))])
    p = NvmlProbe()
    assert p.available()[0]
    assert p.gpus[0]["unified_memory"] is True and "system RAM" in p.gpus[0]["why"]
    r = p.sample()
    p.sample()
    assert r["unified_memory"] is True and "gpu_mem_used_gb" not in {k for k, v in r.items() if v is not None}
    assert fake.calls["mem:0"] == 1


def test_nvml_metric_not_supported_is_none_and_no_longer_polled(fake_nvml):
    fake = fake_nvml([gpu(power_mw="NotSupported", temp="NoPermission")])
    p = NvmlProbe()
    p.available()
    with capture_logs() as logs:
        rows = [p.sample() for _ in range(4)]
    assert all(r["power_w"] is None and r["gpu_temp_c"] is None and r["gpu_util"] == 40 for r in rows)
    assert fake.calls["power_mw:0"] == 1 and fake.calls["temp:0"] == 1 and fake.calls["util:0"] == 4
    unsupported = [e["metric"] for e in logs if e["event"] == "probe.metric_unsupported"]
    assert sorted(unsupported) == ["power", "temp"]


def test_nvml_transient_error_is_unknown_for_one_sample_only(fake_nvml):
    fake = fake_nvml([gpu(util="Unknown")])
    p = NvmlProbe()
    p.available()
    assert p.sample()["gpu_util"] is None
    fake.gpus[0]["util"] = 55
    assert p.sample()["gpu_util"] == 55


def test_nvml_gpu_lost_mid_run_is_logged_once_and_the_probe_skipped(fake_nvml):
    fake = fake_nvml([gpu(util=70)])
    with capture_logs() as logs:
        s = Sampler([NvmlProbe, MeminfoProbe], hz=50).open("lane-b")
        first = s.sample_once()
        fake.gpus[0]["util"] = "GpuIsLost"
        rest = [s.sample_once() for _ in range(4)]
        tel = s.stop()
    assert first["gpu_util"] == 70
    assert all("gpu_util" not in r and r["unified_used_gb"] > 0 for r in rest)  # meminfo carries on
    assert fake.calls["util:0"] == 2  # never asked again after the loss
    assert tel.probes["nvml"].startswith("gone:") and "lost" in tel.probes["nvml"]
    assert [e["event"] for e in logs if e.get("probe") == "nvml"] == ["probe.gpu_lost", "probe.gone"]
    assert tel.gpu_util_max == 70 and tel.n_samples == 5


def test_nvml_one_of_two_gpus_lost_keeps_the_other(fake_nvml):
    fake = fake_nvml([gpu(util=10), gpu(util=80)])
    p = NvmlProbe()
    p.available()
    fake.gpus[1]["util"] = "GpuIsLost"
    r = p.sample()
    assert r["gpu_count"] == 1 and r["gpu_util"] == 10
    assert p.sample()["gpu_util"] == 10
    assert fake.calls["util:1"] == 1


def test_nvml_lane_process_tree_gpu_memory(fake_nvml, proc_tree):
    root, kid = proc_tree()
    fake_nvml([gpu(procs=[(kid, 3 * 2**30), (root.pid, 2**30), (1, 7 * 2**30), (kid + 10**6, None)])])
    p = NvmlProbe()
    p.set_target(pid=root.pid)
    p.available()
    assert p.sample()["lane_gpu_mem_gb"] == pytest.approx(4.0)  # pid 1 is not the lane's


# --------------------------------------------------------------------------- NVML: throttling


def test_nvml_names_the_thermal_and_power_throttle_reasons_not_idle_or_clock_settings():
    from hbench.plugins.probes.nvml import throttle_reasons

    assert throttle_reasons(0) == [] and throttle_reasons(0x1) == []  # none; GpuIdle is not throttling
    assert throttle_reasons(0x2 | 0x10 | 0x100) == []  # application clocks, sync boost, display clocks
    assert throttle_reasons(0x1 | 0x4) == ["sw_power_cap"]
    assert throttle_reasons(0x8 | 0x20 | 0x40 | 0x80) == [
        "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"]


def test_nvml_throttle_share_and_reasons_over_the_run(fake_nvml):
    fake = fake_nvml([gpu(), gpu()])
    s = Sampler([NvmlProbe], hz=50).open("hot")
    rows = [s.sample_once()]  # both idle
    fake.gpus[1]["throttle"] = 0x4  # GPU 1 at its power cap
    rows += [s.sample_once() for _ in range(2)]
    fake.gpus[0]["throttle"] = 0x40 | 0x20  # GPU 0 too hot as well
    rows.append(s.sample_once())
    tel = s.stop()
    assert [r["throttle_reasons"] for r in rows] == [
        [], ["sw_power_cap"], ["sw_power_cap"], ["hw_thermal_slowdown", "sw_power_cap", "sw_thermal_slowdown"]]
    assert tel.throttle == {"share": 0.75, "reasons": {"hw_thermal_slowdown": 0.25, "sw_power_cap": 0.75,
                                                       "sw_thermal_slowdown": 0.25},
                            "source": "nvml", "n_samples": 4}
    assert tel.probes == {"nvml": "ok"}


def test_nvml_never_throttled_is_a_zero_share_not_unknown(fake_nvml):
    fake_nvml([gpu(throttle=0x1 | 0x2)])
    s = Sampler([NvmlProbe], hz=50).open("cool")
    for _ in range(3):
        s.sample_once()
    assert s.stop().throttle == {"share": 0.0, "reasons": {}, "source": "nvml", "n_samples": 3}


def test_nvml_older_package_reads_the_throttle_reasons_name(fake_nvml):
    fake = fake_nvml([gpu(throttle=0x8)], reasons_fn="nvmlDeviceGetCurrentClocksThrottleReasons")
    p = NvmlProbe()
    assert p.available()[0]
    assert p.sample()["throttle_reasons"] == ["hw_slowdown"] and fake.calls["throttle:0"] == 1
    assert p.unmeasured() == {}


def test_nvml_package_without_either_reasons_function_says_so(fake_nvml):
    fake_nvml([gpu()], reasons_fn=None)
    s = Sampler([NvmlProbe, MeminfoProbe], hz=50).open("old")
    r = s.sample_once()
    tel = s.stop()
    assert "throttle_reasons" not in r and r["gpu_util"] == 40
    assert tel.throttle == {} and tel.probes["nvml"] == "ok"
    assert "neither nvmlDeviceGetCurrentClocksEventReasons nor" in tel.probes["nvml.throttle"]


def test_nvml_throttle_not_supported_gb10_is_unknown_with_the_reason(fake_nvml):
    """GB10: NVML answers NotSupported for the reasons (and for memory): the throttle figure is
    unknown ({}), never 'not throttled', and telemetry.probes says why; asked once only."""
    fake = fake_nvml([gpu(mem="NotSupported", throttle="NotSupported", name="NVIDIA GB10")])
    with capture_logs() as logs:
        s = Sampler([NvmlProbe, MeminfoProbe], hz=50).open("spark")
        rows = [s.sample_once() for _ in range(3)]
        tel = s.stop()
    assert all("throttle_reasons" not in r and r["gpu_util"] == 40 for r in rows)
    assert fake.calls["throttle:0"] == 1
    assert tel.throttle == {}
    assert tel.probes["nvml"] == "ok"
    assert tel.probes["nvml.throttle"] == ("clock-throttle reasons: NVML nvmlDeviceGetCurrentClocksEventReasons "
                                           "answered NVMLError_NotSupported on GPU 0 (NVIDIA GB10)")
    assert tel.memory_source["source"] == "meminfo (unified memory)"  # the unmeasured entry changes nothing there
    assert [e["metric"] for e in logs if e["event"] == "probe.metric_unsupported"] == ["throttle"]


def test_no_nvml_means_throttle_unknown(fake_nvml):
    fake_nvml([gpu()], init_error="LibraryNotFound")
    s = Sampler([NvmlProbe, MeminfoProbe], hz=50).open("cpu-box")
    s.sample_once()
    tel = s.stop()
    assert tel.throttle == {} and "nvml.throttle" not in tel.probes and "not found" in tel.probes["nvml"]


def test_nvml_one_gpu_without_reasons_keeps_the_other_gpus_figure(fake_nvml):
    fake_nvml([gpu(throttle="NotSupported"), gpu(throttle=0x80)])
    s = Sampler([NvmlProbe], hz=50).open("mixed")
    s.sample_once()
    tel = s.stop()
    assert tel.throttle["reasons"] == {"hw_power_brake_slowdown": 1.0} and "nvml.throttle" not in tel.probes


def test_nvidia_smi_is_skipped_while_nvml_is_available(fake_nvml, tmp_path, monkeypatch):
    fake_nvml([gpu()])
    _fake_smi(tmp_path, monkeypatch, {"index": "0"})
    s = Sampler([NvmlProbe, NvidiaSmiProbe], hz=50).open("x")
    r = s.sample_once()
    s.stop()
    assert s.statuses()["nvidia-smi"].startswith("skipped: nvml is available")
    assert r["gpu_util"] == 40
    assert (tmp_path / "queries.log").read_text().split() == ["index", "memory.total"]  # only available()


# --------------------------------------------------------------------------- nvidia-smi (fake binary)


def _fake_smi(tmp_path: Path, monkeypatch, answers: dict[str, str], rc: int = 0) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    log = tmp_path / "queries.log"
    cases = "\n".join(f'  {field}) printf "%b" "{value}";;' for field, value in answers.items())
    script = bindir / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        'field="${1#--query-gpu=}"\n'
        f'echo "$field" >> "{log}"\n'
        f"if [ {rc} -ne 0 ]; then\n"
        f"  echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\"; exit {rc}\n"
        "fi\n"
        'case "$field" in\n'
        f"{cases}\n"
        '  *) echo "Field \\"$field\\" is not a valid field to query." >&2; exit 2;;\n'
        "esac\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


GB10_SMI = {"index": "0\\n", "utilization.gpu": "37\\n", "temperature.gpu": "61\\n", "power.draw": "[N/A]\\n",
            "memory.used": "[N/A]\\n", "memory.total": "[N/A]\\n"}


def test_nvidia_smi_reads_the_throttle_reasons_bitmask_of_every_gpu(tmp_path, monkeypatch):
    log = _fake_smi(tmp_path, monkeypatch, {"index": "0\\n1\\n", "memory.total": "81920\\n81920\\n",
                                            "utilization.gpu": "50\\n60\\n",
                                            "clocks_event_reasons.active": "0x0000000000000004\\n0x0000000000000001\\n"})
    s = Sampler([NvidiaSmiProbe], hz=50).open("smi")
    rows = [s.sample_once() for _ in range(2)]
    tel = s.stop()
    assert all(r["throttle_reasons"] == ["sw_power_cap"] and r["throttle_source"] == "nvidia-smi" for r in rows)
    assert tel.throttle == {"share": 1.0, "reasons": {"sw_power_cap": 1.0}, "source": "nvidia-smi", "n_samples": 2}
    assert log.read_text().split().count("clocks_event_reasons.active") == 2


def test_nvidia_smi_on_an_older_driver_reads_the_old_field_name(tmp_path, monkeypatch):
    log = _fake_smi(tmp_path, monkeypatch, {"index": "0\\n", "memory.total": "81920\\n",
                                            "clocks_throttle_reasons.active": "0x0000000000000040\\n"})
    p = NvidiaSmiProbe()
    assert p.available()[0]
    assert p.sample()["throttle_reasons"] == ["hw_thermal_slowdown"]
    assert p.sample()["throttle_reasons"] == ["hw_thermal_slowdown"] and p.unmeasured() == {}
    asked = log.read_text().split()
    assert asked.count("clocks_event_reasons.active") == 1 and asked.count("clocks_throttle_reasons.active") == 2


def test_nvidia_smi_throttle_na_on_gb10_is_unknown_with_the_reason(tmp_path, monkeypatch):
    log = _fake_smi(tmp_path, monkeypatch, {**GB10_SMI, "clocks_event_reasons.active": "[N/A]\\n"})
    s = Sampler([NvidiaSmiProbe, MeminfoProbe], hz=50).open("spark")
    rows = [s.sample_once() for _ in range(3)]
    tel = s.stop()
    assert all("throttle_reasons" not in r for r in rows) and tel.throttle == {}
    assert tel.probes["nvidia-smi.throttle"] == "nvidia-smi clocks_event_reasons.active: [N/A]"
    assert log.read_text().split().count("clocks_event_reasons.active") == 1  # asked once


def test_nvidia_smi_that_knows_neither_field_says_so(tmp_path, monkeypatch):
    _fake_smi(tmp_path, monkeypatch, {"index": "0\\n", "memory.total": "81920\\n", "utilization.gpu": "5\\n"})
    p = NvidiaSmiProbe()
    p.available()
    assert "throttle_reasons" not in p.sample() and "throttle_reasons" not in p.sample()
    assert p.unmeasured() == {"throttle": "this nvidia-smi knows neither clocks_event_reasons.active nor "
                                          "clocks_throttle_reasons.active"}


def test_nvidia_smi_na_memory_does_not_spoil_the_other_fields(tmp_path, monkeypatch):
    log = _fake_smi(tmp_path, monkeypatch, GB10_SMI)
    p = NvidiaSmiProbe()
    assert p.available() == (True, "ok")
    rows = [p.sample() for _ in range(3)]
    assert all(r == {"unified_memory": True, "gpu_count": 1, "gpu_util": 37.0, "gpu_temp_c": 61.0} for r in rows)
    queries = log.read_text().split()
    assert queries.count("memory.used") == 0  # [N/A] total: unified, memory comes from meminfo
    assert queries.count("power.draw") == 1  # [N/A] once: not polled again
    assert queries.count("utilization.gpu") == 3


def test_nvidia_smi_discrete_with_na_used_memory_keeps_the_total(tmp_path, monkeypatch):
    answers = {**GB10_SMI, "memory.total": "81920\\n81920\\n", "memory.used": "[N/A]\\n[N/A]\\n",
               "utilization.gpu": "5\\n95\\n", "power.draw": "100.5\\n[Not Supported]\\n", "index": "0\\n1\\n"}
    log = _fake_smi(tmp_path, monkeypatch, answers)
    p = NvidiaSmiProbe()
    assert p.available()[0]
    r = p.sample()
    p.sample()
    assert r["unified_memory"] is False and r["gpu_count"] == 2
    assert r["gpu_util"] == 95 and r["power_w"] == 100.5 and r["gpu_mem_total_gb"] == pytest.approx(160.0)
    assert "gpu_mem_used_gb" not in r
    assert log.read_text().split().count("memory.used") == 1


def test_nvidia_smi_absent_or_failing_is_unavailable_with_why(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    ok, why = NvidiaSmiProbe().available()
    assert not ok and "not on PATH" in why
    _fake_smi(tmp_path, monkeypatch, GB10_SMI, rc=9)
    ok, why = NvidiaSmiProbe().available()
    assert not ok and "exit 9" in why and "couldn't communicate with the NVIDIA driver" in why


@given(st.lists(st.one_of(st.integers(0, 10**6).map(str), st.sampled_from(["[N/A]", "[Not Supported]", "N/A", ""]))))
def test_parse_field_never_raises_and_keeps_numbers(values):
    got = parse_field("\n".join(values))
    nonblank = [v for v in values if v.strip()]
    assert len(got) == len(nonblank)
    for v, g in zip(nonblank, got):
        assert g == (float(v) if v[0].isdigit() else None)


# --------------------------------------------------------------------------- prometheus (loopback)

DCGM = """\
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node7"} 12
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-b",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="node7"} 88
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node7"} 20480
DCGM_FI_DEV_FB_USED{gpu="1",UUID="GPU-b",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="node7"} 40960
# HELP DCGM_FI_DEV_FB_FREE Framebuffer memory free (in MiB).
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node7"} 61440
DCGM_FI_DEV_FB_FREE{gpu="1",UUID="GPU-b",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="node7"} 40960
# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node7"} 41
DCGM_FI_DEV_GPU_TEMP{gpu="1",UUID="GPU-b",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="node7"} 67
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node7"} 110.25
DCGM_FI_DEV_POWER_USAGE{gpu="1",UUID="GPU-b",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="node7"} 520.5
# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).
# TYPE DCGM_FI_DEV_SM_CLOCK gauge
DCGM_FI_DEV_SM_CLOCK{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node7"} 1980
"""

VLLM = """\
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="openai/gpt-oss-20b"} 0.42
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="openai/gpt-oss-20b"} 2.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="openai/gpt-oss-20b"} 1234.0
"""

LLAMACPP = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 6886
# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s.
# TYPE llamacpp:predicted_tokens_seconds gauge
llamacpp:predicted_tokens_seconds 31.5
# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.125
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
"""


class MetricsServer:
    """A real HTTP server on 127.0.0.1 serving whatever ``body``/``status`` say."""

    def __init__(self) -> None:
        self.body = DCGM
        self.status = 200
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.hits += 1
                data = outer.body.encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/metrics"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def metrics_server() -> Iterator[MetricsServer]:
    srv = MetricsServer()
    yield srv
    srv.close()


def test_prometheus_scrapes_a_dcgm_exporter_named_by_the_lane(metrics_server):
    lane = LaneSpec(name="remote", base_url="http://node7:8000/v1", options={"metrics_url": metrics_server.url})
    p = PrometheusProbe()
    p.set_target(lane=lane)
    assert p.available() == (True, "ok")
    r = p.sample()
    p.close()
    assert r["gpu_util"] == 88 and r["gpu_temp_c"] == 67
    assert r["power_w"] == pytest.approx(630.75)
    assert r["gpu_mem_used_gb"] == pytest.approx(60.0) and r["gpu_mem_total_gb"] == pytest.approx(160.0)
    assert metrics_server.hits == 2


def test_prometheus_maps_vllm_and_llamacpp_series(metrics_server):
    metrics_server.body = VLLM
    p = PrometheusProbe(url=metrics_server.url)
    assert p.available()[0]
    assert p.sample() == {"kv_cache_usage": 0.42, "vllm_requests_running": 2.0}
    metrics_server.body = LLAMACPP
    assert p.sample() == {"kv_cache_usage": 0.125, "llamacpp_kv_cache_usage_ratio": 0.125,
                          "llamacpp_prompt_tokens_total": 6886.0,
                          "llamacpp_predicted_tokens_seconds": 31.5, "llamacpp_requests_processing": 1.0}


def test_prometheus_without_a_url_is_unavailable_and_says_how(monkeypatch):
    monkeypatch.delenv("HBENCH_METRICS_URL", raising=False)
    p = PrometheusProbe()
    p.set_target(lane=LaneSpec(name="local"))
    ok, why = p.available()
    assert not ok and "metrics_url" in why and "HBENCH_METRICS_URL" in why


def test_prometheus_url_from_the_environment(metrics_server, monkeypatch):
    monkeypatch.setenv("HBENCH_METRICS_URL", metrics_server.url)
    p = PrometheusProbe()
    p.set_target(lane=LaneSpec(name="x"))
    assert p.available()[0] and p.url == metrics_server.url


def test_prometheus_bad_endpoints_are_unavailable_with_the_reason(metrics_server):
    metrics_server.status = 500
    ok, why = PrometheusProbe(url=metrics_server.url).available()
    assert not ok and "500" in why and metrics_server.url in why
    metrics_server.status, metrics_server.body = 200, "<html>this is not prometheus</html>\n"
    ok, why = PrometheusProbe(url=metrics_server.url).available()
    assert not ok and "Prometheus" in why
    ok, why = PrometheusProbe(url="node7:9400/metrics").available()
    assert not ok and "http://" in why


def test_prometheus_endpoint_dying_mid_run_is_logged_once_then_disabled(metrics_server):
    lane = LaneSpec(name="remote", options={"metrics_url": metrics_server.url})
    with capture_logs() as logs:
        s = Sampler([PrometheusProbe, MeminfoProbe], hz=50, max_failures=3).open("remote", lane=lane)
        assert s.sample_once()["gpu_util"] == 88
        metrics_server.status = 503
        rows = [s.sample_once() for _ in range(5)]
        tel = s.stop()
    assert all("gpu_util" not in r and "unified_used_gb" in r for r in rows)
    assert "failed 3 times in a row" in tel.probes["prometheus"] and "503" in tel.probes["prometheus"]
    events = [e["event"] for e in logs if e.get("probe") == "prometheus"]
    assert events == ["probe.failed", "probe.disabled"]
    assert metrics_server.hits == 2 + 3  # available(), one good sample, three failures, then no more


def test_map_metrics_ignores_nan_and_unknown_series():
    text = "# TYPE DCGM_FI_DEV_GPU_TEMP gauge\nDCGM_FI_DEV_GPU_TEMP{gpu=\"0\"} NaN\nfoo_bar 3\n"
    assert map_metrics(text) == {}


def test_remote_gpu_readings_win_over_local_ones(metrics_server, fake_nvml):
    fake_nvml([gpu(util=3, temp=30)])
    lane = LaneSpec(name="remote", options={"metrics_url": metrics_server.url})
    s = Sampler([NvmlProbe, PrometheusProbe], hz=50).open("remote", lane=lane)
    row = s.sample_once()
    s.stop()
    assert row["gpu_util"] == 88 and row["gpu_temp_c"] == 67
