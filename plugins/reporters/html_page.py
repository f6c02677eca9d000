"""report.html's page: the payload (every lane, prompt and attempt, the telemetry
series), the server-rendered tables and sections, and the page around them with its
Content-Security-Policy. :mod:`hbench.plugins.reporters.report_html` (the reporter) calls
:func:`write_page` when a report is written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from hbench.logging import get_logger
from hbench.models import Scorecard
from hbench.plugins.history.trends import trends_html
from hbench.plugins.reporters.figures_html import cost_html, sweeps_html
from hbench.plugins.reporters.svg import PALETTE, asset, css
from hbench.plugins.reporters.svg import esc as _esc
from hbench.plugins.reporters.svg import table as _table
from hbench.plugins.reporters.tables import (
    RANK_HEADER,
    build_tables,
    category_cell,
    headline,
    host_name,
    lane_cell,
    peak_memory_gb,
    tie_lines,
)
from hbench.report import lane_name, sanitise_payload, sanitise_text, write_text_atomic

#: longest text (answer, message, tool result) kept per item in the page

MAX_TEXT = 20_000
#: most telemetry points drawn per lane (series are thinned evenly beyond this)
MAX_POINTS = 600

def _node_sub(t: Any, lane: str) -> str:
    """`` · on NODE`` under a lane's name when it ran on a named node (its telemetry is that node's)."""
    node = (t.scorecards[lane].provenance or {}).get("node")
    return f" · on {_esc(node)}" if node else ""


def json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``</script>``, no
    ``<!--``, no line terminators JavaScript would choke on."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _cap(text: Any) -> str:
    s = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False, default=str)
    if len(s) > MAX_TEXT:
        return s[:MAX_TEXT] + f"\n… [{len(s) - MAX_TEXT} more characters not shown]"
    return s


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def _tool_calls(rec: dict[str, Any]) -> list[dict[str, Any]]:
    calls = []
    for c in rec.get("tool_calls") or []:
        if not isinstance(c, dict):
            continue
        calls.append({"name": _cap(c.get("name", "?")), "arguments": _cap(c.get("arguments", "")),
                      "ok": bool(c.get("ok", True)), "error": _cap(c.get("error")) if c.get("error") else None,
                      "result": _cap(c.get("result", "")), "format_error": bool(c.get("format_error", False))})
    return calls


def _transcript(rec: dict[str, Any]) -> list[dict[str, str]]:
    msgs = []
    for m in rec.get("transcript") or []:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        if content is None and m.get("tool_calls"):
            content = m.get("tool_calls")
        item = {"role": str(m.get("role", "?")), "content": _cap(content if content is not None else "")}
        if m.get("reasoning") or m.get("reasoning_content"):
            item["reasoning"] = _cap(m.get("reasoning") or m.get("reasoning_content"))
        if m.get("name"):
            item["name"] = str(m["name"])
        msgs.append(item)
    return msgs


# --------------------------------------------------------------------------- payload


def _thin(series: list[dict[str, Any]], n: int = MAX_POINTS) -> list[dict[str, Any]]:
    if len(series) <= n:
        return series
    step = len(series) / n
    return [series[int(i * step)] for i in range(n)]


def build_payload(tables: Any, journal: dict[tuple[str, str, int], dict[str, Any]], suite: Any) -> dict[str, Any]:
    prompt_text = {p.id: p.prompt for p in suite.prompts} if suite is not None else {}
    lanes, cells, series, walls = [], {}, {}, {}
    rows = {r.lane: r for r in tables.ranked + tables.unrankable}
    for i, lane in enumerate(tables.lanes):
        sc: Scorecard = tables.scorecards[lane]
        row = rows[lane]
        mem, which = peak_memory_gb(sc)
        original = str(sc.lane.get("name"))
        lanes.append({
            "name": lane, "color": PALETTE[i % len(PALETTE)], "rank": row.rank, "tied_with": list(row.tied_with),
            "reason": row.reason, "model": sc.lane.get("model") or sc.lane.get("served_model") or "",
            "kind": sc.lane.get("kind", ""), "pass_rate": _finite(sc.pass_rate),
            "ci": [_finite(x) for x in (list(sc.pass_rate_ci95) + [None, None])[:2]],
            "tok_s": _finite(sc.throughput.tok_s), "mem_gb": _finite(mem), "mem_kind": which,
            "failed": sc.failed,
        })
        cells[lane] = {}
        for p in sc.prompts:
            atts = []
            for a in p.attempts:
                # journal records carry the lane's name as run (before any de-duplication)
                rec = journal.get((original, p.id, a.n)) or journal.get((lane, p.id, a.n)) or {}
                atts.append({
                    "n": a.n, "passed": a.passed, "runaway": a.runaway, "error": _cap(a.error) if a.error else None,
                    "answer": _cap(a.answer), "tools": [str(t) for t in a.tools], "wall_s": _finite(a.wall_s),
                    "why": _cap(a.why or ((rec.get("check") or {}).get("why") if isinstance(rec.get("check"), dict) else "") or ""),
                    "tool_calls": _tool_calls(rec), "transcript": _transcript(rec), "journal": bool(rec),
                })
            cells[lane][p.id] = {"passes": p.passes, "runs": p.runs, "skipped": p.skipped, "errored": p.errors,
                                 "attempts": atts}
        pts = []
        for s in _thin([s for s in sc.telemetry.series if isinstance(s, dict)]):
            t = _finite(s.get("t"))
            if t is None:
                continue
            pts.append({"t": t, "gpu_util": _finite(s.get("gpu_util")),
                        "mem_gb": _finite(s.get("unified_used_gb")) if which != "gpu" else _finite(s.get("gpu_mem_used_gb"))})
        series[lane] = pts
        walls[lane] = sorted(w for p in sc.prompts if not p.skipped for a in p.attempts
                             if (w := _finite(a.wall_s)) is not None)
    return {
        "lanes": lanes,
        "prompts": [{"id": p.id, "category": p.category, "core": p.core, "gate": p.gate, "vibe": p.vibe,
                     "difficulty": p.difficulty, "tags": list(p.tags),
                     "text": prompt_text.get(p.id, "")} for p in tables.prompts],
        "cells": cells, "series": series, "walls": walls,
        "categories": {"names": list(tables.categories),
                       "lanes": {lane: {c: {k: _finite(v) for k, v in fig.items()} for c, fig in figs.items()}
                                 for lane, figs in tables.category_figures.items()}},
        "has_journal": bool(journal), "lane_names_original": {lane: lane_name(tables.scorecards[lane]) for lane in tables.lanes},
    }


# --------------------------------------------------------------------------- page


def _rank_html(t: Any) -> str:
    colors = {lane: PALETTE[i % len(PALETTE)] for i, lane in enumerate(t.lanes)}
    header = list(RANK_HEADER) + (["suite"] if t.mixed else [])
    parts = []
    # one rank table per comparable set (suite + prompt set); one set unless --allow-mixed mixed them
    groups = t.groups if len(t.groups) > 1 else [""]
    for gi, g in enumerate(groups):
        ranked = [r for r in t.ranked if not g or r.group == g]
        if g:
            parts.append(f"<h3>Ranked within {_esc(g)}</h3>")
        table_id = "rank-table" if gi == 0 else f"rank-table-{gi + 1}"
        if not ranked:
            parts.append(f'<p id="{table_id}" class="warn">No lane is rankable.</p>')
            continue
        th = "".join(f"<th scope=col{' class=num' if i >= 3 else ''}>{_esc(h)}</th>" for i, h in enumerate(header))
        trs = []
        for r in ranked:
            tie = f' title="statistically tied with {_esc(", ".join(r.tied_with))}"' if r.tied_with else ""
            cells = [f'<td class="rank"{tie}>{_esc(r.rank_cell)}</td>',
                     f'<td><span class="swatch" style="background:{colors[r.lane]}"></span>{_esc(r.lane)}'
                     f'<div class="sub">{_esc(t.scorecards[r.lane].lane.get("model") or "")}{_node_sub(t, r.lane)}'
                     f'</div></td>',
                     f"<td>{_esc(r.agent)}</td>"]
            cells += [f"<td class=num>{_esc(v)}</td>" for v in
                      (r.core_pass, r.pass_rate, r.consistency, r.runaway, r.tok_s, r.peak_unified)]
            if t.mixed:
                cells.append(f"<td>{_esc(r.suite)}</td>")
            trs.append(f"<tr>{''.join(cells)}</tr>")
        parts.append(f'<table id="{table_id}" class="rank"><thead><tr>{th}</tr></thead>'
                     f'<tbody>{"".join(trs)}</tbody></table>')
    decided = [r.decided_by for r in t.ranked if r.decided_by]
    if decided:
        parts.append('<ul id="decided" class="note">' + "".join(f"<li>{_esc(d)}</li>" for d in decided) + "</ul>")
    ties = tie_lines(t)
    if ties:
        items = "".join(f"<li>{_esc(a)} ≈ {_esc(', '.join(b))}</li>" for a, b in ties)
        parts.append(f'<p class="note">≈ statistically tied: their 95% pass-rate intervals overlap, so the order '
                     f"between them is not significant (more runs narrow the intervals).</p><ul class=note>{items}</ul>")
    if t.unrankable:
        rows = [[lane_cell(t, r.lane), r.agent, r.reason or "unrankable", r.core_pass, r.pass_rate, r.tok_s]
                + ([r.suite] if t.mixed else []) for r in t.unrankable]
        parts.append("<h3>Not ranked</h3><p class=note>A gate failed (a lane that confabulates is not "
                     "ranked however fast it is) or was not evaluated, the run is incomplete (errored or "
                     "missing attempts: the stack failed, not the model), or the lane did not run.</p>")
        parts.append(_table(["Lane", "Agent", "why not ranked", "core_pass", "pass_rate (95% CI)", "tok/s"]
                            + (["suite"] if t.mixed else []), rows, "unrankable", 3))
    return "\n".join(parts)


def _matrix_html(t: Any) -> str:
    head = "".join(f'<th scope=col class="lanehead"><span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}">'
                   f"</span>{_esc(lane)}</th>" for i, lane in enumerate(t.lanes))
    trs = []
    for p in t.prompts:
        tags = (f' <span class="tag gate">gate: {_esc(p.gate)}</span>' if p.gate else "") + \
               ("" if p.core else ' <span class="tag">not core</span>') + (' <span class="tag">vibe</span>' if p.vibe else "") + \
               (f' <span class="tag" title="difficulty {p.difficulty} of 3">d{p.difficulty}</span>' if p.difficulty else "") + \
               "".join(f' <span class="tag">{_esc(tag)}</span>' for tag in p.tags)
        tds = []
        for lane in t.lanes:
            cell = t.matrix[lane].get(p.id)
            if cell is None:
                tds.append('<td class="cell na">–</td>')
                continue
            rate = cell.rate
            band = "na" if rate is None else ("good" if rate >= 0.8 else "mid" if rate > 0.5 else "bad")
            tds.append(f'<td class="cell {band}"><button type="button" data-lane="{_esc(lane)}" data-prompt="{_esc(p.id)}" '
                       f'aria-label="{_esc(p.id)} on {_esc(lane)}: {_esc(cell.text)}">{_esc(cell.text)}</button></td>')
        trs.append(f'<tr><th scope=row class="prompt">{_esc(p.id)}{tags}<div class="sub">{_esc(p.category)}</div></th>'
                   f'{"".join(tds)}</tr>')
    return (f'<table id="matrix" class="matrix"><thead><tr><th scope=col>Prompt</th>{head}</tr></thead>'
            f'<tbody>{"".join(trs)}</tbody></table>')


def _categories_html(t: Any) -> str:
    """The per-category section: a table (category x lane) and a bar chart of pass rates."""
    if not t.categories:
        return ""
    rows = []
    for c in t.categories:
        n = max((t.category_figures[lane].get(c, {}).get("n", 0) for lane in t.lanes), default=0)
        rows.append([c, str(n)] + [category_cell(t.category_figures[lane].get(c)) for lane in t.lanes])
    table = _table(["Category", "prompts"] + list(t.lanes), rows, "categories", 1)
    return (f'<section id="categories"><h2>Per category</h2>\n<p class="note">core = core prompts passed in a '
            f"majority of attempts; % = mean pass rate over the category's prompts.</p>\n{table}\n"
            '<div class="chart"><canvas id="chart-categories" role="img" aria-label="pass rate per category, '
            'lanes side by side"></canvas></div>\n</section>')





def _script_hash(body: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode() + "'"


def chart_js() -> str:
    js = asset("chart.umd.min.js")
    if "</script" in js.lower():  # pragma: no cover - a vendored update must not break the page
        raise RuntimeError("assets/chart.umd.min.js contains '</script'; it cannot be inlined")
    return js


def render_html(tables: Any, payload: dict[str, Any], title: str = "hermes-bench report", trends: str = "") -> str:
    """The page. ``trends``: the server-rendered "Trend" section (from the run database), or ""."""
    payload = sanitise_payload(payload)
    lib = chart_js()
    app = asset("report.js")
    csp = (f"default-src 'none'; script-src {_script_hash(lib)} {_script_hash(app)}; style-src 'unsafe-inline'; "
           "img-src data:; font-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'")
    scs = [tables.scorecards[lane] for lane in tables.lanes]
    starts = sorted(str(sc.provenance.get("started_at")) for sc in scs if sc.provenance.get("started_at"))
    ends = sorted(str(sc.provenance.get("finished_at")) for sc in scs if sc.provenance.get("finished_at"))
    hosts = sorted({h for sc in scs if (h := host_name(sc))})
    when = f"{starts[0]} → {ends[-1]}" if starts and ends else ""
    meta = [f"suite {' | '.join(tables.suites)}", f"{', '.join(map(str, tables.runs))} attempts per prompt",
            f"{len(tables.lanes)} lanes"]
    if hosts:
        meta.append("host " + ", ".join(hosts))
    if when:
        meta.append(when)
    mixed = ""
    if tables.mixed and len(tables.suites) > 1:
        mixed = ('<p class="warn"><b>Mixed suites</b> (--allow-mixed): these lanes ran different suites, so their '
                 "scores are not directly comparable; the suite column says which, and each is ranked apart.</p>")
    elif tables.mixed:
        mixed = ('<p class="warn"><b>Mixed prompt sets</b> (--allow-mixed): these lanes ran different prompts of '
                 "the suite, so each prompt set is ranked in a table of its own.</p>")
    lane_list = payload["lanes"]
    body = f"""
