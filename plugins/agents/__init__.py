"""Built-in agents (one module per agent). Registered by the hookimpl below, by class
(hbench keeps one instance of each)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbench import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from hbench.hookspecs import RegisterAgent


@hookimpl
def hbench_register_agents(register: RegisterAgent) -> None:
    from hbench.plugins.agents import builtin, hermes

    register(builtin.BuiltinAgent, default=True)  # a bare `hbench run` uses it
    register(hermes.HermesAgent)
