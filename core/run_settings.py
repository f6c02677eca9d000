"""What ``hbench run`` was asked to do: the CLI's options (:class:`RunOptions`), resolved
with hbench.toml's ``[run]`` table into the run's settings (:func:`resolve_run_settings`),
and ``--fail-under`` parsed (:func:`parse_fail_under`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from hbench.errors import BadInput
from hbench.scoring import FAIL_UNDER_METRICS, PREFERENCES
from hbench.shard import parse_shard

if TYPE_CHECKING:
    from hbench.config import RunDefaults

#: --max-consecutive-errors default: a lane stops after this many errored attempts in a row
MAX_CONSECUTIVE_ERRORS = 5


@attrs.define
class RunOptions:
    """``hbench run`` options. ``None`` = take it from ``[run]`` in hbench.toml, else the suite."""

    suite: str | None = None
    lanes: str | None = None  # "all" or "a,b"
    lane_url: str | None = None
    #: --discover: when no lane is configured, run the servers found on this box's usual ports
    discover: bool = False
    slo_s: float | None = None  # --slo-s: goodput counts attempts solved within this (default: the timeout)
    model: str | None = None
    api_key_env: str | None = None  # for the --lane-url lane
    runs: int | None = None
    core_only: bool | None = None
    timeout_s: float | None = None
    max_turns: int | None = None
    concurrency: int | None = None
    adaptive: bool | None = None
    resume: bool = False
    out: str | None = None
    agent: str | None = None
    report: str | None = None  # "json,md" (None = every reporter)
    sample_hz: float | None = None
    memory_headroom_gb: float | None = None
    config: str | None = None
    progress: bool | None = None  # None = when stderr is a terminal
    ready_timeout_s: float | None = None  # --ready-timeout: overrides each lane's ready_timeout_s
    prefer: str | None = None  # --prefer memory|speed|latency: orders lanes tied on quality
    tags: str | None = None  # --tags short,x: only prompts with one of these tags
    categories: str | None = None  # --categories a,b: only prompts of these categories
    argv: list[str] | None = None  # the command line, for the printed --resume command
    #: --max-consecutive-errors K: a lane stops after K errored attempts in a row (0 = never)
    max_consecutive_errors: int | None = None
    fail_under: str | None = None  # --fail-under core_pass=6,pass_rate=0.7 (exit 4 when a lane misses)
    #: --parallel-lanes N: up to N lanes at once in this process (managed lanes of one node one at a time)
    parallel_lanes: int | None = None
    shard: str | None = None  # --shard I/N: only slice I (0-based) of N of every lane's attempts (hbench.shard)
    ray: str | None = None  # --ray auto|ADDRESS: each lane a Ray task on the node labelled with its node (hbench.ray_lanes)


@attrs.define
class RunSettings:
    suite: str
    runs: int | None
    core_only: bool
    timeout_s: float | None
    max_turns: int | None
    concurrency: int
    adaptive: bool
    out: Path
    agent: str
    report: str | None
    sample_hz: float
    headroom_gb: float
    prefer: str = "memory"
    tags: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    max_consecutive_errors: int = MAX_CONSECUTIVE_ERRORS  # 0 = never stop a lane for errors
    fail_under: dict[str, float] = attrs.field(factory=dict)  # --fail-under: metric -> threshold
    parallel_lanes: int = 1
    shard: tuple[int, int] | None = None  # (index, count)


def parse_fail_under(text: str | None) -> dict[str, float]:
    """``core_pass=6,pass_rate=0.7`` -> ``{"core_pass": 6, "pass_rate": 0.7}``. Raises
    :class:`BadInput` naming the bad part and the fix."""
    out: dict[str, float] = {}
    if text is None:
        return out
    fix = "write it like --fail-under core_pass=6,pass_rate=0.7"
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise BadInput(f"--fail-under {text!r}: empty; {fix}")
    for part in parts:
        key, sep, value = (x.strip() for x in part.partition("="))
        if not sep or key not in FAIL_UNDER_METRICS:
            raise BadInput(f"--fail-under {text!r}: {part!r} is not METRIC=VALUE with a known metric "
                           f"({', '.join(FAIL_UNDER_METRICS)}); {fix}")
        try:
            num = float(value)
        except ValueError:
            raise BadInput(f"--fail-under {text!r}: {key}={value!r} is not a number; {fix}") from None
        if key == "core_pass" and not (math.isfinite(num) and num >= 0 and num == int(num)):
            raise BadInput(f"--fail-under {text!r}: core_pass={value} must be a whole number of core prompts; {fix}")
        if key == "pass_rate" and not (0.0 <= num <= 1.0):
            raise BadInput(f"--fail-under {text!r}: pass_rate={value} must be a share from 0 to 1 (0.7 = 70%); {fix}")
        out[key] = num
    return out


def _names(csv: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip() for n in (csv or "").split(",") if n.strip()))


def resolve_run_settings(opts: RunOptions, cfg_run: RunDefaults) -> RunSettings:
    def pick(name: str, cfg_name: str | None = None) -> Any:
        v = getattr(opts, name)
        return v if v is not None else getattr(cfg_run, cfg_name or name)

    s = RunSettings(
        suite=pick("suite"), runs=pick("runs"), core_only=bool(pick("core_only")),
        timeout_s=pick("timeout_s"), max_turns=pick("max_turns"), concurrency=int(pick("concurrency")),
        adaptive=bool(pick("adaptive")), out=Path(pick("out")), agent=pick("agent"), report=pick("report"),
        sample_hz=float(pick("sample_hz")), headroom_gb=float(pick("memory_headroom_gb")),
        prefer=str(pick("prefer")), tags=_names(pick("tags")), categories=_names(pick("categories")),
        max_consecutive_errors=int(pick("max_consecutive_errors")), fail_under=parse_fail_under(opts.fail_under),
    )
    s.parallel_lanes = int(opts.parallel_lanes if opts.parallel_lanes is not None
                           else getattr(cfg_run, "parallel_lanes", 1))
    s.shard = parse_shard(opts.shard, "--shard") if opts.shard is not None else None
    # Flags only: hbench.toml's [run] values were checked where it was read, and are
    # reported by their TOML key (config.run_problems), never as a flag they were not.
    bad = []
    if opts.runs is not None and opts.runs < 1:
        bad.append(f"--runs {opts.runs}: must be 1 or more")
    if opts.concurrency is not None and opts.concurrency < 1:
        bad.append(f"--concurrency {opts.concurrency}: must be 1 or more")
    if opts.timeout_s is not None and not (math.isfinite(opts.timeout_s) and opts.timeout_s > 0):
        bad.append(f"--timeout {opts.timeout_s}: must be a finite, positive number of seconds")
    if opts.max_turns is not None and opts.max_turns < 1:
        bad.append(f"--max-turns {opts.max_turns}: must be 1 or more")
    if opts.sample_hz is not None and not (math.isfinite(opts.sample_hz) and opts.sample_hz > 0):
        bad.append(f"--sample-hz {opts.sample_hz}: must be a finite, positive number")
    if opts.prefer is not None and opts.prefer not in PREFERENCES:
        bad.append(f"--prefer {opts.prefer}: choose one of {', '.join(PREFERENCES)} (what orders lanes tied on quality)")
    if opts.out is not None and not opts.out.strip():
        bad.append("--out '': empty; name the results folder (--out results): an empty one would be the "
                   "current folder, whose files hbench does not own")
    if opts.parallel_lanes is not None and opts.parallel_lanes < 1:
        bad.append(f"--parallel-lanes {opts.parallel_lanes}: must be 1 (one lane after another) or more")
    if s.shard is not None and opts.ray:
        bad.append("--shard with --ray: Ray already spreads the lanes over the cluster; use one of them "
                   "(--shard for Slurm/Kubernetes arrays, then hbench merge)")
    if s.shard is not None and s.adaptive:
        bad.append("--shard with --adaptive: adaptive stopping needs every attempt of a prompt in one run; "
                   "drop --adaptive (or run unsharded)")
    if opts.max_consecutive_errors is not None and opts.max_consecutive_errors < 0:
        bad.append(f"--max-consecutive-errors {opts.max_consecutive_errors}: must be 0 (never stop a lane) or more")
    if bad:
        raise BadInput("; ".join(bad), bad)
    return s


__all__ = ["RunOptions", "RunSettings", "resolve_run_settings", "parse_fail_under", "MAX_CONSECUTIVE_ERRORS"]
