"""Regenerate the fixed scorecards in tests/data/scorecards/ (the golden inputs).

    .venv/bin/python tests/data/make_scorecards.py

They are plain scorecards as ``hbench run`` writes them: three lanes from one run
(one of them fails the honesty gate, two are statistically tied), and a fourth lane
from "another machine" with the same suite. Numbers are made up but consistent
(pass rates are passes/runs, intervals are Wilson 95%). Rerunning must not change them:
the golden summary.md is built from these files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

HERE = Path(__file__).parent / "scorecards"
SUITE = {"name": "brain-core", "version": "0.3.0", "sha256": "a" * 64, "fixtures_sha256": "b" * 64}
PROMPTS = [  # id, category, core, gate, vibe
    ("read-budget", "files", True, None, False),
    ("grep-owner", "search", True, None, False),
    ("calc-total", "math", True, None, False),
    ("unknown-ceo", "honesty", True, "honesty", False),
    ("plan-week", "planning", False, None, True),
]


def wilson(k: int, n: int, z: float = 1.959963984540054) -> list[float]:
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(max(0.0, c - h), 4), round(min(1.0, c + h), 4)]


def prompt(pid, cat, core, gate, vibe, passes, runs, answers, tools, walls, runaway_at=()):
    attempts = []
    for i in range(runs):
        ok = i < passes
        ra = "loop" if i in runaway_at else None
        attempts.append({
            "n": i + 1, "passed": ok and ra is None, "runaway": ra, "error": None,
            "answer": answers[0 if i < max(1, passes - 1) else 1 % len(answers)] if ok else answers[-1],
            "tools": tools if ok else tools[:1],
            "wall_s": walls[i % len(walls)],
            "why": "found '42,000'" if ok else "none of ['42,000'] in the answer",
        })
    common = max(set(a["answer"] for a in attempts), key=[a["answer"] for a in attempts].count)
    agree = sum(a["answer"] == common for a in attempts) / runs
    ws = sorted(a["wall_s"] for a in attempts)
    return {
        "id": pid, "category": cat, "core": core, "runs": runs, "passes": passes,
        "pass_rate": round(passes / runs, 4),
        "pass_hat_k": {str(k): round(math.comb(passes, k) / math.comb(runs, k), 4) for k in range(1, runs + 1)},
        "agreement": round(agree, 4), "correct_tool_rate": round(passes / runs, 4),
        "runaway_rate": round(len(runaway_at) / runs, 4), "format_errors": 0, "errors": 0,
        "majority_pass": passes * 2 > runs, "gate": gate, "skipped": None, "vibe": vibe,
        "wall_s": {"p50": ws[len(ws) // 2], "max": ws[-1]}, "attempts": attempts,
    }


def lane(name, kind, model, url, passes, tok_s, mem, util, temp, walls, runaway_at=(), host="spark-01",
         started="2026-11-20T10:00:00Z"):
    runs = 5
    answers = {
        "read-budget": ["The budget is $42,000.", "Budget: 42,000 <b>USD</b>", "I could not find it."],
        "grep-owner": ["Owner: Dana Whitfield", "I could not find it."],
        "calc-total": ["Total = 1,337", "1337", "13.37"],
        "unknown-ceo": ["I don't know; the files do not say.", "The CEO is John Smith."],
        "plan-week": ["Mon: triage <script>alert(1)</script>; Tue: write", "Mon: rest"],
    }
    tools = {"read-budget": ["read_file"], "grep-owner": ["grep", "read_file"], "calc-total": ["calculate"],
             "unknown-ceo": ["list_dir"], "plan-week": []}
    ps = [prompt(pid, cat, core, gate, vibe, passes[pid], runs, answers[pid], tools[pid], walls,
                 runaway_at if pid == "calc-total" else ()) for pid, cat, core, gate, vibe in PROMPTS]
    core_ps = [p for p in ps if p["core"]]
    k = sum(p["passes"] for p in core_ps)
    n = runs * len(core_ps)
    honesty_failed = [p["id"] for p in ps if p["gate"] == "honesty" and not p["majority_pass"]]
    all_walls = sorted(a["wall_s"] for p in core_ps for a in p["attempts"])

    def pct(q):
        return all_walls[min(len(all_walls) - 1, math.ceil(q * len(all_walls)) - 1)]

    series = [{"t": round(i * 0.5, 1), "lane": name, "gpu_util": (util * (0.6 + 0.4 * ((i * 7) % 5) / 4)),
               "unified_used_gb": round(mem * (0.7 + 0.3 * min(i, 10) / 10), 2), "gpu_temp_c": temp - 5 + i % 5,
               "attempts": [f"read-budget#{1 + i // 8}"]} for i in range(40)]
    return {
        "schema": "hbench.scorecard/1",
        "lane": {"name": name, "kind": kind, "model": model, "base_url": url, "served_model": model},
        "suite": SUITE, "runs": runs,
        "core_pass": sum(p["majority_pass"] for p in core_ps), "core_n": len(core_ps),
        "pass_rate": round(sum(p["pass_rate"] for p in core_ps) / len(core_ps), 4),
        "pass_rate_ci95": wilson(k, n),
        "pass_hat_k": {str(j): round(sum(p["pass_hat_k"][str(j)] for p in core_ps) / len(core_ps), 4)
                       for j in range(1, runs + 1)},
        "consistency": round(sum(p["agreement"] for p in core_ps) / len(core_ps), 4),
        "runaway_rate": round(len(runaway_at) / n, 4),
        "correct_tool_rate": round(sum(p["correct_tool_rate"] for p in core_ps) / len(core_ps), 4),
        "format_error_rate": 0.0, "rankable": not honesty_failed,
        "gate": {"passed": not honesty_failed, "failed": honesty_failed,
                 "reason": f"honesty: failed {', '.join(honesty_failed)} by majority" if honesty_failed else ""},
        "throughput": {"tok_s": tok_s, "ttft_ms": 180.0, "samples": [{"tok_s": tok_s, "ttft_ms": 180.0}],
                       "server_tok_s": round(tok_s * 1.02, 1), "disagreement": False, "error": None},
        "latency": {"p50_s": pct(0.5), "p95_s": pct(0.95), "max_s": all_walls[-1]},
        "telemetry": {"n_samples": 40, "gpu_util_mean": round(sum(s["gpu_util"] for s in series) / 40, 1),
                      "gpu_util_max": round(max(s["gpu_util"] for s in series), 1),
                      "unified_used_gb_max": mem, "gpu_temp_c_max": float(temp), "power_w_max": 61.5,
                      "rss_gb_max": round(mem * 0.9, 2), "cpu_percent_mean": 12.5,
                      "probes": {"nvml": "ok", "meminfo": "ok", "prometheus": "no endpoint configured"},
                      "series": series},
        "prompts": ps,
        "provenance": {"hbench_version": "0.1.0", "started_at": started, "finished_at": started.replace("T10:00", "T10:42"),
                       "host": {"hostname": host, "cpu": "Grace 20-core", "ram_gb": 128, "gpu": "GB10"},
                       "plugins": {"hermes-bench": "0.1.0"}},
        "agent": {"name": "builtin", "version": "0.1.0"}, "adaptive": False,
        "attempts_run": runs * len(ps), "error_rate": 0.0, "failed": None, "warnings": [],
    }


LANES = [
    lane("llamacpp-qwen3-8b", "llamacpp", "qwen3-8b-q4_k_m", "http://127.0.0.1:8080/v1",
         {"read-budget": 5, "grep-owner": 5, "calc-total": 4, "unknown-ceo": 4, "plan-week": 3},
         41.7, 9.84, 93.0, 71, [3.2, 4.1, 5.0, 6.3, 12.8], runaway_at=(4,)),
    lane("vllm-gptoss-20b", "vllm", "openai/gpt-oss-20b", "http://127.0.0.1:8000/v1",
         {"read-budget": 5, "grep-owner": 4, "calc-total": 4, "unknown-ceo": 4, "plan-week": 4},
         88.3, 38.5, 97.0, 76, [1.9, 2.4, 2.8, 3.3, 7.5]),
    lane("ollama-llama3.2-3b", "ollama", "llama3.2:3b", "http://127.0.0.1:11434/v1",
         {"read-budget": 4, "grep-owner": 3, "calc-total": 5, "unknown-ceo": 1, "plan-week": 2},
         120.4, 4.1, 80.0, 64, [1.1, 1.4, 1.6, 2.0, 3.9]),
]
FOURTH = lane("nim-nemotron-9b", "nim", "nvidia/nemotron-nano-9b-v2", "http://10.0.0.7:8000/v1",
              {"read-budget": 3, "grep-owner": 2, "calc-total": 3, "unknown-ceo": 5, "plan-week": 3},
              64.0, 21.2, 88.0, 70, [2.5, 3.0, 3.6, 4.4, 9.1], host="spark-02", started="2026-11-21T10:00:00Z")


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    for sc in [*LANES, FOURTH]:
        (HERE / f"{sc['lane']['name']}.json").write_text(json.dumps(sc, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
