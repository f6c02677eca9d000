"""Built-in lanes (one module per lane). Registered by the hookimpl below."""

from __future__ import annotations

from hbench import hookimpl

from hbench.plugins.lanes import embedded


@hookimpl
def hbench_register_lane_kinds(register):
    register(embedded.KIND)


@hookimpl
def hbench_register_lanes(register):
    register(embedded.LANE)
