"""Built-in reporters (one module per reporter). Registered by the hookimpl below, by class
(hbench keeps one instance of each)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbench import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from hbench.hookspecs import RegisterReporter


@hookimpl
def hbench_register_reporters(register: RegisterReporter) -> None:
    from hbench.plugins.reporters import json_scorecard, report_html, review_md, summary_md

    for cls in (json_scorecard.JsonReporter, summary_md.MarkdownReporter, report_html.HtmlReporter,
                review_md.ReviewReporter):
        register(cls)
