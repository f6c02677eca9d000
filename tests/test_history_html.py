"""The run database's pages in a real headless Chromium (the DevTools client of
tests/test_report_html.py): ``hbench compare --html`` and the trend in report.html. No
console error, no network request, the tables and charts drawn, untrusted text inert.
Skipped with a reason when Chromium is not installed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from test_report_html import CHROMIUM, DATA, INJECT, Browser, console_errors, open_page, requests_made, screenshot

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (Debian: apt-get install -y chromium)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.close()


def load(b: Browser, path: Path) -> None:
    b.events.clear()
    b.call("Emulation.setDeviceMetricsOverride", session=True, width=1360, height=900, deviceScaleFactor=1,
           mobile=False)
    b.call("Page.navigate", session=True, url=path.resolve().as_uri())
    b.wait_event("Page.loadEventFired")
    time.sleep(0.2)


def _card(name: str, verdicts: dict[str, bool]) -> dict:
    return {"schema": "hbench.scorecard/1", "lane": {"name": name, "served_model": "m", "fingerprint": "f"},
            "suite": {"name": "s", "version": "1", "sha256": "x"}, "core_pass": sum(verdicts.values()),
            "core_n": len(verdicts), "pass_rate": sum(verdicts.values()) / len(verdicts), "pass_rate_ci95": [0.2, 0.8],
            "prompts": [{"id": p, "core": True, "runs": 3, "majority_pass": v} for p, v in verdicts.items()]}


def test_compare_page_renders_inert_and_offline(browser, tmp_path) -> None:
    from hbench.plugins.history.compare import compare
    from hbench.plugins.history.html import compare_page

    ids = ["ground-freight", "compute-march", INJECT, "trap-timeout"]
    a = {"good": _card("good", dict.fromkeys(ids, True)), INJECT: _card(INJECT, dict.fromkeys(ids, False))}
    b = {"good": _card("good", {p: p != "compute-march" for p in ids}), INJECT: _card(INJECT, dict.fromkeys(ids, True))}
    page = tmp_path / "compare.html"
    page.write_text(compare_page(compare("run-a", a, "run-b", b)))
    load(browser, page)
    assert console_errors(browser) == []
    assert requests_made(browser, page) == []
    assert browser.js("window.__pwned === undefined")
    rows = browser.js("[...document.querySelectorAll('table.compare tbody tr')].map(r => [...r.cells].map(c => c.innerText))")
    assert [r[0] for r in rows] == ["good", INJECT]  # the injected lane name shows as text
    assert rows[0][1] == "REGRESSION" and rows[0][8] == "compute-march" and rows[0][2:5] == ["4/4", "3/4", "-1"]
    assert rows[1][1] == "better" and INJECT in rows[1][9]
    assert browser.js("getComputedStyle(document.querySelector('tr.bad td')).backgroundColor") != "rgba(0, 0, 0, 0)"
    assert "lost core prompt compute-march" in browser.js("document.getElementById('details').innerText")
    assert screenshot(browser, tmp_path / "compare.png").stat().st_size > 10_000


def test_report_trend_chart_drawn_from_the_run_database(browser, tmp_path, monkeypatch) -> None:
    from hbench.plugin_manager import get_registries
    from hbench.plugins.history import db
    from hbench.plugins.history.store import write_lane
    from hbench.report import load_scorecard

    monkeypatch.setenv("HBENCH_DB", str(tmp_path / "h.sqlite"))
    monkeypatch.setenv("HBENCH_HISTORY", "1")
    names = ["llamacpp-qwen3-8b", "vllm-gptoss-20b"]
    raw = {n: json.loads((DATA / f"{n}.json").read_text()) for n in names}
    for i, core in enumerate((1, 3, 2)):  # three earlier runs of the llama.cpp lane; vllm is new
        c = json.loads(json.dumps(raw[names[0]]))
        when = f"2026-0{i + 1}-01T10:00:00+0000"
        c["provenance"].update(run_id=f"old{i}", run_started_at=when, started_at=when, finished_at=when)
        c["core_pass"] = core
        write_lane(db.engine_for(), c)
    write_lane(db.engine_for(), raw[names[0]])
    cards = [load_scorecard(DATA / f"{n}.json") for n in names]
    (path,) = get_registries().reporters.get("html").write(cards, tmp_path, {"journal": None, "suite": None,
                                                                             "allow_mixed": False})
    db.dispose_all()
    open_page(browser, path)
    assert console_errors(browser) == []
    assert requests_made(browser, path) == []
    lanes = browser.js("[...document.querySelectorAll('#trends tbody tr')].map(r => r.dataset.lane)")
    assert lanes == [names[0]]  # the lane seen for the first time gets no (empty) chart
    boxes = browser.js("[...document.querySelectorAll('#trends svg.trend polyline')].map(p => "
                       "{const b = p.getBoundingClientRect(); return [b.width, b.height, p.points.length];})")
    assert len(boxes) == 2 and all(w > 100 and pts == 4 for w, _h, pts in boxes)
    assert boxes[0][1] > 10  # core_pass moved (1 -> 3 -> 2 -> 4): the line is not flat
    assert "1/4 → 4/4" in browser.js("document.querySelector('#trends').innerText")
    assert screenshot(browser, tmp_path / "report-trend.png").stat().st_size > 20_000
