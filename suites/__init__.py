"""Bundled suites: every sub-folder holding a suite.toml is registered under its name."""

from __future__ import annotations

from pathlib import Path

from hbench import hookimpl

HERE = Path(__file__).parent
#: the suite ``hbench run`` uses without ``--suite`` (or ``[run].suite``)
DEFAULT_SUITE = "hermes-brain"


@hookimpl
def hbench_register_suites(register):  # noqa: ANN001, ANN201
    for child in sorted(HERE.iterdir()):
        if (child / "suite.toml").is_file():
            register(child, name=child.name, default=child.name == DEFAULT_SUITE)
