"""report.html's cost and throughput-sweep sections (issue 21), server-rendered.

* **Cost**: what a brain swap and a solve cost: ``ready_s`` (start to a 1-token answer),
  the memory in use once ready (resting), seconds and completion tokens per solved
  attempt, goodput within the SLO, p95 per model turn. Shown for lanes that carry them.
* **Throughput sweeps** (``scorecard.throughput.sweeps``, from ``hbench.plugins.throughput.sweep``): TTFT and
  decode tok/s against context depth, aggregate and per-stream decode tok/s against
  concurrency, one line per lane, as inline SVG (no script, no network), each chart with
  a data table beside it. A lane that did not sweep has no line; no lane swept, no section.
"""

from __future__ import annotations

from typing import Any

from hbench.plugins.reporters.svg import PALETTE, esc, line_chart, table
from hbench.plugins.reporters.tables import (
    CONCURRENCY_HEADER,
    COST_HEADER,
    DEPTH_HEADER,
    Tables,
    concurrency_rows,
    cost_rows,
    depth_rows,
    sweep_notes,
    sweep_points,
)

#: (chart id, sweep, x key, y key, title, x label, y label)
CHARTS = [
    ("sweep-ttft", "depth", "depth", "ttft_ms", "Time to first token at growing context",
     "context depth (filler tokens)", "TTFT (ms)"),
    ("sweep-decode", "depth", "depth", "decode_tok_s", "Decode speed at growing context",
     "context depth (filler tokens)", "decode tok/s"),
    ("sweep-aggregate", "concurrency", "concurrency", "aggregate_tok_s", "Aggregate decode under concurrency",
     "concurrent streams", "aggregate tok/s"),
    ("sweep-per-stream", "concurrency", "concurrency", "per_stream_tok_s", "Per-stream decode under concurrency",
     "concurrent streams", "per-stream tok/s"),
]


def cost_html(t: Tables) -> str:
    rows = cost_rows(t)
    if not rows:
        return ""
    return ('<section id="cost"><h2>Cost</h2>\n<p class="note">ready = from start to a 1-token answer (the cost of '
            "a brain swap); resting memory = in use once ready, before the first prompt; per solved attempt, "
            "failures included; goodput = attempts solved within the SLO.</p>\n"
            f'{table(COST_HEADER, rows, "cost")}\n</section>')


def sweep_series(t: Tables, which: str, x: str, y: str) -> list[tuple[str, str, list[tuple[Any, Any]]]]:
    """One (lane, colour, [(x, y)]) per lane with points in sweep ``which`` (colours as in
    the rest of the report: by the lane's place in the table)."""
    out = []
    for i, lane in enumerate(t.lanes):
        pts = [(p.get(x), p.get(y)) for p in sweep_points(t.scorecards[lane], which)]
        if pts:
            out.append((lane, PALETTE[i % len(PALETTE)], pts))
    return out


def sweeps_html(t: Tables) -> str:
    depth, conc, notes = depth_rows(t), concurrency_rows(t), sweep_notes(t)
    if not (depth or conc or notes):
        return ""
    charts = []
    for chart_id, which, x, y, title, x_label, y_label in CHARTS:
        series = sweep_series(t, which, x, y)
        if not any(v is not None for _, _, pts in series for _, v in pts):
            continue
        lanes = ", ".join(name for name, _, _ in series)
        desc = f"{y_label} against {x_label}, one line per lane ({lanes}); the table below has every figure."
        charts.append(f'<div class="chart svgchart"><h3>{esc(title)}</h3>'
                      f"{line_chart(chart_id, title, desc, x_label, y_label, series)}</div>")
    parts = ['<section id="sweeps"><h2>Throughput sweeps</h2>',
             '<p class="note">Every request opens with its own prefix (cache-busted), so no server cache '
             "answers from an earlier one. Decode tok/s excludes the first token; aggregate = all streams' "
             "tokens over the span they ran together.</p>"]
    if charts:
        parts.append(f'<div class="charts">{"".join(charts)}</div>')
    if depth:
        parts.append(f"<h3>At growing context</h3>{table(DEPTH_HEADER, depth, 'sweep-depth', 1)}")
    if conc:
        parts.append(f"<h3>Under concurrency</h3>{table(CONCURRENCY_HEADER, conc, 'sweep-concurrency', 1)}")
    if notes:
        parts.append('<ul class="note">' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    parts.append("</section>")
    return "\n".join(parts)
