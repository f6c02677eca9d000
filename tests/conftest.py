"""Shared test setup. The scripted server and plugin fixtures come from the
``hbench.testing`` pytest plugin (entry point ``pytest11``)."""

from __future__ import annotations

import os

import pytest

# Every scorecard any test writes is validated against core/scorecard.schema.json by
# the json reporter (subprocesses inherit it too).
os.environ.setdefault("HBENCH_VALIDATE_SCORECARDS", "1")
# The run database: never the user's own. Off unless a test turns it on (tests/test_history.py
# does, against its own SQLite file or PostgreSQL database); subprocesses inherit both.
os.environ["HBENCH_HISTORY"] = "0"
os.environ["HBENCH_DB"] = os.path.join(__import__("tempfile").mkdtemp(prefix="hbench-test-db-"), "history.sqlite")
# Hermetic: only built-in plugins load, in-process and in every subprocess, whatever else
# is installed in this environment (an installed example plugin adds lanes, reporters ...).
# A test that exercises entry-point loading opts in by setting or removing the variable in
# its subprocess's environment (tests/test_plugins.py, tests/test_hook_contract.py).
os.environ["HBENCH_LOAD_PLUGINS"] = ""

from hbench.plugin_manager import reset_plugins


@pytest.fixture(autouse=True)
def _fresh_plugin_manager():
    """Each test sees a freshly built plugin manager (plugins registered by one test
    never leak into the next)."""
    reset_plugins()
    yield
    reset_plugins()
