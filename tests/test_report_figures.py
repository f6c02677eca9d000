"""report.html and summary.md: the throughput sweeps drawn as inline SVG (one line per
lane, a data table beside each chart), the cost of a lane (ready_s, resting memory,
efficiency) and throttling (issue 21). Parsed, not eyeballed: every point of the page
is checked against the scorecard it came from."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import attrs
import pytest

from hbench.plugins.reporters.svg import line_chart, nice_max
from hbench.plugins.reporters.tables import build_tables, throttle_cell
from test_reporters import make_scorecard, registries

DEPTH = {"points": [
    {"depth": 0, "prompt_tokens": 20, "ttft_ms": 40.0, "prefill_tok_s": 500.0, "decode_tok_s": 50.0, "itl_p95_ms": 22.0},
    {"depth": 4096, "prompt_tokens": 4120, "ttft_ms": 900.0, "prefill_tok_s": 4578.0, "decode_tok_s": 45.0},
    {"depth": 16384, "prompt_tokens": 16410, "ttft_ms": 3500.0, "prefill_tok_s": 4689.0, "decode_tok_s": 38.5},
], "prefill_tok_s_fit": 4700.0, "cache_hits": 0}
CONC = {"points": [
    {"concurrency": 1, "per_stream_tok_s": 50.0, "aggregate_tok_s": 49.0, "ttft_ms_p50": 40.0, "streams_ok": 1, "errors": []},
    {"concurrency": 4, "per_stream_tok_s": 30.0, "aggregate_tok_s": 118.0, "ttft_ms_p50": 80.0, "streams_ok": 4, "errors": []},
    {"concurrency": 8, "per_stream_tok_s": 18.0, "aggregate_tok_s": 140.0, "ttft_ms_p50": 150.0, "streams_ok": 7,
     "errors": ["ReadTimeout: timed out"]},
]}


def swept(name: str, depth: dict[str, Any] | None = DEPTH, conc: dict[str, Any] | None = CONC, **over: Any):
    sc = make_scorecard(name, **over)
    sweeps: dict[str, Any] = {"prefix_cache_hit_rate": 0.25}
    if depth:
        sweeps["depth"] = depth
    if conc:
        sweeps["concurrency"] = conc
    return attrs.evolve(sc, throughput=attrs.evolve(sc.throughput, sweeps=sweeps))


class Svg(HTMLParser):
    """Each chart (svg.linechart) -> its title, desc, and lane -> [(x, y)] from the points."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, Any]] = {}
        self._cur: str | None = None
        self._text: str | None = None

    def handle_starttag(self, tag: str, attrs_: list[tuple[str, str | None]]) -> None:
        a = dict(attrs_)
        if tag == "svg" and "linechart" in (a.get("class") or ""):
            self._cur = a["id"]
            self.charts[self._cur] = {"series": {}, "lines": [], "role": a.get("role"),
                                      "labelledby": a.get("aria-labelledby")}
        elif self._cur and tag == "g" and a.get("class") == "series":
            self.charts[self._cur]["lines"].append(a["data-lane"])
        elif self._cur and tag == "circle" and a.get("class") == "pt":
            self.charts[self._cur]["series"].setdefault(a["data-lane"], []).append(
                (float(a["data-x"]), float(a["data-y"])))
        elif self._cur and tag in ("title", "desc") and a.get("id"):
            self._text = tag

    def handle_data(self, data: str) -> None:
        if self._cur and self._text:
            self.charts[self._cur][self._text] = data
            self._text = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._cur = None


def write(cards: list[Any], out: Path) -> tuple[str, str]:
    reg = registries()
    (html_path,) = reg.reporters.get("html").write(cards, out, {})
    (md_path,) = reg.reporters.get("md").write(cards, out, {})
    return html_path.read_text(encoding="utf-8"), md_path.read_text(encoding="utf-8")


def test_sweeps_drawn_one_line_per_lane_with_every_point(tmp_path):
    # lane b swept depth only; lane c did not sweep at all: no line, no error
    cards = [swept("lane-a"), swept("lane-b", conc=None), make_scorecard("lane-c")]
    page, md = write(cards, tmp_path)
    p = Svg()
    p.feed(page)
    assert set(p.charts) == {"sweep-ttft", "sweep-decode", "sweep-aggregate", "sweep-per-stream"}
    ttft = p.charts["sweep-ttft"]
    assert ttft["lines"] == ["lane-a", "lane-b"]
    assert ttft["series"]["lane-a"] == [(0, 40.0), (4096, 900.0), (16384, 3500.0)]
    assert p.charts["sweep-decode"]["series"]["lane-b"] == [(0, 50.0), (4096, 45.0), (16384, 38.5)]
    assert p.charts["sweep-aggregate"]["lines"] == ["lane-a"]
    assert p.charts["sweep-aggregate"]["series"]["lane-a"] == [(1, 49.0), (4, 118.0), (8, 140.0)]
    assert p.charts["sweep-per-stream"]["series"]["lane-a"] == [(1, 50.0), (4, 30.0), (8, 18.0)]
    # accessible: role img, labelled by its title and desc, which name the axes and lanes
    assert ttft["role"] == "img" and ttft["labelledby"] == "sweep-ttft-title sweep-ttft-desc"
    assert ttft["title"] == "Time to first token at growing context"
    assert "TTFT (ms)" in ttft["desc"] and "lane-a, lane-b" in ttft["desc"]
    # the data-table fallback holds every figure
    sweeps = page.split('<section id="sweeps">')[1].split("</section>")[0]
    assert sweeps.count("<tr>") == 1 + 6 + 1 + 3  # header + 6 depth rows, header + 3 concurrency rows
    assert "3500 ms" in sweeps and "7/8" in sweeps and "1 concurrent stream failed" in sweeps
    # summary.md: the same figures, compact
    part = md.split("## Throughput sweeps")[1]
    assert "| lane-a | 16384 | 16410 | 3500 ms | 4689 | 38.5 | – |" in part
    assert "| lane-a | 8 | 7/8 | 18.0 | 140.0 | 150 ms |" in part
    assert "prefill 4700 tok/s fitted across depths" in part and "server prefix-cache hit rate 25%" in part
    assert "lane-c" not in part


