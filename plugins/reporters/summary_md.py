"""The ``md`` reporter: ``summary.md``, the rank table a person pastes into an issue.

The rows come from :func:`hbench.plugins.reporters.tables.build_tables` (shared with
report.html), so every report ranks the lanes the same way; the Markdown is laid out by
:func:`hbench.plugins.reporters.markdown.summary_markdown`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from hbench.logging import get_logger
from hbench.models import Scorecard
from hbench.reporters import Reporter


class MarkdownReporter(Reporter):
    name: ClassVar[str] = "md"
    default_for_report: ClassVar[bool] = True
    description: ClassVar[str] = "summary.md: rank table, per-prompt matrix, telemetry, latency"

    def write(self, scorecards: list[Scorecard], out_dir: Path, context: dict[str, Any]) -> list[Path]:
        # the renderer, imported when a report is written (listing plugins stays fast)
        from hbench.plugins.reporters.markdown import summary_markdown
        from hbench.plugins.reporters.tables import build_tables
        from hbench.report import sanitise_text, write_text_atomic

        tables = build_tables(list(scorecards), allow_mixed=bool(context.get("allow_mixed")),
                              prefer=str(context.get("prefer") or "memory"))
        text = summary_markdown(tables, fail_under=list(context.get("fail_under") or []))
        path = write_text_atomic(Path(out_dir) / "summary.md", sanitise_text(text))
        get_logger().info("report.written", reporter=self.name, path=str(path))
        return [path]


reporter = MarkdownReporter()
