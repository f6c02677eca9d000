"""Bundled suites: every sub-folder holding a suite.toml is registered under its name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pathlib import Path

from hbench import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from hbench.hookspecs import RegisterSuite


HERE = Path(__file__).parent
#: the suite ``hbench run`` uses without ``--suite`` (or ``[run].suite``)
DEFAULT_SUITE = "hermes-brain"


@hookimpl
def hbench_register_suites(register: RegisterSuite) -> None:
    for child in sorted(HERE.iterdir()):
        if (child / "suite.toml").is_file():
            register(child, name=child.name, default=child.name == DEFAULT_SUITE)