def test_no_sweeps_no_charts_no_section(tmp_path):
    page, md = write([make_scorecard("lane-a"), make_scorecard("lane-b")], tmp_path)
    p = Svg()
    p.feed(page)
    assert p.charts == {} and 'id="sweeps"' not in page
    assert "Throughput sweeps" not in md


def test_a_failed_sweep_says_why_without_a_chart(tmp_path):
    sc = make_scorecard("lane-a")
    sc = attrs.evolve(sc, throughput=attrs.evolve(sc.throughput, sweeps={"error": "ConnectError: refused"}))
    page, md = write([sc], tmp_path)
    assert "<svg" not in page.split('<section id="sweeps">')[1].split("</section>")[0]
    assert "sweep stopped: ConnectError: refused" in page and "sweep stopped: ConnectError: refused" in md


def test_cost_and_throttle_where_present(tmp_path):
    eff = {"s_per_solved": 12.5, "completion_tokens_per_solved": 840, "goodput": 0.8, "slo_s": 60,
           "turn_p95_s": 4.25}
    a = make_scorecard("lane-a", efficiency=eff)
    a = attrs.evolve(a, lane={**a.lane, "ready_s": 5.2, "resting_memory_gb": 27.0})
    b = make_scorecard("lane-b")  # an older scorecard: no cost figures, throttling not measured
    a = attrs.evolve(a, telemetry=attrs.evolve(a.telemetry, throttle={
        "share": 0.125, "reasons": {"thermal": 0.1, "power": 0.025}, "source": "nvml"}))
    page, md = write([a, b], tmp_path)
    assert "| lane-a | 5.2 | 27.00 GB | 12.5 | 840 | 80% (≤60 s) |" in md
    # p95 per model turn beside the attempt percentiles
    lat = md.split("## Latency")[1].split("##")[0].splitlines()
    assert lat[2] == "| Lane | p50 | p95 | max | TTFT | turn p95 |"
    assert lat[4].endswith("| 4.2 s |") and lat[5].endswith("| – |")
    assert "| lane-b |" not in md.split("## Cost")[1]
    cost = page.split('<section id="cost">')[1].split("</section>")[0]
    assert ">5.2<" in cost and ">27.00 GB<" in cost and "lane-b" not in cost
    tel = md.split("## Telemetry")[1].split("##")[0]
    assert "| throttled |" in tel.splitlines()[2]
    assert "12% (thermal 10%, power 2%)" in tel and "not measured" in tel
    assert "12% (thermal 10%, power 2%)" in page


def test_no_throttle_column_when_no_lane_measured_it():
    t = build_tables([make_scorecard("lane-a")])
    assert "throttled" not in t.telemetry_header and len(t.telemetry[0]) == len(t.telemetry_header)
    assert "turn p95" not in t.latency_header and len(t.latency[0]) == len(t.latency_header)


@pytest.mark.parametrize("th, cell", [
    ({}, "not measured"),
    ({"share": 0.0, "reasons": {}, "source": "nvml"}, "none"),
    ({"share": 0.5, "reasons": {"thermal": 0.5}, "source": "nvml"}, "50% (thermal 50%)"),
    ({"share": 0.3, "reasons": {}, "source": "nvml"}, "30%"),
])
def test_throttle_cell(th, cell):
    assert throttle_cell(th) == cell


def test_line_chart_skips_unknown_points_and_scales_to_a_round_top():
    svg = line_chart("c", "T", "D", "x", "y", [("a", "#000", [(1, 10.0), (2, None), (4, 33.0)])])
    p = Svg()
    p.feed(svg)
    assert p.charts["c"]["series"] == {"a": [(1.0, 10.0), (4.0, 33.0)]}
    assert nice_max(33.0) == 50 and nice_max(140.0) == 200 and nice_max(0.3) == pytest.approx(0.5)
    assert "<script" not in svg


def test_sweep_charts_in_a_real_browser(tmp_path):
    """Headless Chromium: the page with sweeps loads with no console error and no request,
    the Chart.js charts still draw, and each SVG chart is laid out with its points."""
    from test_report_html import CHROMIUM, Browser, console_errors, open_page, requests_made

    if CHROMIUM is None:
        pytest.skip("Chromium not installed (Debian: apt-get install -y chromium)")
    write([swept("lane-a"), swept("lane-b", conc=None), make_scorecard("lane-c")], tmp_path)
    page = tmp_path / "report.html"
    b = Browser(tmp_path / "chromium-profile")
    try:
        open_page(b, page)
        sizes = b.js("Array.from(document.querySelectorAll('svg.linechart')).map(function (s) {"
                     "var r = s.getBoundingClientRect(); return [s.id, Math.round(r.width), Math.round(r.height),"
                     " s.querySelectorAll('circle.pt').length]; })")
        assert console_errors(b) == [] and requests_made(b, page) == []
    finally:
        b.close()
    assert [s[0] for s in sizes] == ["sweep-ttft", "sweep-decode", "sweep-aggregate", "sweep-per-stream"]
    assert all(w > 200 and h > 100 for _, w, h, _ in sizes), sizes
    assert [s[3] for s in sizes] == [6, 6, 3, 3]
