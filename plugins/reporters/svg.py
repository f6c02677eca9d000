"""What every hbench HTML page draws with: escaping, the shared stylesheet and inline SVG
charts (a sparkline, a line chart with one line per lane).

report.html and the run database's pages (``hbench compare --html``, the trend section)
both import this module and nothing of each other. The charts are server-rendered SVG:
no script, no network, readable without JavaScript, each with a ``<title>``/``<desc>``
and a data table beside it for screen readers and for copying the figures.
"""

from __future__ import annotations

import html
import math
from functools import lru_cache
from importlib import resources
from typing import Any, Sequence

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22"]


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    """A file of ``hbench.plugins.reporters``' ``assets/`` folder, as text (package data)."""
    return resources.files("hbench.plugins.reporters").joinpath(f"assets/{name}").read_text(encoding="utf-8")


def css() -> str:
    """The stylesheet of report.html, shared by every hbench page."""
    return asset("report.css")


def table(header: list[str], rows: list[list[str]], cls: str = "", numeric_from: int = 1) -> str:
    """An HTML table of display strings (escaped); columns from ``numeric_from`` on align right."""
    th = "".join(f"<th{' class=num' if i >= numeric_from else ''} scope=col>{esc(h)}</th>" for i, h in enumerate(header))
    body = []
    for row in rows:
        tds = "".join(f"<td{' class=num' if i >= numeric_from else ''}>{esc(c)}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{tds}</tr>")
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def sparkline(values: list[float], lo: float, hi: float, label: str, width: int = 220, height: int = 48) -> str:
    """An inline SVG line over ``values`` (oldest first) between ``lo`` and ``hi``; the last
    point is marked. Needs two or more values."""
    pad = 4
    n = len(values)
    span = (hi - lo) or 1.0
    pts = []
    for i, v in enumerate(values):
        x = pad + (width - 2 * pad) * (i / (n - 1) if n > 1 else 0.5)
        y = height - pad - (height - 2 * pad) * (min(max(v, lo), hi) - lo) / span
        pts.append((round(x, 1), round(y, 1)))
    poly = " ".join(f"{x},{y}" for x, y in pts)
    lx, ly = pts[-1]
    return (f'<svg class="trend" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{esc(label)}"><title>{esc(label)}</title>'
            f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#d8dde3"/>'
            f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{poly}"/>'
            f'<circle cx="{lx}" cy="{ly}" r="3.5" fill="#1f77b4"/></svg>')


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def nice_max(v: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``v`` (an axis end a person reads)."""
    if v <= 0:
        return 1.0
    k = 10 ** math.floor(math.log10(v))
    return next(m * k for m in (1, 2, 2.5, 5, 10) if m * k >= v * (1 - 1e-9))


def _tick(v: float) -> str:
    if v >= 10_000 and v % 1000 == 0:
        return f"{v / 1000:g}k"
    return str(int(v)) if v == int(v) else f"{v:.3g}"


Series = tuple[str, str, Sequence[tuple[float, float | None]]]  # (lane, colour, [(x, y)])


def line_chart(chart_id: str, title: str, desc: str, x_label: str, y_label: str, series: Sequence[Series],
               width: int = 520, height: int = 280) -> str:
    """An inline SVG line chart, one line per series (a lane), points marked; a point whose y
    is unknown is left out (the line joins its neighbours). ``title`` and ``desc`` are
    what a screen reader announces. Each line carries ``data-lane``, each point
    ``data-lane``/``data-x``/``data-y`` (the figures as measured, not the pixels)."""
    left, right, top, bottom = 58, 24, 12, 44
    pw, ph = width - left - right, height - top - bottom
    clean = [(name, colour, [(x, y) for x, y in pts if _finite(x) is not None and _finite(y) is not None])
             for name, colour, pts in series]
    xs = [x for _, _, pts in clean for x, _ in pts]
    ys = [y for _, _, pts in clean for _, y in pts]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_hi = nice_max(max(ys) if ys else 1.0)

    def px(x: float) -> float:
        return round(left + pw * (x - x_lo) / (x_hi - x_lo), 1)

    def py(y: float) -> float:
        return round(top + ph - ph * max(0.0, y) / y_hi, 1)

    tid, did = f"{chart_id}-title", f"{chart_id}-desc"
    out = [f'<svg id="{esc(chart_id)}" class="linechart" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="{esc(tid)} {esc(did)}">',
           f'<title id="{esc(tid)}">{esc(title)}</title><desc id="{esc(did)}">{esc(desc)}</desc>']
    for i in range(5):  # horizontal grid and y ticks
        v = y_hi * i / 4
        out.append(f'<line x1="{left}" y1="{py(v)}" x2="{left + pw}" y2="{py(v)}" stroke="#e6e9ed"/>'
                   f'<text x="{left - 6}" y="{py(v) + 4}" text-anchor="end" font-size="11" fill="#5b6570">'
                   f"{_tick(v)}</text>")
    for x in sorted(set(xs)):  # x ticks at the measured values
        out.append(f'<line x1="{px(x)}" y1="{top + ph}" x2="{px(x)}" y2="{top + ph + 4}" stroke="#5b6570"/>'
                   f'<text x="{px(x)}" y="{top + ph + 16}" text-anchor="middle" font-size="11" fill="#5b6570">'
                   f"{_tick(x)}</text>")
    out.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#5b6570"/>'
               f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#5b6570"/>'
               f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle" font-size="12">{esc(x_label)}</text>'
               f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12">'
               f"{esc(y_label)}</text>")
    for name, colour, pts in clean:
        if not pts:
            continue
        pts = sorted(pts)
        poly = " ".join(f"{px(x)},{py(y)}" for x, y in pts)
        out.append(f'<g class="series" data-lane="{esc(name)}"><polyline fill="none" stroke="{esc(colour)}" '
                   f'stroke-width="2" points="{poly}"/>')
        out += [f'<circle class="pt" cx="{px(x)}" cy="{py(y)}" r="3.5" fill="{esc(colour)}" data-lane="{esc(name)}" '
                f'data-x="{x:g}" data-y="{y:g}"><title>{esc(name)}: {x:g}, {y:g}</title></circle>' for x, y in pts]
        out.append("</g>")
    out.append("</svg>")
    legend = "".join(f'<span class="legend"><span class="swatch" style="background:{esc(c)}"></span>{esc(n)}</span>'
                     for n, c, pts in clean if pts)
    return "".join(out) + f'<div class="legend-row">{legend}</div>'
