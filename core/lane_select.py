"""Which lanes a run measures: :func:`select_lanes` (flags, hbench.toml, ``--discover``,
else a plugin's fallback lane) and :func:`discovered_lanes`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from hbench.config import available_lanes
from hbench.errors import BadInput
from hbench.lanes import adhoc_lane
from hbench.logging import get_logger
from hbench.models import LaneSpec
from hbench.plugin_manager import get_plugins

if TYPE_CHECKING:
    from hbench.config import Config
    from hbench.plugin_manager import HBenchPlugins, Registries
    from hbench.run_settings import RunOptions


def select_lanes(opts: RunOptions, registries: Registries, config: Config,
                 plugins: HBenchPlugins | None = None) -> list[LaneSpec]:
    """``--lane-url/--model`` > ``--lanes all|a,b`` > ``[run].lanes`` > every hbench.toml
    lane > with ``--discover``, the servers found running > the ready-made lane ``embedded``."""
    log = get_logger()
    if opts.lane_url:
        if opts.lanes:
            log.warning("run.lanes_ignored", lanes=opts.lanes, because="--lane-url was given")
        return [adhoc_lane(opts.lane_url, opts.model, api_key_env=opts.api_key_env)]
    if opts.model:
        raise BadInput("--model needs --lane-url URL (it names the model behind that server)")
    known = available_lanes(registries, config)
    chosen = opts.lanes or config.run.lanes
    flag = "--lanes" if opts.lanes else f"{config.path or 'hbench.toml'}: run.lanes"
    if chosen:
        if chosen.strip() == "all":
            specs = [known[n] for n in sorted(known)]
            # The fallback lane (tag "default": the embedded toy model) is there for a box
            # with nothing configured; next to real candidates it only adds minutes.
            real = [s for s in specs if "default" not in s.tags]
            specs = real or specs
            if not specs:
                raise BadInput("--lanes all: no lanes configured; add [lanes.NAME] to hbench.toml or "
                               "pass --lane-url URL --model ID")
            return specs
        names = [n.strip() for n in chosen.split(",") if n.strip()]
        missing = [n for n in names if n not in known]
        if missing or not names:
            raise BadInput(
                f"{flag}: unknown lane {', '.join(map(repr, missing)) or repr(chosen)} "
                f"(known: {', '.join(sorted(known)) or 'none'}); add [lanes.NAME] to hbench.toml, "
                f"see `hbench lanes`, or pass --lane-url URL --model ID"
            )
        return [known[n] for n in dict.fromkeys(names)]
    if config.lanes:
        return [config.lanes[n] for n in config.lanes]
    if opts.discover:
        return discovered_lanes(plugins or get_plugins())
    fallback = [known[n] for n in sorted(known) if "default" in known[n].tags]  # a plugin's fallback lane
    if fallback:
        return fallback[:1]
    raise BadInput("no lanes to run: add [lanes.NAME] to hbench.toml, pass --lanes, or "
                   "--lane-url URL --model ID (or pip install 'hermes-bench[embedded]' for the default lane)")


def discovered_lanes(plugins: HBenchPlugins, host: str = "127.0.0.1") -> list[LaneSpec]:
    """``--discover``: the lanes plugins find running on this box (hook
    ``hbench_discover_lanes``; the built-in one probes the usual local ports)."""
    found: list[LaneSpec] = []
    for plugin_name, call in plugins.call_each("hbench_discover_lanes", register=found.append, host=host):
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - one finder failing leaves the others
            get_logger().warning("run.discover_failed", plugin=plugin_name, error=f"{type(exc).__name__}: {exc}")
    lanes = list({s.name: attrs.evolve(s, source=s.source or "--discover") for s in found}.values())
    if not lanes:
        raise BadInput(f"--discover: no model server answered on {host} (hbench discover lists the ports it "
                       "tries); start one, or add [lanes.NAME] to hbench.toml")
    get_logger().info("run.discovered", lanes=[s.name for s in lanes])
    return lanes


__all__ = ["select_lanes", "discovered_lanes", "available_lanes"]
