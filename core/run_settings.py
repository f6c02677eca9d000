"""What ``hbench run`` was asked to do: the CLI's options (:class:`RunOptions`), resolved
with hbench.toml's ``[run]`` table, the suite and a lane into one :class:`Settings`
(:func:`resolve`), and ``--fail-under`` parsed (:func:`parse_fail_under`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import attrs

from hbench.errors import BadInput
from hbench.ranking import FAIL_UNDER_METRICS, PREFERENCES
from hbench.shard import parse_shard

if TYPE_CHECKING:
    from hbench.config import RunDefaults
    from hbench.models import LaneSpec, Suite
    from hbench.plugin_manager import Registries

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
    ray: str | None = None  # --ray auto|ADDRESS: each lane a Ray task on the node labelled with its node (scale-out plugin)


@attrs.frozen
class Settings:
    """The settings of one run, resolved (:func:`resolve`): the run's own and the limits
    of one attempt. Made from the CLI's :class:`RunOptions`, hbench.toml's ``[run]``
    (:class:`hbench.config.RunDefaults`), the suite's defaults and a lane's own table;
    the journal's lane fingerprint hashes :meth:`limits` (:func:`hbench.journal.lane_fingerprint`)."""

    # ---- the run
    suite: str | None  # a suite's name or folder (None: no suite given and no plugin marked a default)
    out: Path
    report: str | None  # "json,md" (None = every reporter)
    concurrency: int
    adaptive: bool
    core_only: bool
    sample_hz: float
    headroom_gb: float
    prefer: str = "memory"
    tags: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    max_consecutive_errors: int = MAX_CONSECUTIVE_ERRORS  # 0 = never stop a lane for errors
    fail_under: dict[str, float] = attrs.field(factory=dict)  # --fail-under: metric -> threshold
    parallel_lanes: int = 1
    shard: tuple[int, int] | None = None  # (index, count)
    slo_s: float | None = None  # goodput's SLO (None: the attempt timeout)
    # ---- one attempt: None until resolved with the suite (and, for max_tokens/temperature, a lane)
    agent: str | None = None  # None: no agent named and no plugin marked a default
    runs: int | None = None
    timeout_s: float | None = None
    max_turns: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None

    def limits(self) -> dict[str, object]:
        """What shapes one attempt (``runs`` does not: more runs extend a lane): the journal's
        lane fingerprint hashes exactly these keys and types, as journals have always had them."""
        return {"agent": self.agent, "timeout_s": self.timeout_s, "max_turns": self.max_turns,
                "max_tokens": self.max_tokens, "temperature": self.temperature}


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


def resolve(cli: RunOptions, config: RunDefaults, suite: Suite | None = None, lane: LaneSpec | None = None,
            *, registries: Registries | None = None) -> Settings:
    """The run's settings: for each, the CLI flag, else hbench.toml's ``[run]``, else the
    suite's default (``runs``, ``timeout_s``, ``max_turns``, ``max_tokens``, ``temperature``),
    else the built-in one (the registries' default suite and agent: the plugin that
    registered it said ``default=True``). A lane's own ``agent``, ``max_tokens`` and
    ``temperature`` (its ``[lanes.NAME]`` table) win over all: they are part of the stack
    the lane measures. Without ``suite`` the per-attempt limits the suite would give stay
    None; without ``lane``, the run's own. Raises :class:`BadInput` naming each bad flag."""
    fail_under = parse_fail_under(cli.fail_under)
    shard = parse_shard(cli.shard, "--shard") if cli.shard is not None else None
    _check_flags(cli, shard, bool(cli.adaptive if cli.adaptive is not None else config.adaptive))

    def pick(name: str) -> Any:
        v = getattr(cli, name)
        return v if v is not None else getattr(config, name)

    d = suite.defaults if suite is not None else None

    def limit(value: Any, name: str, cast: Callable[[Any], Any]) -> Any:
        if value is None and d is not None:
            value = getattr(d, name)  # the suite's default
        return cast(value) if value is not None else None

    suite_name = pick("suite")
    if suite_name is None and registries is not None:
        suite_name = registries.suites.default()
    agent = lane.agent if lane is not None and lane.agent else pick("agent")
    if agent is None and registries is not None:
        agent = registries.agents.default()
    return Settings(
        suite=suite_name, out=Path(pick("out")), report=pick("report"), concurrency=int(pick("concurrency")),
        adaptive=bool(pick("adaptive")), core_only=bool(pick("core_only")), sample_hz=float(pick("sample_hz")),
        headroom_gb=float(pick("memory_headroom_gb")), prefer=str(pick("prefer")), tags=_names(pick("tags")),
        categories=_names(pick("categories")), max_consecutive_errors=int(pick("max_consecutive_errors")),
        fail_under=fail_under, parallel_lanes=int(pick("parallel_lanes")), shard=shard, slo_s=cli.slo_s,
        agent=agent, runs=limit(pick("runs"), "runs", int), timeout_s=limit(pick("timeout_s"), "timeout_s", float),
        max_turns=limit(pick("max_turns"), "max_turns", int),
        max_tokens=limit(lane.max_tokens if lane is not None else None, "max_tokens", int),
        temperature=limit(lane.temperature if lane is not None else None, "temperature", float),
    )


def _check_flags(opts: RunOptions, shard: tuple[int, int] | None, adaptive: bool) -> None:
    """Flags only: hbench.toml's [run] values were checked where it was read, and are
    reported by their TOML key (config.run_problems), never as a flag they were not."""
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
    if shard is not None and opts.ray:
        bad.append("--shard with --ray: Ray already spreads the lanes over the cluster; use one of them "
                   "(--shard for Slurm/Kubernetes arrays, then hbench merge)")
    if shard is not None and adaptive:
        bad.append("--shard with --adaptive: adaptive stopping needs every attempt of a prompt in one run; "
                   "drop --adaptive (or run unsharded)")
    if opts.max_consecutive_errors is not None and opts.max_consecutive_errors < 0:
        bad.append(f"--max-consecutive-errors {opts.max_consecutive_errors}: must be 0 (never stop a lane) or more")
    if bad:
        raise BadInput("; ".join(bad), bad)


__all__ = ["RunOptions", "Settings", "resolve", "parse_fail_under", "MAX_CONSECUTIVE_ERRORS"]
