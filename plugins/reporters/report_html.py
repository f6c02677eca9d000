"""The ``html`` reporter: ``report.html``, one self-contained file that needs no network.

What it shows: the rank table (server-rendered, readable without JavaScript), quality vs
throughput (pass rate against tok/s, bubble area = peak memory, whiskers = the 95%
interval), the per-prompt matrix (click a cell for that prompt's attempts: answer, tool
calls, the check's why and, when the run's journal is at hand, the transcript),
telemetry over time per lane, and the latency distribution. Charts use Chart.js,
vendored in ``assets/`` and inlined.

Everything a model wrote is untrusted. Server-rendered text goes through
:func:`html.escape`; the data island is JSON with ``<``, ``>``, ``&`` and U+2028/9
escaped; the page's script builds the attempt view with ``textContent`` only; and the
Content-Security-Policy allows no remote load and runs only the two scripts whose
sha256 it lists, so even an injected ``<script>`` would not execute.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from hbench.limits import loads_json
from hbench.logging import get_logger
from hbench.models import Scorecard
from hbench.reporters import Reporter

#: longest text (answer, message, tool result) kept per item in the page
MAX_TEXT = 20_000
#: most telemetry points drawn per lane (series are thinned evenly beyond this)
MAX_POINTS = 600
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22"]


def _node_sub(t: Any, lane: str) -> str:
    """`` · on NODE`` under a lane's name when it ran on a named node (its telemetry is that node's)."""
    node = (t.scorecards[lane].provenance or {}).get("node")
    return f" · on {_esc(node)}" if node else ""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


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


# --------------------------------------------------------------------------- journal


def read_journal(path: Path | None) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Transcripts and tool calls by (lane, prompt id, attempt n). The last record of an
    attempt wins (a resumed run may repeat one); unreadable lines are skipped with a log."""
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    if path is None or not Path(path).is_file():
        return out
    bad = 0
    with Path(path).open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = loads_json(line)  # deep nesting: skipped as unreadable, never a RecursionError
            except ValueError:
                bad += 1
                continue
            if not isinstance(rec, dict):
                continue
            att = rec.get("attempt") if isinstance(rec.get("attempt"), dict) else rec
            lane, pid, n = att.get("lane"), att.get("prompt_id"), att.get("n")
            if not isinstance(lane, str) or not isinstance(pid, str) or not isinstance(n, int):
                continue
            out[(lane, pid, n)] = att
    if bad:
        get_logger().warning("report.journal_unreadable_lines", path=str(path), lines=bad)
    return out


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
    from hbench.report import lane_name, peak_memory_gb

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


def _table(header: list[str], rows: list[list[str]], cls: str = "", numeric_from: int = 1) -> str:
    th = "".join(f"<th{' class=num' if i >= numeric_from else ''} scope=col>{_esc(h)}</th>" for i, h in enumerate(header))
    body = []
    for row in rows:
        tds = "".join(f"<td{' class=num' if i >= numeric_from else ''}>{_esc(c)}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{tds}</tr>")
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _rank_html(t: Any) -> str:
    from hbench.report import RANK_HEADER, lane_cell, tie_lines

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
    from hbench.report import category_cell

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


