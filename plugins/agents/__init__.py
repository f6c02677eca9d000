"""Built-in agents (one module per agent). Registered by the hookimpl below, by class
(hbench keeps one instance of each)."""

from __future__ import annotations

from hbench import hookimpl


@hookimpl
def hbench_register_agents(register):  # noqa: ANN001, ANN201
    from hbench.plugins.agents import builtin, hermes

    register(builtin.BuiltinAgent, default=True)  # a bare `hbench run` uses it
    register(hermes.HermesAgent)
