"""Built-in reporters (one module per reporter). Registered by the hookimpl below."""

from __future__ import annotations

from hbench import hookimpl


@hookimpl
def hbench_register_reporters(register):  # noqa: ANN001, ANN201
    from hbench.plugins.reporters import json_scorecard

    register(json_scorecard.reporter)