CSS = """
:root{--fg:#1b1f24;--muted:#5b6570;--line:#d8dde3;--bg:#fff;--soft:#f5f7fa;--good:#d9f2e1;--mid:#fff1c7;--bad:#fbdcdc}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg);margin:0}
header{padding:18px 28px 10px;border-bottom:1px solid var(--line);background:var(--soft)}
header h1{margin:0 0 4px;font-size:22px}
header .meta{color:var(--muted)}
main{padding:8px 28px 40px;max-width:1400px}
h2{font-size:18px;margin:26px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px}
th,td{border:1px solid var(--line);padding:5px 9px;text-align:left;vertical-align:top}
thead th{background:var(--soft);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.rank{font-weight:700;text-align:center;white-space:nowrap}
.sub{color:var(--muted);font-size:12px}
.note{color:var(--muted);margin:4px 0}
ul.note{margin-top:0}
.headline{font-size:16px;margin:14px 0 0;padding:10px 14px;border-left:4px solid #1f77b4;background:var(--soft)}
.warn{background:var(--mid);padding:8px 12px;border-radius:4px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px;vertical-align:baseline}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:18px}
.chart{border:1px solid var(--line);border-radius:6px;padding:10px 12px}
.chart h3{margin:0 0 2px}
.chart canvas{width:100%!important;height:320px!important}
.matrix td.cell{padding:0;text-align:center}
.matrix td.cell button{all:unset;box-sizing:border-box;display:block;width:100%;text-align:center;padding:5px 12px;cursor:pointer;font-variant-numeric:tabular-nums;min-width:44px}
.matrix td.cell button:focus-visible{outline:2px solid #1f77b4}
.matrix td.cell button:hover{text-decoration:underline}
.matrix td.good{background:var(--good)}.matrix td.mid{background:var(--mid)}.matrix td.bad{background:var(--bad)}
.matrix td.na{color:var(--muted)}
.matrix td.selected{outline:3px solid #1f77b4;outline-offset:-3px}
th.prompt{font-weight:600;background:var(--bg)}
.tag{font-size:11px;font-weight:500;border:1px solid var(--line);border-radius:3px;padding:0 4px;color:var(--muted)}
.tag.gate{border-color:#d62728;color:#d62728}
#detail{border:1px solid var(--line);border-radius:6px;padding:10px 14px;margin-top:8px;background:var(--soft)}
#detail details{background:var(--bg);border:1px solid var(--line);border-radius:4px;margin:6px 0;padding:4px 10px}
#detail summary{cursor:pointer}
pre{white-space:pre-wrap;word-break:break-word;background:#fbfbfc;border:1px solid var(--line);padding:6px 8px;margin:4px 0;max-height:360px;overflow:auto;font-size:12.5px}
.pass{color:#137333;font-weight:600}.fail{color:#b3261e;font-weight:600}
.role{font-weight:600;font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.03em}
footer{color:var(--muted);font-size:12px;margin-top:30px}
"""

