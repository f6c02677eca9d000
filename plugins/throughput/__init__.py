"""Throughput, a built-in plugin (as pytest-xdist is a plugin of pytest): at the end of every
lane, on the still-warm lane, decode tok/s and TTFT (:mod:`.measure`) and the bounded
context-depth and concurrency sweeps (:mod:`.sweep`), through ``hbench_measure_throughput``.
``hbench throughput LANE`` (the built-in command plugin) uses the same modules.

A plugin that measures differently implements the same hook: a ``tryfirst`` (or any
third-party) implementation is asked before this one; returning None leaves the lane to this
one. Nothing heavy is imported here (httpx comes with :mod:`.measure`), so listing plugins
and ``hbench --help`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbench import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from hbench.lanes import RunningLane
    from hbench.models import Throughput


@hookimpl
def hbench_measure_throughput(running: RunningLane) -> Throughput:
    from hbench.plugins.throughput.measure import measure  # httpx: only when a lane is measured

    return measure(running)
