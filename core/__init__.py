"""hermes-bench: which local model + serving stack should be your agent brain?

Plugin authors need only this module::

    from hbench import LaneSpec, hookimpl

    @hookimpl
    def hbench_register_lanes(register):
        register(LaneSpec(name="my-lane", kind="llamacpp", base_url="http://127.0.0.1:8080/v1"))

Everything a plugin implements or builds is importable from here: ``hookimpl``, the
models (``LaneSpec``, ``Prompt``, ``Attempt``, ``Scorecard``, ``CheckResult``, ...) and the
base classes (``LaneKind``, ``Reporter``, ``Agent``, ``Tool``, ``Probe``). They load on
first use, so ``import hbench`` stays cheap (``hbench --help`` start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pluggy

__version__ = "0.1.0"

#: Marker for hook implementations: ``@hookimpl def hbench_register_checks(register): ...``
hookimpl = pluggy.HookimplMarker("hbench")

#: public name -> the module that defines it (loaded on first access, PEP 562)
_PUBLIC: dict[str, str] = {
    # models
    "LaneSpec": "hbench.models",
    "Prompt": "hbench.models",
    "Suite": "hbench.models",
    "Attempt": "hbench.models",
    "Turn": "hbench.models",
    "ToolCall": "hbench.models",
    "CheckResult": "hbench.models",
    "Scorecard": "hbench.models",
    # base classes
    "LaneKind": "hbench.lanes",
    "Reporter": "hbench.reporters",
    "Agent": "hbench.agents",
    "AttemptContext": "hbench.agents",
    "Tool": "hbench.tools",
    "ToolError": "hbench.tools",
    "Probe": "hbench.probes",
    "PluginError": "hbench.errors",
}

if TYPE_CHECKING:  # pragma: no cover
    from hbench.agents import Agent, AttemptContext
    from hbench.errors import PluginError
    from hbench.lanes import LaneKind
    from hbench.models import Attempt, CheckResult, LaneSpec, Prompt, Scorecard, Suite, ToolCall, Turn
    from hbench.probes import Probe
    from hbench.reporters import Reporter
    from hbench.tools import Tool, ToolError


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'hbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__all__ = ["__version__", "hookimpl", *_PUBLIC]
