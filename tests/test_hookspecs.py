"""Every hook is documented and tested: a new hook without either fails here
(the end-to-end hook tests live in test_hook_contract.py and the parts' own tests)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from hbench import hookspecs
from hbench.plugin_manager import REGISTRATION_HOOKS

TESTS = Path(__file__).parent
HOOKS = sorted(n for n, f in vars(hookspecs).items() if n.startswith("hbench_") and callable(f))


def test_there_are_hooks():
    assert {"hbench_register_lane_kinds", "hbench_register_lanes", "hbench_register_checks",
            "hbench_register_probes", "hbench_register_reporters", "hbench_register_agents",
            "hbench_register_tools", "hbench_register_suites", "hbench_register_commands",
            "hbench_discover_lanes", "hbench_attempt_finished", "hbench_lane_finished", "hbench_run_finished",
            "hbench_measure_throughput", "hbench_run_lanes"} == set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook))
    assert doc and len(doc) > 40, f"{hook} needs a docstring: it is the reference documentation"
    sig = inspect.signature(getattr(hookspecs, hook))
    assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values()), f"{hook} must be typed"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    me = Path(__file__).name
    users = [p.name for p in TESTS.rglob("test_*.py") if p.name != me and hook in p.read_text()]
    assert users, f"no test mentions {hook}: write one"


def test_registration_hooks_map_to_registries():
    assert set(REGISTRATION_HOOKS) == {h for h in HOOKS if h.startswith("hbench_register_") and h != "hbench_register_commands"}
