#!/usr/bin/env bash
# One prepared check for the next time an NVIDIA machine is lent to the project (issue 21):
# read NVML, nvidia-smi (one field per query, so one [N/A] spoils nothing) and /proc/meminfo
# side by side, once a second for GPU_CHECK_SECONDS (default 60) while a load runs, and
# write a small JSON report. Finishes in under 5 minutes (a hard limit of 280 s).
#
#   bash benchmarks/gpu_check.sh [OUT.json]          (default gpu_check.json)
#
# Environment:
#   GPU_CHECK_SECONDS  sampling time (default 60)
#   GPU_CHECK_LOAD     a shell command to run as the load (its own process group, stopped at
#                      the end); default: a torch matmul loop when torch with CUDA imports,
#                      else no load (the report says so)
#   GPU_CHECK_MEMINFO  meminfo path (default /proc/meminfo; tests pass a fake)
#   PYTHON             interpreter (default .venv/bin/python, else python3); NVML comes from
#                      nvidia-ml-py's pynvml when importable
#
# What the report answers: does NVML report memory (or NotSupported / a total equal to
# system RAM: unified memory), does nvidia-smi (memory.used [N/A]?), what meminfo says,
# and which thermal/power clock-throttle reasons were active while the load ran (NVML's
# clock-event reasons bitmask, named as hbench's nvml probe names them; nvidia-smi's
# clocks_event_reasons.active / clocks_throttle_reasons.active beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu_check.json}
py=${PYTHON:-}
if [ -z "$py" ]; then
    if [ -x .venv/bin/python ]; then py=.venv/bin/python; else py=python3; fi
fi
exec timeout -k 10 280 "$py" - "$out" <<'PY'
import json, math, os, platform, shutil, signal, subprocess, sys, time

out_path = sys.argv[1]
seconds = float(os.environ.get("GPU_CHECK_SECONDS", "60"))
meminfo_path = os.environ.get("GPU_CHECK_MEMINFO", "/proc/meminfo")
GIB = 2**30
SMI_FIELDS = ["name", "utilization.gpu", "memory.used", "memory.total", "temperature.gpu", "power.draw",
              "clocks_event_reasons.active", "clocks_throttle_reasons.active"]  # new name, old name
SMI_BITMASKS = ("clocks_event_reasons.active", "clocks_throttle_reasons.active")  # hex: 0x0000000000000004
try:  # the names hbench's nvml probe gives the thermal/power bits (one table, not a copy)
    from hbench.plugins.probes.nvml import REASON_FUNCTIONS, throttle_reasons
except ImportError as exc:  # run without hbench installed: raw bits only, named "0x4"
    REASON_FUNCTIONS = ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")
    REASON_NAMES_WHY = f"hbench not importable ({exc}): reasons are raw bits"

    def throttle_reasons(bits):
        return [hex(b) for b in (0x4, 0x8, 0x20, 0x40, 0x80) if bits & b]
else:
    REASON_NAMES_WHY = "hbench.plugins.probes.nvml.THROTTLE_REASONS"
t_start = time.time()


