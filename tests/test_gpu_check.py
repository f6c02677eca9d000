"""benchmarks/gpu_check.sh with fakes (issue 21): a fake nvidia-smi on PATH (memory.used
[N/A], as on a GB10), a fake pynvml (memory NotSupported, a throttle reason), a fake
meminfo, and a load that must be stopped. The real run waits for a GPU machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"

FAKE_SMI = """#!/bin/sh
case "$1" in
  --query-gpu=name) echo "NVIDIA GB10";;
  --query-gpu=utilization.gpu) echo "97";;
  --query-gpu=memory.used) echo "[N/A]";;
  --query-gpu=memory.total) echo "[N/A]";;
  --query-gpu=temperature.gpu) echo "64";;
  --query-gpu=power.draw) echo "41.5";;
  *) echo "[N/A]";;
esac
"""

FAKE_PYNVML = '''
GIB = 2**30
NVML_TEMPERATURE_GPU = 0
class NVMLError_NotSupported(Exception):
    def __str__(self): return "Not Supported"
class _U:
    gpu = 95
class _P:
    usedGpuMemory = 3 * GIB
def nvmlInit(): pass
def nvmlDeviceGetHandleByIndex(i): return object()
def nvmlDeviceGetName(h): return b"NVIDIA GB10"
def nvmlDeviceGetUtilizationRates(h): return _U()
def nvmlDeviceGetMemoryInfo(h): raise NVMLError_NotSupported()
def nvmlDeviceGetTemperature(h, kind): return 63
def nvmlDeviceGetPowerUsage(h): return 40500
def nvmlDeviceGetCurrentClocksThrottleReasons(h): return 0x4
def nvmlDeviceGetComputeRunningProcesses(h): return [_P()]
'''

MEMINFO = "MemTotal: 125829120 kB\nMemFree: 1000 kB\nMemAvailable: 83886080 kB\n"  # 120 GiB, 80 free


def _env(tmp_path: Path, smi: bool, nvml: bool) -> dict[str, str]:
    bin_dir, lib = tmp_path / "bin", tmp_path / "lib"
    bin_dir.mkdir(exist_ok=True)
    lib.mkdir(exist_ok=True)
    if smi:
        (bin_dir / "nvidia-smi").write_text(FAKE_SMI)
        (bin_dir / "nvidia-smi").chmod(0o755)
    if nvml:
        (lib / "pynvml.py").write_text(FAKE_PYNVML)
    else:
        (lib / "pynvml.py").write_text("raise ImportError('no NVIDIA driver here (fake)')\n")
    (tmp_path / "meminfo").write_text(MEMINFO)
    path = os.environ["PATH"] if smi else ":".join(p for p in os.environ["PATH"].split(":")
                                                   if not (Path(p) / "nvidia-smi").exists())
    return {**os.environ, "PATH": f"{bin_dir}:{path}", "PYTHONPATH": str(lib), "PYTHON": sys.executable,
            "GPU_CHECK_SECONDS": "2", "GPU_CHECK_MEMINFO": str(tmp_path / "meminfo")}


def test_unified_memory_box_with_a_load(tmp_path):
    pidfile = tmp_path / "load.pid"
    env = {**_env(tmp_path, smi=True, nvml=True), "GPU_CHECK_LOAD": f"echo $$ > {pidfile}; exec sleep 60"}
    out = tmp_path / "report.json"
    t0 = time.monotonic()
    r = subprocess.run(["bash", str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 30
    rep = json.loads(out.read_text())
    assert rep["verdict"]["memory_source"] == "meminfo (unified memory)"
    assert "Not Supported" in rep["verdict"]["why"]
    assert set(rep["nvidia_smi_not_available_fields"]) >= {"memory.used", "memory.total"}
    assert rep["nvml"]["summary"]["util_pct"]["mean"] == 95 and rep["nvml"]["throttled_share"] == 1.0
    # 0x4 = SW power cap, named as hbench's nvml probe names it (this fake pynvml has only the old name)
    assert rep["nvml"]["reasons_function"] == "nvmlDeviceGetCurrentClocksThrottleReasons"
    assert {k: rep["throttle"][k] for k in ("share", "reasons", "source")} == {
        "share": 1.0, "reasons": {"sw_power_cap": 1.0}, "source": "nvml"}
    assert rep["throttle"]["n_samples"] == len(rep["nvml"]["samples"]) and rep["throttle_why"] == ""
    assert rep["nvml"]["summary"]["proc_mem_gib"]["max"] == 3.0  # per-process memory still works
    assert rep["nvidia_smi"]["summary"]["utilization.gpu"]["max"] == 97.0
    assert rep["meminfo"]["summary"]["used_gib"]["max"] == 40.0
    assert len(rep["meminfo"]["samples"]) >= 3 and rep["wall_s"] < 20
    pid = int(pidfile.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, "the load survived"
    assert "meminfo (unified memory)" in r.stdout


def test_no_gpu_at_all_says_so(tmp_path):
    out = tmp_path / "report.json"
    r = subprocess.run(["bash", str(SCRIPT), str(out)], env=_env(tmp_path, smi=False, nvml=False),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert rep["verdict"]["memory_source"] == "meminfo (system RAM)"
    assert "no NVIDIA driver here" in rep["verdict"]["why"]
    assert rep["nvidia_smi"]["available"] is False and rep["load"]["command"] is None
    assert rep["throttle"] == {} and "no NVIDIA driver here" in rep["throttle_why"]


def test_throttle_reasons_not_supported_say_so_and_smi_bitmask_is_read(tmp_path):
    """GB10: NVML answers Not Supported for the clock-event reasons; the report's throttle is
    unknown ({}) with the reason, and nvidia-smi's hex bitmask field is parsed beside it."""
    env = _env(tmp_path, smi=True, nvml=True)
    lib = tmp_path / "lib" / "pynvml.py"
    lib.write_text(FAKE_PYNVML.replace("def nvmlDeviceGetCurrentClocksThrottleReasons(h): return 0x4",
                                       "def nvmlDeviceGetCurrentClocksEventReasons(h): raise NVMLError_NotSupported()"))
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.write_text(FAKE_SMI.replace('  *) echo "[N/A]";;',
                                    '  --query-gpu=clocks_event_reasons.active) echo "0x0000000000000041";;\n'
                                    '  *) echo "[N/A]";;'))
    out = tmp_path / "report.json"
    r = subprocess.run(["bash", str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert rep["nvml"]["throttle"] == {} and "Not Supported" in rep["nvml"]["errors"]["throttle_bits"]
    smi_throttle = rep["nvidia_smi"]["throttle"]  # 0x41 = GpuIdle (not throttling) + HW thermal slowdown
    assert smi_throttle["reasons"] == {"hw_thermal_slowdown": 1.0} and smi_throttle["share"] == 1.0
    assert rep["throttle"] == smi_throttle and rep["throttle_why"] == ""
