"""pytest fixtures for plugin authors: ``scripted_server`` and ``hbench_plugin``."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import pytest

from hbench.testing.server import ScriptedServer


@pytest.fixture
def scripted_server() -> Iterator[Callable[..., ScriptedServer]]:
    """Factory: ``srv = scripted_server(scripts, **options)`` starts a ScriptedServer that
    is stopped when the test ends."""
    servers: list[ScriptedServer] = []

    def make(scripts: Any = None, **kwargs: Any) -> ScriptedServer:
        srv = ScriptedServer(scripts, **kwargs).start()
        servers.append(srv)
        return srv

    try:
        yield make
    finally:
        for srv in servers:
            srv.stop()


@pytest.fixture
def hbench_plugin() -> Iterator[Callable[..., str]]:
    """``hbench_plugin(obj, name=None)`` registers a plugin object with the process-wide
    plugin manager for this test only; it is unregistered when the test ends.

    It works whether or not the plugin under test is also installed: an installed copy
    (the same object, the same name, or a plugin from the same module, loaded through
    its entry point) is set aside for the test, so its lanes or reporters are not
    registered twice, and put back afterwards."""
    with plugins_for_test() as register:
        yield register


@contextlib.contextmanager
def plugins_for_test() -> Iterator[Callable[..., str]]:
    """What the ``hbench_plugin`` fixture does, as a context manager."""
    from hbench.plugin_manager import get_plugins

    names: list[str] = []
    set_aside: list[tuple[str, Any, Any]] = []

    def register(plugin: Any, name: str | None = None) -> str:
        pl = get_plugins()
        for other_name, other in _installed_copies(pl, plugin, name):
            set_aside.append((other_name, other, pl.infos.get(other_name)))
            pl.unregister(other_name)
        registered = pl.register(plugin, name=name)
        names.append(registered)
        return registered

    try:
        yield register
    finally:
        pm = get_plugins()
        for n in reversed(names):
            try:
                pm.unregister(n)
            except Exception:  # noqa: BLE001 - already gone (the test unregistered it)
                pass
        for other_name, other, info in reversed(set_aside):
            if not pm.pm.is_registered(other) and pm.pm.get_plugin(other_name) is None:
                pm.register(other, name=other_name)
                if info is not None:
                    pm.infos[other_name] = info


def _module_of(plugin: Any) -> str | None:
    """The module a plugin object comes from (a module is its own)."""
    import types

    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    return getattr(plugin, "__module__", None) or getattr(type(plugin), "__module__", None)


def _installed_copies(pl: Any, plugin: Any, name: str | None) -> list[tuple[str, Any]]:
    """Plugins loaded through an entry point (an installed distribution) that are
    ``plugin`` under another guise."""
    module = _module_of(plugin)
    found = []
    for other_name, other in pl.pm.list_name_plugin():
        info = pl.infos.get(other_name)
        if info is None or info.builtin or info.dist is None:
            continue
        if other is plugin or (name is not None and other_name == name) or (
                module not in (None, "__main__") and _module_of(other) == module):
            found.append((other_name, other))
    return found