def meminfo():
    try:
        kv = {}
        for line in open(meminfo_path):
            k, _, rest = line.partition(":")
            kv[k.strip()] = int(rest.split()[0]) * 1024
        return {"total_gib": kv["MemTotal"] / GIB, "used_gib": (kv["MemTotal"] - kv["MemAvailable"]) / GIB,
                "available_gib": kv["MemAvailable"] / GIB}
    except (OSError, KeyError, ValueError, IndexError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


# ---------------------------------------------------------------- NVML
nvml = {"available": False, "why": "", "samples": [], "errors": {}}
try:
    import pynvml
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    nvml["available"] = True
    name = pynvml.nvmlDeviceGetName(handle)
    nvml["name"] = name.decode() if isinstance(name, bytes) else str(name)
except Exception as exc:  # no module, no driver, no GPU
    nvml["why"] = f"{type(exc).__name__}: {exc}"
    handle = None


reasons_fn = None
if handle is not None:  # the clock-event reasons bitmask: the newest function name this pynvml has
    nvml["reasons_function"] = next((f for f in REASON_FUNCTIONS if callable(getattr(pynvml, f, None))), None)
    if nvml["reasons_function"]:
        reasons_fn = getattr(pynvml, nvml["reasons_function"])
    else:
        nvml["errors"]["throttle_bits"] = f"this nvidia-ml-py has neither {' nor '.join(REASON_FUNCTIONS)}"


def nvml_sample():
    s = {}
    calls = {
        "util_pct": lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu,
        "mem_used_gib": lambda: pynvml.nvmlDeviceGetMemoryInfo(handle).used / GIB,
        "mem_total_gib": lambda: pynvml.nvmlDeviceGetMemoryInfo(handle).total / GIB,
        "temp_c": lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
        "power_w": lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
        "throttle_bits": lambda: int(reasons_fn(handle)),
        "proc_mem_gib": lambda: sum((p.usedGpuMemory or 0) for p in
                                    pynvml.nvmlDeviceGetComputeRunningProcesses(handle)) / GIB,
    }
    for key, fn in calls.items():
        if key in nvml["errors"]:
            continue  # NotSupported once: stop asking (LANES.md)
        try:
            s[key] = fn()
        except Exception as exc:
            nvml["errors"][key] = f"{type(exc).__name__}: {exc}"
    return s


# ---------------------------------------------------------------- nvidia-smi, one field at a time
smi_bin = shutil.which("nvidia-smi")
smi = {"available": smi_bin is not None, "why": "" if smi_bin else "nvidia-smi not on PATH", "samples": [],
       "raw_last": {}}


def smi_sample():
    s = {}
    for f in SMI_FIELDS:
        try:
            r = subprocess.run([smi_bin, f"--query-gpu={f}", "--format=csv,noheader,nounits", "-i", "0"],
                               capture_output=True, text=True, timeout=10)
            raw = (r.stdout.strip().splitlines() or [""])[0].strip() if r.returncode == 0 else f"exit {r.returncode}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            raw = f"{type(exc).__name__}"
        smi["raw_last"][f] = raw
        try:
            s[f] = raw if f == "name" else int(raw, 16) if f in SMI_BITMASKS else float(raw)
        except ValueError:
            s[f] = None if f != "name" else raw
    return s


# ---------------------------------------------------------------- the load
load_cmd = os.environ.get("GPU_CHECK_LOAD")
load = {"command": load_cmd}
if not load_cmd:
    probe = subprocess.run([sys.executable, "-c", "import torch; assert torch.cuda.is_available()"],
                           capture_output=True)
    if probe.returncode == 0:
        load_cmd = (f"{sys.executable} -c \"import torch,time; a=torch.randn(8192,8192,device='cuda'); "
                    f"t=time.time()\nwhile time.time()-t<{seconds + 5}: (a@a).sum().item()\"")
        load["command"] = "torch matmul loop (8192x8192, fp32)"
    else:
        load["command"] = None
        load["why"] = "no GPU_CHECK_LOAD and no torch with CUDA: sampled at rest"
proc = subprocess.Popen(load_cmd, shell=True, start_new_session=True, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL) if load_cmd else None

# ---------------------------------------------------------------- sampling
mem = {"samples": []}
deadline = time.monotonic() + seconds
try:
    while True:
        t = round(time.time() - t_start, 2)
        if handle is not None:
            nvml["samples"].append({"t": t, **nvml_sample()})
        if smi_bin:
            smi["samples"].append({"t": t, **smi_sample()})
        mem["samples"].append({"t": t, **meminfo()})
        if time.monotonic() >= deadline:
            break
        time.sleep(max(0.0, min(1.0, deadline - time.monotonic())))
finally:
    if proc is not None:
        load["exit_code_before_stop"] = proc.poll()
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def summary(samples, keys):
    out = {}
    for k in keys:
        vals = [s[k] for s in samples if isinstance(s.get(k), (int, float)) and not isinstance(s.get(k), bool)
                and math.isfinite(s[k])]
        out[k] = {"n": len(vals), "min": round(min(vals), 3), "max": round(max(vals), 3),
                  "mean": round(sum(vals) / len(vals), 3)} if vals else {"n": 0}
    return out


nvml["summary"] = summary(nvml["samples"], ["util_pct", "mem_used_gib", "mem_total_gib", "temp_c", "power_w",
                                            "proc_mem_gib"])


def throttle(bitmasks, source):
    """Like hbench's Telemetry.throttle: share of samples with a thermal/power reason, per reason."""
    if not bitmasks:
        return {}
    named = [throttle_reasons(b) for b in bitmasks]
    names = sorted({r for rs in named for r in rs})
    return {"share": round(sum(1 for rs in named if rs) / len(named), 3),
            "reasons": {r: round(sum(1 for rs in named if r in rs) / len(named), 3) for r in names},
            "source": source, "n_samples": len(named), "names_from": REASON_NAMES_WHY}


nvml["throttle"] = throttle([s["throttle_bits"] for s in nvml["samples"] if isinstance(s.get("throttle_bits"), int)],
                            "nvml")
nvml["throttled_share"] = nvml["throttle"].get("share")
smi["summary"] = summary(smi["samples"], [f for f in SMI_FIELDS if f != "name" and f not in SMI_BITMASKS])
for field in SMI_BITMASKS:
    bits = [s[field] for s in smi["samples"] if isinstance(s.get(field), int)]
    if bits:
        smi["throttle"] = throttle(bits, f"nvidia-smi {field}")
        break
mem["summary"] = summary(mem["samples"], ["used_gib", "total_gib", "available_gib"])
mem_total = (mem["summary"]["total_gib"] or {}).get("max")
nv_total = (nvml["summary"]["mem_total_gib"] or {}).get("max")
if nvml["available"] and "mem_used_gib" not in nvml["errors"] and nv_total and not (
        mem_total and abs(nv_total - mem_total) / mem_total < 0.05):
    verdict = {"memory_source": "gpu", "why": f"NVML reports {nv_total:.1f} GiB of GPU memory of its own"}
elif nvml["available"]:
    why = nvml["errors"].get("mem_used_gib") or f"NVML memory total {nv_total} GiB equals system RAM {mem_total} GiB"
    verdict = {"memory_source": "meminfo (unified memory)", "why": why}
else:
    verdict = {"memory_source": "meminfo (system RAM)" if mem["summary"]["used_gib"].get("n") else "none",
               "why": nvml["why"]}
smi_na = [f for f, raw in smi["raw_last"].items() if raw.strip("[]").lower() in ("n/a", "not supported")]
report = {"schema": "hbench.gpu_check/1", "host": platform.node(), "machine": platform.machine(),
          "seconds": seconds, "wall_s": round(time.time() - t_start, 2), "load": load, "verdict": verdict,
          "throttle": nvml["throttle"] or smi.get("throttle") or {},
          # why the throttle figure is unknown ("" when known)
          "throttle_why": "" if nvml["throttle"] or smi.get("throttle") else (
              nvml["errors"].get("throttle_bits") or nvml["why"] or "no sample read the reasons"),
          "nvidia_smi_not_available_fields": smi_na, "nvml": nvml, "nvidia_smi": smi, "meminfo": mem}
tmp = out_path + ".tmp"
with open(tmp, "w") as fh:
    json.dump(report, fh, indent=1, default=str)
os.replace(tmp, out_path)
print(f"gpu_check: {verdict['memory_source']} ({verdict['why']}); {len(mem['samples'])} samples in "
      f"{report['wall_s']} s -> {out_path}")
PY
