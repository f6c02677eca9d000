"""More than one box (DESIGN.md, "Scale-out"): ``hbench merge`` joins the results folders of
``hbench run --shard I/N``; ``hbench run --ray`` lives in :mod:`.ray_driver`. Nothing heavy is
imported here: ``hbench --help`` stays fast."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbench import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    import typer


@hookimpl
def hbench_register_commands(app: typer.Typer) -> None:
    from hbench.plugins.scaleout.commands import register

    register(app)
