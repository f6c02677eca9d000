"""The run database (DESIGN.md, "History"): every finished lane of every run, in SQLite
(default) or PostgreSQL, with ``hbench history`` and ``hbench compare``.

Hooks: ``hbench_lane_finished`` writes the lane (the ``history`` writer, on by default;
``hbench run --no-history`` or ``HBENCH_HISTORY=0`` turns it off), ``hbench_attempt_finished``
opens the database in the background on a run's first attempt (so the lane's write does
not wait for SQLAlchemy to import), and ``hbench_register_commands`` adds the commands.
Nothing heavy is imported here: ``hbench --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbench import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    import typer

    from hbench.models import Attempt, LaneSpec, Prompt, Scorecard


@hookimpl
def hbench_register_commands(app: typer.Typer) -> None:
    from hbench.plugins.history.commands import register

    register(app)


@hookimpl
def hbench_attempt_finished(attempt: Attempt, lane: LaneSpec, prompt: Prompt) -> None:
    from hbench.plugins.history.live import writer

    writer.warm()


@hookimpl
def hbench_lane_finished(scorecard: Scorecard, lane: LaneSpec) -> None:
    from hbench.plugins.history.live import writer

    writer.write(scorecard)
