"""HTML for the run database: the ``hbench compare --html`` page and the trend charts that
report.html shows when a lane has history.

Server-rendered only (tables and inline SVG): no script runs, so the page's
Content-Security-Policy allows none; style and escaping come from the report.
"""

from __future__ import annotations

from typing import Any

from hbench.plugins.history.compare import Comparison
from hbench.plugins.reporters.svg import css, sparkline
from hbench.plugins.reporters.svg import esc as _esc
from hbench.report import sanitise_text


def _ci(ci: list[Any]) -> str:
    if len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci):
        return f"[{ci[0]:.2f}, {ci[1]:.2f}]"
    return "[n/a]"


def trends_section(trends: dict[str, list[dict[str, Any]]]) -> str:
    """report.html's "Trend" section: per lane with two or more runs in the run database,
    core_pass and pass_rate over its last runs. Empty (no section) when no lane has history."""
    rows = []
    for lane, pts in trends.items():
        if len(pts) < 2:
            continue  # a lane seen for the first time: no empty chart
        core_n = max((p["core_n"] or 0) for p in pts) or 1
        cores = [float(p["core_pass"] or 0) for p in pts]
        rates = [float(p["pass_rate"] or 0.0) for p in pts]
        first, last = pts[0], pts[-1]
        rows.append(
            f'<tr data-lane="{_esc(lane)}"><td>{_esc(lane)}</td><td class="num">{len(pts)}</td>'
            f"<td>{sparkline(cores, 0, core_n, f'{lane}: core_pass over {len(pts)} runs')}"
            f'<div class="note">{first["core_pass"]}/{first["core_n"]} → {last["core_pass"]}/{last["core_n"]}</div></td>'
            f"<td>{sparkline(rates, 0.0, 1.0, f'{lane}: pass_rate over {len(pts)} runs')}"
            f'<div class="note">{first["pass_rate"]:.2f} → {last["pass_rate"]:.2f}</div></td>'
            f'<td>{_esc(first["finished_at"])} → {_esc(last["finished_at"])}</td></tr>')
    if not rows:
        return ""
    return ('<section id="trends"><h2>Trend</h2>\n<p class="note">Each lane\'s core_pass and pass_rate over its last '
            "runs of this suite, from the run database (oldest left; the dot is the latest). "
            "<code>hbench compare LANE@-1 LANE@latest</code> says which prompts changed.</p>\n"
            '<table class="trends"><thead><tr><th>Lane</th><th>runs</th><th>core_pass</th><th>pass_rate</th>'
            "<th>when</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></section>")


def compare_page(cmp: Comparison) -> str:
    csp = ("default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src 'none'; "
           "connect-src 'none'; base-uri 'none'; form-action 'none'")
    head = ["Lane", "verdict", "core_pass A", "core_pass B", "Δ core", "pass_rate A [95%]", "pass_rate B [95%]",
            "Δ pass_rate", "passed → failed", "failed → passed", "p (McNemar exact)"]
    rows = []
    for d in cmp.lanes:
        verdict = "REGRESSION" if d.regression else ("better" if d.better and not d.worse else "no regression")
        cls = "bad" if d.regression else ("good" if verdict == "better" else "")
        rows.append(
            f'<tr class="{cls}" data-lane="{_esc(d.lane)}"><td>{_esc(d.lane)}</td><td class="verdict">{verdict}</td>'
            f'<td class="num">{d.a_core_pass}/{d.a_core_n}</td><td class="num">{d.b_core_pass}/{d.b_core_n}</td>'
            f'<td class="num">{d.d_core_pass:+d}</td>'
            f'<td class="num">{d.a_pass_rate:.2f} {_ci(d.a_ci95)}</td><td class="num">{d.b_pass_rate:.2f} {_ci(d.b_ci95)}</td>'
            f'<td class="num">{d.d_pass_rate:+.2f}</td>'
            f'<td class="flips worse">{_esc(", ".join(d.worse)) or "–"}</td>'
            f'<td class="flips better">{_esc(", ".join(d.better)) or "–"}</td>'
            f'<td class="num">{d.p_value:.3g}</td></tr>')
    table = ('<table class="compare"><thead><tr>' + "".join(f"<th>{_esc(h)}</th>" for h in head)
             + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>") if rows else \
        '<p class="warn">No lane is on both sides.</p>'
    details = []
    for d in cmp.lanes:
        items = [f"<li><b>{_esc(r)}</b></li>" for r in d.reasons] + [f"<li>{_esc(n)}</li>" for n in d.notes]
        if items:
            details.append(f"<h3>{_esc(d.lane)}</h3><ul>{''.join(items)}</ul>")
    only = []
    if cmp.only_a:
        only.append(f"<p class=\"note\">Only in A: {_esc(', '.join(cmp.only_a))}</p>")
    if cmp.only_b:
        only.append(f"<p class=\"note\">Only in B: {_esc(', '.join(cmp.only_b))}</p>")
    n_reg = sum(d.regression for d in cmp.lanes)
    headline = (f"{n_reg} of {len(cmp.lanes)} lanes regressed" if n_reg else
                f"No regression in {len(cmp.lanes)} lane{'s' if len(cmp.lanes) != 1 else ''}")
    title = f"hbench compare {cmp.a} → {cmp.b}"
    body = f"""
<header><h1>{_esc(title)}</h1><div class="meta">A = {_esc(cmp.a)} · B = {_esc(cmp.b)} · test: {_esc(cmp.test)}, alpha {cmp.alpha}</div></header>
<main>
<p class="headline" id="headline">{_esc(headline)}</p>
<section id="lanes"><h2>Lanes</h2>
<p class="note">A lane regressed when it is significantly worse (McNemar exact test on the per-prompt majority verdicts of the prompts both sides ran: p &lt; alpha, more prompts passed → failed than failed → passed) or lost a core prompt.</p>
{table}
{''.join(only)}
</section>
<section id="details"><h2>Details</h2>{''.join(details) or '<p class="note">Nothing else to say.</p>'}</section>
<footer>hermes-bench · self-contained page: nothing is loaded from the network</footer>
</main>"""
    return ("<!doctype html>\n<html lang=en><head><meta charset=utf-8>\n"
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="referrer" content="no-referrer">\n'
            f"<title>{_esc(title)}</title>\n<style>{css()}\ntr.bad td{{background:var(--bad)}}tr.good td{{background:var(--good)}}"
            f"</style>\n</head>\n<body>{sanitise_text(body)}\n</body></html>\n")
