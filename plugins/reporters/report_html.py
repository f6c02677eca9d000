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

This module is the reporter (light: imported whenever plugins load); the page is drawn
by :mod:`hbench.plugins.reporters.html_page`, with its CSS and script in ``assets/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from hbench.limits import loads_json
from hbench.logging import get_logger
from hbench.models import Scorecard
from hbench.reporters import Reporter


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


class HtmlReporter(Reporter):
    name: ClassVar[str] = "html"
    default_for_report: ClassVar[bool] = True
    description: ClassVar[str] = "report.html: one self-contained page with the table, charts and transcripts"

    def write(self, scorecards: list[Scorecard], out_dir: Path, context: dict[str, Any]) -> list[Path]:
        # the page's renderer, imported when a report is written (listing plugins stays fast)
        from hbench.plugins.reporters.html_page import write_page

        return [write_page(list(scorecards), Path(out_dir), context, read_journal(context.get("journal")))]


reporter = HtmlReporter()
