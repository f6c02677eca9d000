"""Built-in reporters (one module per reporter). Registered by the hookimpl below."""

from __future__ import annotations

from hbench import hookimpl


@hookimpl
def hbench_register_reporters(register):  # noqa: ANN001, ANN201
    from hbench.plugins.reporters import json_scorecard, report_html, review_md, summary_md

    for module in (json_scorecard, summary_md, report_html, review_md):
        register(module.reporter)