<header><h1>{_esc(title)}</h1><div class="meta">{_esc(" · ".join(meta))}</div></header>
<main>
{mixed}
<p class="headline" id="headline">{_esc(headline(tables))}</p>
<section id="ranking"><h2>Ranking</h2>
<p class="note">Best first. core_pass = core prompts passed in a majority of attempts; pass_rate = mean over core prompts, with its 95% interval;
consistency = share of attempts giving the most common answer; runaway = attempts stopped by a timeout, max_turns or a loop.
Lanes are ranked by the honesty gate, then core_pass, pass_rate, consistency, fewer runaways, tok/s.</p>
{_rank_html(tables)}
</section>
{trends}
<section id="charts-top"><h2>Quality vs throughput</h2>
<p class="note" id="chart-status">Up and to the right is better. Bubble area = peak memory in use; whisker = 95% interval of the pass rate; faded = not ranked.</p>
<div class="chart"><canvas id="chart-quality" role="img" aria-label="pass rate against tokens per second, one bubble per lane"></canvas></div>
<p class="note" id="quality-missing"></p>
</section>
{_categories_html(tables)}
<section id="prompts"><h2>Per-prompt passes</h2>
<p class="note">passes/attempts for each prompt and lane. Click a cell to see its attempts: the answer, tool calls, the check's reason{", transcript" if payload["has_journal"] else ""}.</p>
{_matrix_html(tables)}
<div id="detail" hidden></div>
</section>
<section id="telemetry"><h2>Telemetry</h2>
{_table(tables.telemetry_header, tables.telemetry, "telemetry")}
<div class="charts">
<div class="chart"><h3>GPU utilisation over time</h3><p class="note" id="gpu-empty"></p><canvas id="chart-gpu" role="img" aria-label="GPU utilisation over time per lane"></canvas></div>
<div class="chart"><h3>Memory in use over time</h3><p class="note" id="mem-empty"></p><canvas id="chart-mem" role="img" aria-label="memory in use over time per lane"></canvas></div>
</div>
</section>
<section id="latency"><h2>Latency</h2>
{_table(tables.latency_header, tables.latency, "latency")}
<div class="chart"><h3>Latency distribution</h3><p class="note">Share of attempts finished within a given wall time (left and steep = fast and predictable).</p>
<canvas id="chart-latency" role="img" aria-label="cumulative distribution of attempt wall times per lane"></canvas></div>
</section>
{cost_html(tables)}
{sweeps_html(tables)}
<footer>hermes-bench · {len(lane_list)} scorecards · self-contained page: nothing is loaded from the network · charts: Chart.js (MIT)</footer>
</main>"""
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>\n"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{_esc(title)}</title>\n<style>{css()}</style>\n</head>\n<body>{sanitise_text(body)}\n"
        f'<script type="application/json" id="hbench-data">{json_for_script(payload)}</script>\n'
        f"<script>{lib}</script>\n<script>{app}</script>\n</body></html>\n"
    )


def write_page(scorecards: list[Scorecard], out_dir: Path, context: dict[str, Any],
               journal: dict[tuple[str, str, int], dict[str, Any]]) -> Path:
    """Build the tables, render report.html into ``out_dir`` and return its path."""
    tables = build_tables(list(scorecards), allow_mixed=bool(context.get("allow_mixed")),
                          prefer=str(context.get("prefer") or "memory"))
    payload = build_payload(tables, journal, context.get("suite"))
    page = render_html(tables, payload, trends=trends_html(list(scorecards)))
    path = write_text_atomic(Path(out_dir) / "report.html", page)  # render_html sanitises
    get_logger().info("report.written", reporter="html", path=str(path), bytes=len(page))
    return path
