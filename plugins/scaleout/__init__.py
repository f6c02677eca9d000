"""More than one box (DESIGN.md, "Scale-out"): ``hbench merge`` joins the results folders of
``hbench run --shard I/N``; ``hbench run --ray`` lives in :mod:`.ray_driver`. Nothing heavy is
imported here: ``hbench --help`` stays fast."""

from __future__ import annotations

from typing import Any

from hbench import hookimpl


@hookimpl
def hbench_register_commands(app: Any) -> None:
    from hbench.plugins.scaleout.commands import register

    register(app)
