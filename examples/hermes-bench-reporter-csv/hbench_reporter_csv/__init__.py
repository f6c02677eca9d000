"""An hbench plugin that adds a third-party reporter: ``results/lanes.csv``.

``hbench run --report json,md,csv`` or ``hbench report results/ --report csv``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from hbench import Reporter, hookimpl

COLUMNS = [
    "lane", "kind", "model", "agent", "rankable", "core_pass", "core_n", "pass_rate",
    "pass_rate_lo", "pass_rate_hi", "consistency", "runaway_rate", "tok_s", "ttft_ms",
    "latency_p50_s", "unified_used_gb_max", "suite", "suite_sha256",
]


def row(sc) -> dict:
    lo, hi = (list(sc.pass_rate_ci95) + [None, None])[:2]
    return {
        "lane": sc.lane.get("name"),
        "kind": sc.lane.get("kind"),
        "model": sc.lane.get("served_model") or sc.lane.get("model"),
        "agent": (sc.agent or {}).get("name", ""),
        "rankable": sc.rankable,
        "core_pass": sc.core_pass,
        "core_n": sc.core_n,
        "pass_rate": round(sc.pass_rate, 4),
        "pass_rate_lo": lo,
        "pass_rate_hi": hi,
        "consistency": round(sc.consistency, 4) if sc.consistency is not None else None,  # None: 1 run
        "runaway_rate": round(sc.runaway_rate, 4),
        "tok_s": sc.throughput.tok_s,
        "ttft_ms": sc.throughput.ttft_ms,
        "latency_p50_s": sc.latency.p50_s,
        "unified_used_gb_max": sc.telemetry.unified_used_gb_max,
        "suite": sc.suite.get("name"),
        "suite_sha256": sc.suite.get("sha256"),
    }


class CsvReporter(Reporter):
    name = "csv"
    description = "one CSV row per lane (lanes.csv)"

    def write(self, scorecards, out_dir: Path, context) -> list[Path]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "lanes.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS)
            w.writeheader()
            for sc in sorted(scorecards, key=lambda s: s.lane.get("name", "")):
                w.writerow(row(sc))
        return [path]


@hookimpl
def hbench_register_reporters(register):
    register(CsvReporter())