APP_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("hbench-data").textContent);
  var byName = {};
  data.lanes.forEach(function (l) { byName[l.name] = l; });
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function pct(x) { return x === null || x === undefined ? "–" : (x * 100).toFixed(0) + "%"; }
  function fmt(x, d) { return x === null || x === undefined ? "–" : Number(x).toFixed(d); }
  function note(id, text) { var n = document.getElementById(id); if (n) n.textContent = text; }

  // ------------------------------------------------------------- attempts view
  var detail = document.getElementById("detail");
  function showCell(lane, pid, td) {
    var cell = (data.cells[lane] || {})[pid];
    var prompt = data.prompts.filter(function (p) { return p.id === pid; })[0] || {};
    detail.replaceChildren();
    document.querySelectorAll("td.selected").forEach(function (x) { x.classList.remove("selected"); });
    if (td) td.classList.add("selected");
    detail.hidden = false;
    if (!cell) { detail.appendChild(el("p", null, "No attempts.")); return; }
    detail.appendChild(el("h3", null, pid + " on " + lane + ": " + cell.passes + "/" + cell.runs + " passed" + (cell.errored ? " (" + cell.errored + " errored, not scored)" : "")));
    if (prompt.text) { detail.appendChild(el("div", {"class": "role"}, "prompt")); detail.appendChild(el("pre", null, prompt.text)); }
    if (cell.skipped) detail.appendChild(el("p", {"class": "warn"}, "Skipped: " + cell.skipped));
    if (!data.has_journal) detail.appendChild(el("p", {"class": "note"},
      "Transcripts not included: this report was built from scorecards alone (the run's journal.jsonl holds them)."));
    else if (cell.attempts.length > 3) detail.appendChild(el("p", {"class": "note"}, "Failed attempts are open; click an attempt to expand it."));
    cell.attempts.forEach(function (a) {
      var d = el("details", {"class": "attempt"});
      if (cell.attempts.length <= 3 || !a.passed) d.open = true;
      var s = el("summary");
      s.appendChild(el("span", {"class": a.passed ? "pass" : "fail"}, "Attempt " + a.n + ": " + (a.passed ? "pass" : "fail")));
      var bits = [fmt(a.wall_s, 1) + " s", "tools: " + (a.tools.length ? a.tools.join(", ") : "none")];
      if (a.runaway) bits.push("runaway: " + a.runaway);
      if (a.error) bits.push("error: " + a.error);
      s.appendChild(document.createTextNode("  ·  " + bits.join("  ·  ")));
      d.appendChild(s);
      d.appendChild(el("div", {"class": "role"}, "check"));
      d.appendChild(el("p", null, a.why || "(the check gave no reason)"));
      d.appendChild(el("div", {"class": "role"}, "answer"));
      d.appendChild(el("pre", {"class": "answer"}, a.answer || "(empty answer)"));
      if (a.tool_calls.length) {
        d.appendChild(el("div", {"class": "role"}, "tool calls"));
        a.tool_calls.forEach(function (c) {
          var head = c.name + "(" + c.arguments + ")" + (c.ok ? "" : "  [" + (c.format_error ? "format error" : "error") + "]");
          d.appendChild(el("pre", {"class": "toolcall"}, head + (c.error ? "\n→ " + c.error : (c.result ? "\n→ " + c.result : ""))));
        });
      }
      if (a.transcript.length) {
        d.appendChild(el("div", {"class": "role"}, "transcript"));
        a.transcript.forEach(function (m) {
          var w = el("div", {"class": "msg"});
          w.appendChild(el("div", {"class": "role"}, m.role + (m.name ? " · " + m.name : "")));
          if (m.reasoning) w.appendChild(el("pre", {"class": "reasoning"}, "(reasoning) " + m.reasoning));
          w.appendChild(el("pre", null, m.content));
          d.appendChild(w);
        });
      } else if (data.has_journal) {
        d.appendChild(el("p", {"class": "note"}, "No transcript for this attempt in the journal."));
      }
      detail.appendChild(d);
    });
  }
  document.querySelectorAll("#matrix button[data-lane]").forEach(function (b) {
    b.addEventListener("click", function () { showCell(b.getAttribute("data-lane"), b.getAttribute("data-prompt"), b.parentNode); });
  });

  // ------------------------------------------------------------- charts
  if (typeof Chart === "undefined") { note("chart-status", "Charts unavailable: Chart.js did not load."); return; }
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  var charts = window.hbenchCharts = {};

  // quality vs throughput: bubbles with 95% CI whiskers and lane labels
  var placed = data.lanes.filter(function (l) { return l.tok_s !== null && l.pass_rate !== null; });
  var missing = data.lanes.filter(function (l) { return l.tok_s === null || l.pass_rate === null; });
  var maxMem = Math.max.apply(null, placed.map(function (l) { return l.mem_gb || 0; }).concat([1]));
  function radius(l) { return l.mem_gb ? 5 + 25 * Math.sqrt(l.mem_gb / maxMem) : 5; }
  var whiskers = {
    id: "hbenchWhiskers",
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx, xs = chart.scales.x, ys = chart.scales.y;
      chart.data.datasets.forEach(function (ds, i) {
        var l = ds.lane, meta = chart.getDatasetMeta(i);
        if (!meta.data.length) return;
        var x = xs.getPixelForValue(l.tok_s);
        ctx.save();
        ctx.strokeStyle = l.color; ctx.lineWidth = 1.5;
        if (l.ci[0] !== null && l.ci[1] !== null) {
          var y0 = ys.getPixelForValue(l.ci[0] * 100), y1 = ys.getPixelForValue(l.ci[1] * 100);
          ctx.beginPath(); ctx.moveTo(x, y0); ctx.lineTo(x, y1);
          ctx.moveTo(x - 5, y0); ctx.lineTo(x + 5, y0); ctx.moveTo(x - 5, y1); ctx.lineTo(x + 5, y1); ctx.stroke();
        }
        ctx.fillStyle = "#1b1f24"; ctx.font = "12px " + Chart.defaults.font.family; ctx.textBaseline = "middle";
        var label = l.name + (l.rank === null ? " (not ranked)" : " (#" + l.rank + ")");
        var r = radius(l), tx = x + r + 6, w = ctx.measureText(label).width;
        if (tx + w > xs.right) tx = x - r - 6 - w;
        ctx.fillText(label, tx, ys.getPixelForValue(l.pass_rate * 100));
        ctx.restore();
      });
    }
  };
  var maxTok = Math.max.apply(null, placed.map(function (l) { return l.tok_s; }).concat([1]));
  charts.quality = new Chart(document.getElementById("chart-quality"), {
    type: "bubble",
    data: { datasets: placed.map(function (l) {
      return { label: l.name, lane: l, data: [{ x: l.tok_s, y: l.pass_rate * 100, r: radius(l) }],
               backgroundColor: l.color + (l.rank === null ? "33" : "99"), borderColor: l.color,
               borderWidth: l.rank === null ? 1 : 2 };
    }) },
    options: {
      layout: { padding: { right: 10, top: 10 } },
      scales: {
        x: { min: 0, suggestedMax: maxTok * 1.25, title: { display: true, text: "decode throughput (tok/s, higher = faster)" } },
        y: { min: 0, max: 100, title: { display: true, text: "pass rate % (whisker = 95% interval)" } }
      },
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { label: function (c) {
          var l = c.dataset.lane;
          return [l.name + (l.model ? " · " + l.model : ""), "pass rate " + pct(l.pass_rate) + " [" + pct(l.ci[0]) + "–" + pct(l.ci[1]) + "]",
                  fmt(l.tok_s, 1) + " tok/s", "peak memory " + (l.mem_gb === null ? "unknown" : fmt(l.mem_gb, 1) + " GB")];
        } } }
      }
    },
    plugins: [whiskers]
  });
  note("quality-missing", missing.length ? "Not plotted (no throughput or pass-rate figure): " +
       missing.map(function (l) { return l.name; }).join(", ") : "");

  // per category: pass rate, lanes side by side
  var cats = data.categories || { names: [], lanes: {} };
  if (cats.names.length && document.getElementById("chart-categories")) {
    charts.categories = new Chart(document.getElementById("chart-categories"), {
      type: "bar",
      data: { labels: cats.names, datasets: data.lanes.map(function (l) {
        return { label: l.name, backgroundColor: l.color + "cc", borderColor: l.color, borderWidth: 1,
                 data: cats.names.map(function (c) { var f = (cats.lanes[l.name] || {})[c]; return f ? f.pass_rate * 100 : null; }) };
      }) },
      options: {
        scales: { y: { min: 0, max: 100, title: { display: true, text: "pass rate % (mean over the category's prompts)" } } },
        plugins: { legend: { position: "bottom" }, tooltip: { callbacks: { label: function (c) {
          var f = (cats.lanes[c.dataset.label] || {})[cats.names[c.dataIndex]] || {};
          return c.dataset.label + ": " + pct(f.pass_rate) + (f.core_n ? " · core " + f.core_pass + "/" + f.core_n : "");
        } } } }
      }
    });
  }

  // telemetry over time
  function lineSets(key) {
    return data.lanes.filter(function (l) { return (data.series[l.name] || []).some(function (p) { return p[key] !== null; }); })
      .map(function (l) {
        return { label: l.name, borderColor: l.color, backgroundColor: l.color, borderWidth: 1.5, spanGaps: true,
                 pointRadius: data.series[l.name].length < 3 ? 3 : 0,
                 data: data.series[l.name].map(function (p) { return { x: p.t, y: p[key] }; }) };
      });
  }
  function lineChart(id, key, ytitle, ymax, emptyId) {
    var sets = lineSets(key);
    if (!sets.length) { note(emptyId, "No lane reported this reading (see each scorecard's telemetry.probes for why)."); }
    charts[id] = new Chart(document.getElementById(id), {
      type: "line", data: { datasets: sets },
      options: { parsing: false, normalized: true,
        scales: { x: { type: "linear", min: 0, title: { display: true, text: "seconds since the lane started" } },
                  y: { min: 0, max: ymax, title: { display: true, text: ytitle } } },
        plugins: { legend: { position: "bottom" } } }
    });
  }
  lineChart("chart-gpu", "gpu_util", "GPU utilisation %", 100, "gpu-empty");
  lineChart("chart-mem", "mem_gb", "memory in use (GB)", undefined, "mem-empty");

  // latency distribution: share of attempts finished within t seconds
  var latSets = data.lanes.filter(function (l) { return (data.walls[l.name] || []).length; }).map(function (l) {
    var w = data.walls[l.name], n = w.length;
    var pts = [{ x: 0, y: 0 }];
    w.forEach(function (v, i) { pts.push({ x: v, y: (i + 1) / n * 100 }); });
    return { label: l.name, borderColor: l.color, backgroundColor: l.color, stepped: "before", pointRadius: 0, borderWidth: 1.5, data: pts };
  });
  charts.latency = new Chart(document.getElementById("chart-latency"), {
    type: "line", data: { datasets: latSets },
    options: { parsing: false,
      scales: { x: { type: "linear", min: 0, title: { display: true, text: "attempt wall time (s)" } },
                y: { min: 0, max: 100, title: { display: true, text: "% of attempts finished within" } } },
      plugins: { legend: { position: "bottom" } } }
  });
  document.body.setAttribute("data-charts", "ready");
})();
"""


def _script_hash(body: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode() + "'"


def chart_js() -> str:
    js = resources.files("hbench.plugins.reporters").joinpath("assets/chart.umd.min.js").read_text(encoding="utf-8")
    if "</script" in js.lower():  # pragma: no cover - a vendored update must not break the page
        raise RuntimeError("assets/chart.umd.min.js contains '</script'; it cannot be inlined")
    return js


def render_html(tables: Any, payload: dict[str, Any], title: str = "hermes-bench report", trends: str = "") -> str:
    """The page. ``trends``: the server-rendered "Trend" section (from the run database), or ""."""
    from hbench.report import LATENCY_HEADER, TELEMETRY_HEADER, headline, host_name, sanitise_payload, sanitise_text

    payload = sanitise_payload(payload)
    lib = chart_js()
    app = APP_JS
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
{_table(TELEMETRY_HEADER, tables.telemetry, "telemetry")}
<div class="charts">
<div class="chart"><h3>GPU utilisation over time</h3><p class="note" id="gpu-empty"></p><canvas id="chart-gpu" role="img" aria-label="GPU utilisation over time per lane"></canvas></div>
<div class="chart"><h3>Memory in use over time</h3><p class="note" id="mem-empty"></p><canvas id="chart-mem" role="img" aria-label="memory in use over time per lane"></canvas></div>
</div>
</section>
<section id="latency"><h2>Latency</h2>
{_table(LATENCY_HEADER, tables.latency, "latency")}
<div class="chart"><h3>Latency distribution</h3><p class="note">Share of attempts finished within a given wall time (left and steep = fast and predictable).</p>
<canvas id="chart-latency" role="img" aria-label="cumulative distribution of attempt wall times per lane"></canvas></div>
</section>
<footer>hermes-bench · {len(lane_list)} scorecards · self-contained page: nothing is loaded from the network · charts: Chart.js (MIT)</footer>
</main>"""
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>\n"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{_esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>{sanitise_text(body)}\n"
        f'<script type="application/json" id="hbench-data">{json_for_script(payload)}</script>\n'
        f"<script>{lib}</script>\n<script>{app}</script>\n</body></html>\n"
    )


def _trends(scorecards: list[Scorecard]) -> str:
    """Each lane's core_pass and pass_rate over its last runs, when the run database has them."""
    from hbench.plugins.history.trends import trends_html  # a built-in plugin: always installed

    return trends_html(list(scorecards))


class HtmlReporter(Reporter):
    name: ClassVar[str] = "html"
    default_for_report: ClassVar[bool] = True
    description: ClassVar[str] = "report.html: one self-contained page with the table, charts and transcripts"

    def write(self, scorecards: list[Scorecard], out_dir: Path, context: dict[str, Any]) -> list[Path]:
        from hbench.report import build_tables, write_text_atomic

        tables = build_tables(list(scorecards), allow_mixed=bool(context.get("allow_mixed")),
                              prefer=str(context.get("prefer") or "memory"))
        journal = read_journal(context.get("journal"))
        payload = build_payload(tables, journal, context.get("suite"))
        page = render_html(tables, payload, trends=_trends(scorecards))
        path = write_text_atomic(Path(out_dir) / "report.html", page)  # render_html sanitises
        get_logger().info("report.written", reporter=self.name, path=str(path), bytes=len(page))
        return [path]


reporter = HtmlReporter()
