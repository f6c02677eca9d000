"""The ``md`` reporter: ``summary.md``, the rank table a person pastes into an issue.

The tables come from :func:`hbench.report.build_tables` (shared with report.html and
``hbench report``), so every report ranks the lanes the same way.
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
        from hbench.report import build_tables, sanitise_text, summary_markdown, write_text_atomic

        tables = build_tables(list(scorecards), allow_mixed=bool(context.get("allow_mixed")),
                              prefer=str(context.get("prefer") or "memory"))
        text = summary_markdown(tables, fail_under=list(context.get("fail_under") or []))
        path = write_text_atomic(Path(out_dir) / "summary.md", sanitise_text(text))
        get_logger().info("report.written", reporter=self.name, path=str(path))
        return [path]


reporter = MarkdownReporter()
