"""One registration shape (issue 16): ``register(cls)`` for what does the work, the value for
what is data; the old shapes of third-party plugins (an instance, a module constant) still
work, and a shape hbench cannot use is a PluginError naming the plugin and the fix."""

from __future__ import annotations

import inspect
from typing import ClassVar

import attrs
import pytest

from hbench import CheckResult, Reporter, hookimpl
from hbench.errors import PluginError
from hbench.models import LaneSpec
from hbench.plugin_manager import BUILTIN_PLUGINS, KEEP_CLASS, ONE_INSTANCE, get_plugins


def test_registries_keep_instances_of_singletons_and_classes_of_the_rest():
    reg = get_plugins().registries
    for attr in ONE_INSTANCE:
        entries = getattr(reg, attr).entries()
        assert entries and not any(isinstance(e.obj, type) for e in entries), attr
    for attr in KEEP_CLASS:
        entries = getattr(reg, attr).entries()
        assert entries and all(isinstance(e.obj, type) for e in entries), attr
    assert all(isinstance(e.obj, LaneSpec) for e in reg.lanes.entries())


def test_builtins_register_classes_not_instances_or_module_constants():
    """Every built-in registration passes a class (or, for data, the value): no
    ``module.KIND``, ``module.reporter`` or ``Agent()`` at the call."""
    import importlib

    for modname in BUILTIN_PLUGINS:
        source = inspect.getsource(importlib.import_module(modname))
        for line in source.splitlines():
            call = line.strip()
            if call.startswith("register("):
                assert not any(t in call for t in (".KIND", ".reporter", ".AGENT", "())")), f"{modname}: {call}"


class Csv(Reporter):
    name = "csv-shape"
    made: ClassVar[int] = 0

    def __init__(self) -> None:
        type(self).made += 1

    def write(self, scorecards, out_dir, context):  # noqa: ANN001, ANN201
        return []


def test_a_reporter_class_or_instance_both_register(hbench_plugin):
    class ByClass:
        @hookimpl
        def hbench_register_reporters(self, register):
            register(Csv)

    class ByInstance:  # the old shape (examples/hermes-bench-reporter-csv)
        @hookimpl
        def hbench_register_reporters(self, register):
            register(Csv(), name="csv-instance")

    hbench_plugin(ByClass(), name="by-class")
    hbench_plugin(ByInstance(), name="by-instance")
    reg = get_plugins().registries.reporters
    assert isinstance(reg.get("csv-shape"), Csv) and isinstance(reg.get("csv-instance"), Csv)


def test_a_class_that_needs_arguments_is_a_plugin_error_naming_the_fix(hbench_plugin):
    class NeedsArgs(Reporter):
        name = "needs-args"

        def __init__(self, path: str) -> None:
            self.path = path

        def write(self, scorecards, out_dir, context):  # noqa: ANN001, ANN201
            return []

    class Plugin:
        @hookimpl
        def hbench_register_reporters(self, register):
            register(NeedsArgs)

    hbench_plugin(Plugin(), name="needs-args-plugin")
    pl = get_plugins()
    reg = pl.registries
    assert "needs-args" not in reg.reporters and "json" in reg.reporters  # the others still load
    info = pl.infos["needs-args-plugin"]
    assert info.status == "error"
    assert "'needs-args-plugin'" in info.error and "NeedsArgs" in info.error
    assert "register an instance: register(NeedsArgs(...))" in info.error
    pl.strict = True
    try:
        pl._registries = None
        with pytest.raises(PluginError, match="cannot be made without arguments"):
            pl.registries  # noqa: B018
    finally:
        pl.strict = False
        pl._registries = None


@attrs.define
class Shouty:
    name: ClassVar[str] = "shouty"

    def check(self, answer: str) -> CheckResult:
        return CheckResult(answer.isupper(), "all caps")


def test_a_check_instance_is_a_plugin_error_asking_for_the_class(hbench_plugin):
    class Plugin:
        @hookimpl
        def hbench_register_checks(self, register):
            register(Shouty())

    hbench_plugin(Plugin(), name="shouty-plugin")
    pl = get_plugins()
    assert "shouty" not in pl.registries.checks
    err = pl.infos["shouty-plugin"].error
    assert "'shouty-plugin'" in err and "register the class itself: register(Shouty)" in err


def test_a_check_class_registers(hbench_plugin):
    class Plugin:
        @hookimpl
        def hbench_register_checks(self, register):
            register(Shouty)

    hbench_plugin(Plugin(), name="shouty-ok")
    assert get_plugins().registries.checks.get("shouty") is Shouty
