"""The lane a lane command (``doctor``, ``throughput``) works on: one of ``hbench lanes``
by name, or the ad-hoc one ``--lane-url URL --model ID [--kind KIND]`` describes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from hbench import cli

if TYPE_CHECKING:
    from hbench.lanes import LaneKind
    from hbench.models import LaneSpec

KIND_HELP = "Lane kind for --lane-url (default: the one `hbench lane-kinds` marks default)."


def pick_lane(lane: Optional[str], lane_url: Optional[str], model: Optional[str], kind: Optional[str],
              api_key_env: Optional[str]) -> tuple[LaneSpec, LaneKind]:
    """The lane named as `hbench lanes` shows it, or the ad-hoc one --lane-url describes
    (``kind`` None: the default lane kind), with its kind object."""
    from hbench.errors import BadInput
    from hbench.lanes import adhoc_lane, lookup_lane

    kinds = cli.registries().lane_kinds
    if lane_url:
        name = kind if kind is not None else kinds.default()
        if name not in kinds:
            raise BadInput(f"--kind: {kinds.unknown(kind)}")
        return adhoc_lane(lane_url, model, name, api_key_env), kinds.get(name)
    return lookup_lane(lane, cli.all_lanes(), kinds)


def status_printer() -> Callable[[str], Any]:
    """Where a lane's start-up status lines go: stderr, indented."""
    return lambda msg: cli.err(f"  {msg}")
