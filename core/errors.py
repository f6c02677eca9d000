"""Errors a person can act on. Each carries where it happened and what to do."""

from __future__ import annotations


class HBenchError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with (DESIGN.md: 2 = bad input)."""

    exit_code = 1


class BadInput(HBenchError):
    """Bad config, suite or plugin: the message names the file, key path and the fix."""

    exit_code = 2

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or [message]


class ConfigError(BadInput):
    """``hbench.toml`` (or ``--config``) is invalid."""


class SuiteError(BadInput):
    """A suite folder is invalid; ``problems`` lists every one of them."""


class PluginError(BadInput):
    """A plugin failed to load, or two plugins registered the same name."""


class LaneError(HBenchError):
    """A lane failed to start, become ready or stay up. Exit code 1."""

    exit_code = 1
