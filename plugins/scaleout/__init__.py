"""More than one box (DESIGN.md, "Scale-out"): ``hbench merge`` joins the results folders of
``hbench run --shard I/N``; ``hbench run --ray`` takes the run through ``hbench_run_lanes``
(:mod:`.ray_lanes`: each lane a Ray task on its node). Nothing heavy is imported here (Ray,
an optional extra, only by a ``--ray`` run): ``hbench --help`` stays fast."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbench import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    import typer

    from hbench.progress import Progress
    from hbench.run_state import RunState
    from hbench.scorecard_build import LaneScorecards


@hookimpl
def hbench_register_commands(app: typer.Typer) -> None:
    from hbench.plugins.scaleout.commands import register

    register(app)


@hookimpl
def hbench_run_lanes(state: RunState, progress: Progress) -> list[LaneScorecards] | None:
    """A ``--ray`` run is ours: every lane a Ray task; any other run is core's (None)."""
    if not state.opts.ray:
        return None
    from hbench.plugins.scaleout.ray_lanes import run_lanes_on_ray  # the run's modules, then Ray

    return run_lanes_on_ray(state, progress)
