"""``hbench run``: lanes x prompts x attempts, journaled as they end.

:func:`run` is the whole command. For each selected lane, one after another:

1. the lane's fingerprint goes into the journal (``--resume`` refuses a changed lane);
2. attempts already journaled are skipped (``--resume``); the rest are planned in suite
   order, ``runs`` per prompt; conditional prompts the agent cannot serve and non-core
   prompts under ``--core-only`` are reported as skipped;
3. the lane is opened (:func:`hbench.lanes.open_lane`: managed lanes start here), the
   telemetry :class:`~hbench.probes.Sampler` runs around the suite, and ``--concurrency``
   worker threads take attempts in order (``--adaptive`` stops a prompt once its
   strict-majority verdict can no longer change);
4. each attempt runs in a fresh scratch copy of the rendered fixtures
   (``OUT/.hbench/scratch/<lane>/<prompt>/<n>``, removed afterwards; ``OUT/.hbench`` is
   hbench's marked working folder, the only place it deletes: :mod:`hbench.outdir`), is checked
   (``prompt.check.check``, :func:`hbench.scoring.attempt_outcome`), appended to the
   journal (fsynced) and broadcast (``hbench_attempt_finished``);
5. after the suite, :func:`hbench.throughput.measure` runs on the still-warm lane; the
   scorecard is built (:func:`hbench.scoring.score_lane` + throughput, telemetry,
   provenance), ``hbench_lane_finished`` is broadcast and the json reporter writes the
   lane's ``<lane>.json`` at once; the scorecard is then kept only as compressed JSON
   (:class:`LaneScorecards`), so memory does not grow with lanes.

The cross-lane reports (md, html, review, plugins') are written once, after the last
lane (also when the run stops early), from the scorecards read back, as ``hbench report``
does.

A lane that fails to start or become ready, or dies mid-suite, is recorded as failed
with the reason; its journaled attempts are kept and the run goes on (exit 1). SIGINT
cancels the attempts in flight (the client closes their requests), stops the lane,
writes what there is and prints the ``--resume`` command (exit 130).

An attempt that ends in an infrastructure error is **errored** (the stack's fault; it is
journaled and scored nowhere). After ``--max-consecutive-errors`` (5) errored attempts
in a row the lane stops. A lane with errored or missing attempts, stopped early or
never started (the run was stopped first) gets a ``complete: false`` scorecard saying
why, and the run exits 3 (:meth:`Runner._verdict`); ``--resume`` re-runs the errored and
missing attempts, each new record superseding the old one in the journal.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import signal
import sys
import threading
import time
import uuid
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, overload

import attrs

from hbench import __version__
from hbench.config import available_lanes
from hbench.errors import BadInput, HBenchError, LaneError
from hbench.logging import get_logger, scrub
from hbench.models import Attempt, CheckResult, LaneSpec, Prompt, Scorecard, Suite, Telemetry, Throughput

#: exit codes (DESIGN.md, CLI)
EXIT_OK, EXIT_LANE_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_INCOMPLETE, EXIT_FAIL_UNDER = 3, 4  # a lane incomplete (errored/missing attempts); --fail-under missed
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


class LaneScorecards(Sequence[Scorecard]):
    """The run's scorecards in lane order, without holding them all: each is kept as its
    scorecard JSON (``hbench.scorecard/1``, as ``<lane>.json`` holds it), zlib-compressed
    (~20x smaller), and structured again each time it is asked for. Independent of the
    files under OUT, so the result outlives them."""

    def __init__(self) -> None:
        self._items: list[bytes] = []

    def add(self, scorecard: Scorecard) -> None:
        from hbench.report import scorecard_to_dict

        data = json.dumps(scorecard_to_dict(scorecard), ensure_ascii=False, allow_nan=False)
        self._items.append(zlib.compress(data.encode("utf-8"), 1))

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, i: int) -> Scorecard: ...

    @overload
    def __getitem__(self, i: slice) -> list[Scorecard]: ...

    def __getitem__(self, i: int | slice) -> Scorecard | list[Scorecard]:
        if isinstance(i, slice):
            return [self._load(x) for x in self._items[i]]
        return self._load(self._items[i])

    @staticmethod
    def _load(blob: bytes) -> Scorecard:
        from hbench.report import scorecard_from_dict

        return scorecard_from_dict(json.loads(zlib.decompress(blob)), "<this run's scorecard>")

    def __repr__(self) -> str:
        return f"LaneScorecards({len(self)} lanes)"


@attrs.define
class RunResult:
    scorecards: Sequence[Scorecard]  # a LaneScorecards: kept compressed, structured when read
    exit_code: int
    out_dir: Path
    journal: Path
    interrupted: bool = False
    #: one line saying why the exit code is not 0 (which lane failed, is incomplete or missed
    #: --fail-under, and what), for the last line on stderr; None when it is 0
    verdict: str | None = None
    fail_under: list[str] = attrs.field(factory=list)  # one line per lane that missed --fail-under


# --------------------------------------------------------------------------- settings


@attrs.define
class _Settings:
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


@attrs.define
class _LaneRuntime:
    """What one lane's attempts share while it runs (lanes may run side by side)."""

    halted: str | None = None  # why the lane stopped early (K errored attempts in a row)
    sampler: Any = None
    pool: Any = None


def parse_fail_under(text: str | None) -> dict[str, float]:
    """``core_pass=6,pass_rate=0.7`` -> ``{"core_pass": 6, "pass_rate": 0.7}``. Raises
    :class:`BadInput` naming the bad part and the fix."""
    import math

    from hbench.scoring import FAIL_UNDER_METRICS

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


def _settings(opts: RunOptions, cfg_run: Any) -> _Settings:
    def pick(name: str, cfg_name: str | None = None) -> Any:
        v = getattr(opts, name)
        return v if v is not None else getattr(cfg_run, cfg_name or name)

    s = _Settings(
        suite=pick("suite"), runs=pick("runs"), core_only=bool(pick("core_only")),
        timeout_s=pick("timeout_s"), max_turns=pick("max_turns"), concurrency=int(pick("concurrency")),
        adaptive=bool(pick("adaptive")), out=Path(pick("out")), agent=pick("agent"), report=pick("report"),
        sample_hz=float(pick("sample_hz")), headroom_gb=float(pick("memory_headroom_gb")),
        prefer=str(pick("prefer")), tags=_names(pick("tags")), categories=_names(pick("categories")),
        max_consecutive_errors=int(pick("max_consecutive_errors")), fail_under=parse_fail_under(opts.fail_under),
    )
    from hbench.shard import parse_shard

    s.parallel_lanes = int(opts.parallel_lanes if opts.parallel_lanes is not None
                           else getattr(cfg_run, "parallel_lanes", 1))
    s.shard = parse_shard(opts.shard, "--shard") if opts.shard is not None else None
    # Flags only: hbench.toml's [run] values were checked where it was read, and are
    # reported by their TOML key (config.run_problems), never as a flag they were not.
    import math

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
    from hbench.scoring import PREFERENCES

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


def select_lanes(opts: RunOptions, registries: Any, config: Any, plugins: Any = None) -> list[LaneSpec]:
    """``--lane-url/--model`` > ``--lanes all|a,b`` > ``[run].lanes`` > every hbench.toml
    lane > with ``--discover``, the servers found running > the ready-made lane ``embedded``."""
    from hbench.lanes import adhoc_lane

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
        from hbench.plugin_manager import get_plugins

        return discovered_lanes(plugins or get_plugins())
    fallback = [known[n] for n in sorted(known) if "default" in known[n].tags]  # a plugin's fallback lane
    if fallback:
        return fallback[:1]
    raise BadInput("no lanes to run: add [lanes.NAME] to hbench.toml, pass --lanes, or "
                   "--lane-url URL --model ID (or pip install 'hermes-bench[embedded]' for the default lane)")


def discovered_lanes(plugins: Any, host: str = "127.0.0.1") -> list[LaneSpec]:
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


# --------------------------------------------------------------------------- progress


class _Progress:
    """A rich bar on stderr: lane, prompt, attempt, passes so far, ETA. With ``plain``
    (stderr not a terminal: a pipe, a CI log) no bar and no escape codes: one line per
    finished prompt, and a status line (waiting for a lane, measuring) every few seconds."""

    def __init__(self, enabled: bool, plain: bool = False, status_every_s: float = 5.0):
        self.enabled = enabled
        self.plain = plain and not enabled
        self.status_every_s = status_every_s
        self._p: Any = None
        self._task: Any = None  # the last lane's (callers that name no lane)
        self._tasks: dict[str, Any] = {}  # one bar per lane: --parallel-lanes shows every active lane
        self._lock = threading.Lock()
        self._last_status: dict[str, float] = {}  # status head -> when it was last written

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._p = Progress(TextColumn("{task.description}"), TextColumn("{task.fields[passes]}"),
                               BarColumn(), MofNCompleteColumn(),
                               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                               console=Console(stderr=True), transient=False)
            self._p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.stop()

    def lane(self, name: str, total: int) -> None:
        if self._p is not None:
            with self._lock:
                self._task = self._tasks[name] = self._p.add_task(f"{name}: starting", total=max(total, 0),
                                                                  passes="")

    def _task_of(self, lane: str | None) -> Any:
        return self._tasks.get(lane, self._task) if lane is not None else self._task

    def status(self, text: str, lane: str | None = None) -> None:
        if self.plain:
            head = text.split(",", 1)[0]  # "lane: waiting for URL to be ready" without the count
            now = time.monotonic()
            with self._lock:
                last_t = self._last_status.get(head, -1e9)
                if now - last_t < self.status_every_s:
                    return
                self._last_status = {head: now} if lane is None else {**self._last_status, head: now}
            self._line(text)
        task = self._task_of(lane)
        if self._p is not None and task is not None:
            with self._lock:
                self._p.update(task, description=text)

    def prompt_done(self, lane: str, prompt: str, passes: int, attempts: int, elapsed_s: float) -> None:
        """One plain line when a prompt has all its attempts (plain mode only)."""
        if self.plain:
            self._line(f"{lane} · {prompt}: {passes}/{attempts} passed · {elapsed_s:.1f} s elapsed")

    @staticmethod
    def _line(text: str) -> None:
        from hbench.logging import scrub

        try:
            sys.stderr.write(scrub(text.replace("\n", " ")) + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed pipe never stops a run
            pass

    def advance(self, text: str, passes: str, lane: str | None = None) -> None:
        task = self._task_of(lane)
        if self._p is not None and task is not None:
            with self._lock:
                self._p.update(task, advance=1, description=text, passes=passes)

    def set_total(self, total: int, lane: str | None = None) -> None:
        task = self._task_of(lane)
        if self._p is not None and task is not None:
            with self._lock:
                self._p.update(task, total=total)


# --------------------------------------------------------------------------- scheduling


@attrs.define
class _PromptState:
    prompt: Prompt
    runs: int
    pending: list[int]
    done: list[Attempt] = attrs.field(factory=list)
    in_flight: int = 0

    @property
    def passes(self) -> int:
        return sum(a.passed for a in self.done)

    def decided(self) -> bool:
        """The strict-majority verdict can no longer change."""
        if 2 * self.passes > self.runs:
            return True
        return 2 * (self.passes + self.in_flight + len(self.pending)) <= self.runs


class _Scheduler:
    """Hands out ``(state, n)`` in suite order to K workers; thread-safe."""

    def __init__(self, states: list[_PromptState], adaptive: bool):
        self.states = states
        self.adaptive = adaptive
        self.lock = threading.Lock()

    def prune(self) -> int:
        """Drop the pending attempts of decided prompts (adaptive). Returns how many."""
        dropped = 0
        if self.adaptive:
            for st in self.states:
                if st.pending and st.in_flight == 0 and st.decided():
                    dropped += len(st.pending)
                    st.pending.clear()
        return dropped

    def remaining(self) -> int:
        return sum(len(s.pending) for s in self.states)

    def next(self) -> tuple[_PromptState, int] | None:
        with self.lock:
            for st in self.states:
                if not st.pending:
                    continue
                if self.adaptive and st.decided():
                    continue
                n = st.pending.pop(0)
                st.in_flight += 1
                return st, n
            return None

    def finished(self, st: _PromptState, attempt: Attempt | None, n: int) -> None:
        with self.lock:
            st.in_flight -= 1
            if attempt is None:  # not journaled (interrupted / lane died): it stays to do
                st.pending.insert(0, n)  # counted as not run (missing) in the lane's scorecard
                return
            st.done.append(attempt)
            if self.adaptive and st.decided():
                st.pending.clear()


# --------------------------------------------------------------------------- the run


class Runner:
    def __init__(self, opts: RunOptions, plugins: Any = None, config: Any = None):
        """``config``: an :class:`hbench.config.Config` to use instead of reading hbench.toml
        (a lane's Ray task gets its lane and ``[run]`` from the driver: hbench.ray_lanes)."""
        from hbench.config import load_config
        from hbench.plugin_manager import get_plugins

        self.opts = opts
        self.plugins = plugins or get_plugins()
        self.reg = self.plugins.registries
        self.config = config if config is not None else load_config(opts.config,
                                                                    lane_kinds=self.reg.lane_kinds.names())
        self.s = _settings(opts, self.config.run)
        self.log = get_logger()
        self.stop = threading.Event()  # Ctrl-C: no new attempts
        self.cancel = threading.Event()  # Ctrl-C: cancel attempts in flight
        self.started_at = _now()
        self.fatal: str | None = None  # what stopped the run (disk full, journal unwritable)
        self._fatal_lock = threading.Lock()
        self._runtimes: dict[str, _LaneRuntime] = {}  # per lane, while it runs
        self._finish_lock = threading.Lock()  # lane_finished hooks and <lane>.json, one lane at a time
        self._shard_manifest: dict[str, Any] | None = None

    # ----------------------------------------------------------------- setup
    def _prepare(self) -> None:
        from hbench.journal import Journal
        from hbench.suite import load_suite, render_fixtures

        reg = self.reg
        self.suite: Suite = load_suite(self.s.suite, reg)
        self._check_selection()
        from hbench.lanes import with_kind  # a lane without `kind`: the default kind, by name

        self.lanes = [with_kind(s, reg.lane_kinds) for s in select_lanes(self.opts, reg, self.config, self.plugins)]
        if self.config.run.memory_floor_gb is not None:  # [run].memory_floor_gb: lanes without their own
            self.lanes = [s if s.memory_floor_gb is not None else
                          attrs.evolve(s, memory_floor_gb=self.config.run.memory_floor_gb) for s in self.lanes]
        if self.opts.ready_timeout_s is not None:  # --ready-timeout: every selected lane
            if not 0 < self.opts.ready_timeout_s < float("inf"):
                raise BadInput(f"--ready-timeout {self.opts.ready_timeout_s!r}: give the seconds to wait for "
                               "a lane to answer ready, a finite number more than 0 (like 15)")
            self.lanes = [attrs.evolve(s, ready_timeout_s=self.opts.ready_timeout_s) for s in self.lanes]
        problems = []
        for spec in self.lanes:
            if spec.kind not in reg.lane_kinds:
                problems.append(f"lane {spec.name!r}: {reg.lane_kinds.unknown(spec.kind)}")
            agent_name = spec.agent or self.s.agent
            if agent_name not in reg.agents:
                problems.append(f"lane {spec.name!r}: {reg.agents.unknown(agent_name)} ({self._agent_key(spec)})")
            else:
                ok, why = reg.agents.get(agent_name).usable()
                if not ok:
                    problems.append(f"agent {agent_name!r} cannot run: {why}")
        from hbench.config import file_name_clashes
        from hbench.lanes import LaneKind, is_managed

        for spec in self.lanes:
            kind = reg.lane_kinds.get(spec.kind) if spec.kind in reg.lane_kinds else None
            # a kind with its own prepare() may fill base_url in (or refuse the lane itself)
            if (kind is not None and spec.base_url is None and type(kind).prepare is LaneKind.prepare
                    and not is_managed(spec, kind)):
                where = f"{spec.source}: lanes.{spec.name}" if spec.source.endswith(".toml") else f"lane {spec.name!r}"
                problems.append(f'{where}.base_url: missing; write the server\'s URL, like base_url = '
                                f'"http://localhost:8000/v1" (or give start = [...] so hbench starts the server)')
        names = [s.name for s in self.lanes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            problems.append(f"lane {', '.join(dup)} selected twice")
        # before anything runs: two lanes whose <lane>.json would be one file
        problems.extend(file_name_clashes(dict.fromkeys(names)))
        self.reporters = self._reporters()
        if problems:
            raise BadInput("\n".join(dict.fromkeys(problems)), list(dict.fromkeys(problems)))
        # --out: refused unless new, empty or an earlier hbench run; locked; hbench's working
        # files under OUT/.hbench (marked), the only place it deletes anything (hbench.outdir)
        from hbench.outdir import claim

        raw_out = self.opts.out if self.opts.out is not None else self.config.run.out
        from_toml = self.opts.out is None and self.config.path and raw_out != "results"
        self.outdir = claim(raw_out, key=f"{Path(self.config.path).name}: run.out" if from_toml else "--out",
                            suite_path=self.suite.path)
        out = self.out = self.outdir.path
        self.work = self.outdir.work
        self.fixtures = self.work / "fixtures"
        self.outdir.remove(self.fixtures)
        if self.suite.fixtures_dir:
            render_fixtures(self.suite, self.fixtures)
        else:
            self.fixtures.mkdir(parents=True)
        self.suite_info = {"name": self.suite.name, "version": self.suite.version,
                           "sha256": self.suite.sha256, "fixtures_sha256": self.suite.fixtures_sha256}
        self.journal_path = out / "journal.jsonl"
        self.journal = Journal.open(self.journal_path, suite=self.suite_info, resume=self.opts.resume)
        #: the run's id in the run database: the journal's (a --resume continues the same run)
        self.run_id = str(self.journal.header.get("run_id") or uuid.uuid4().hex)
        self.tools = {n: reg.tools.get(n) for n in reg.tools.names()}  # decoys included (suite_tools)
        self._scenario_tools()

    def _scenario_tools(self) -> None:
        """Suite format 2: the tools each prompt offers (its ``tools`` or the built-ins,
        plus its decoys), the decoys among them and the suite tools that fail their first
        calls on purpose (for :func:`hbench.scenario.judge`)."""
        from hbench.suite_tools import build_suite_tools, offered_tools

        suite_tools = build_suite_tools(self.suite)
        self.prompt_tools: dict[str, dict[str, Any]] = {}
        self.prompt_decoys: dict[str, frozenset[str]] = {}
        self.prompt_fail_first: dict[str, dict[str, int]] = {}
        for p in self.suite.prompts:
            offered = offered_tools(self.suite, p, self.tools, suite_tools)
            self.prompt_tools[p.id] = offered
            self.prompt_decoys[p.id] = frozenset(n for n, t in offered.items() if getattr(t, "decoy", False))
            self.prompt_fail_first[p.id] = {n: t.spec.fail_first for n, t in offered.items()
                                            if getattr(getattr(t, "spec", None), "fail_first", 0)}

    def _check_selection(self) -> None:
        """``--tags``/``--categories`` name what the suite has (bad input otherwise)."""
        problems = []
        for flag, wanted, have in (
            ("--tags", self.s.tags, {t for p in self.suite.prompts for t in p.tags}),
            ("--categories", self.s.categories, {p.category for p in self.suite.prompts}),
        ):
            unknown = [w for w in wanted if w not in have]
            if unknown:
                problems.append(f"{flag} {','.join(wanted)}: suite {self.suite.name!r} has no "
                                f"{'tag' if flag == '--tags' else 'category'} {', '.join(map(repr, unknown))} "
                                f"(it has: {', '.join(sorted(have)) or 'none'})")
        if problems:
            raise BadInput("\n".join(problems), problems)

    def _selected(self, p: Prompt) -> str | None:
        """Why ``--tags``/``--categories`` leave prompt ``p`` out, or None."""
        if self.s.tags and not set(p.tags) & set(self.s.tags):
            return f"not selected (--tags {','.join(self.s.tags)})"
        if self.s.categories and p.category not in self.s.categories:
            return f"not selected (--categories {','.join(self.s.categories)})"
        return None

    def _config_name(self) -> str:
        return Path(self.config.path).name if self.config.path else "hbench.toml"

    def _agent_key(self, spec: LaneSpec) -> str:
        """Where the agent of ``spec`` was named, as the user wrote it (issue 15)."""
        if spec.agent:
            return f"{spec.source}: lanes.{spec.name}.agent" if spec.source.endswith(".toml") else f"lane {spec.name!r} agent"
        return "--agent" if self.opts.agent is not None else f"{self._config_name()}: run.agent"

    def _reporters(self) -> list[Any]:
        reg = self.reg.reporters
        if self.s.report is None:
            return [reg.get(n) for n in reg.names()]
        names = [n.strip() for n in self.s.report.split(",") if n.strip()]
        missing = [n for n in names if n not in reg]
        if missing:
            key = "--report" if self.opts.report is not None else f"{self._config_name()}: run.report"
            raise BadInput(f"{key}: unknown reporter {', '.join(map(repr, missing))} "
                           f"(installed: {', '.join(reg.names()) or 'none'})")
        return [reg.get(n) for n in names]

    # ----------------------------------------------------------------- signals
    def _install_sigint(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = signal.getsignal(signal.SIGINT)

        def handler(_sig: int, _frame: Any) -> None:
            if self.stop.is_set():  # a second Ctrl-C: give up at once
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt
            self.stop.set()
            self.cancel.set()
            sys.stderr.write("\ninterrupted: cancelling attempts in flight and stopping the lane "
                             "(Ctrl-C again to quit at once)\n")

        signal.signal(signal.SIGINT, handler)
        return lambda: signal.signal(signal.SIGINT, previous)

    def _fatal(self, exc: BaseException) -> None:
        """An attempt could not be set up or recorded: stop the run (nothing more can be
        kept) and say why once, instead of a dead worker thread."""
        why = scrub(str(exc) if isinstance(exc, HBenchError) else f"{type(exc).__name__}: {exc}")
        with self._fatal_lock:
            if self.fatal is None:
                self.fatal = why
                self.log.error("run.fatal", error=why)
        self.stop.set()
        self.cancel.set()

    def interrupt(self) -> None:
        """Stop as Ctrl-C does (for embedding and tests)."""
        self.stop.set()
        self.cancel.set()

    # ----------------------------------------------------------------- main
    def run(self) -> RunResult:
        try:
            return self._run()
        finally:
            outdir = getattr(self, "outdir", None)
            if outdir is not None:
                outdir.release()  # the lock on --out

    def _run(self) -> RunResult:
        self._prepare()
        restore = self._install_sigint()
        scorecards = LaneScorecards()
        self._json_files: dict[str, str] = {}  # <lane>.json name -> the lane written to it
        exit_code = EXIT_OK
        tty = sys.stderr.isatty()
        show = self.opts.progress if self.opts.progress is not None else tty
        try:
            with _Progress(bool(show), plain=self.opts.progress is None and not tty) as progress:
                side_by_side = bool(self.opts.ray) or (self.s.parallel_lanes > 1 and len(self.lanes) > 1)
                if side_by_side:
                    from hbench.parallel import run_lanes_parallel
                    from hbench.ray_lanes import run_lanes_on_ray

                    # --parallel-lanes: threads in this process (hbench.parallel); --ray: a Ray
                    # task per lane on its node (hbench.ray_lanes). The scorecards are kept in
                    # lane order, whatever order lanes finish in
                    parts = run_lanes_on_ray(self, progress) if self.opts.ray else run_lanes_parallel(self, progress)
                    for part in parts:
                        scorecards._items.extend(part._items)
                    if any(sc.failed for sc in scorecards) or any(getattr(p, "write_failed", False) for p in parts):
                        exit_code = EXIT_LANE_FAILED
                for spec in self.lanes if not side_by_side else ():
                    # once the run is stopped (Ctrl-C, a fatal error) no lane is opened, but
                    # each left still gets its scorecard: complete false, and why
                    sc = self._lane(spec, progress)
                    if not self._finish_lane(spec, sc, scorecards):
                        exit_code = EXIT_LANE_FAILED
                    del sc  # kept compressed in LaneScorecards: memory stays flat over lanes
                    _release_free_memory()
        finally:
            restore()
            self.journal.close()
            for leftover in (self.work / "scratch",):
                try:
                    leftover.rmdir()  # only when empty: every attempt's copy is already gone
                except OSError:
                    pass
        interrupted = self.stop.is_set()
        self._fail_under_lines = self._fail_under(scorecards)
        # the cross-lane reports, once: after the last lane, or what finished before a stop
        if len(scorecards) and not self._write_reports(scorecards):
            exit_code = EXIT_LANE_FAILED
        if self.fatal:
            raise HBenchError(f"run stopped: {self.fatal}\nevery finished attempt is in {self.journal_path}; "
                              f"once fixed, resume with: {self.resume_command()}")
        context = self._context()
        self.plugins.broadcast("hbench_run_finished", scorecards=scorecards, out_dir=self.out, context=context)
        if interrupted:
            exit_code = EXIT_INTERRUPTED
            sys.stderr.write(f"stopped; every finished attempt is in {self.journal_path}.\n"
                             f"resume with: {self.resume_command()}\n")
        exit_code, verdict = self._verdict(scorecards, exit_code)
        return RunResult(scorecards=scorecards, exit_code=exit_code, out_dir=self.out,
                         journal=self.journal_path, interrupted=interrupted, verdict=verdict,
                         fail_under=list(self._fail_under_lines))

    def _finish_lane(self, spec: LaneSpec, sc: Scorecard, scorecards: LaneScorecards) -> bool:
        """``hbench_lane_finished`` and the lane's ``<lane>.json``; False when the lane
        failed or its scorecard could not be written. One lane at a time (thread-safe)."""
        with self._finish_lock:
            self.plugins.broadcast("hbench_lane_finished", scorecard=sc, lane=spec)
            written = self._write_lane_scorecard(sc, scorecards)
        return written and not sc.failed

    def _fail_under(self, scorecards: Sequence[Scorecard]) -> list[str]:
        """``--fail-under``: the lanes that missed a threshold, ranked as the reports rank
        them (within each comparable set), one line each."""
        if not self.s.fail_under or not len(scorecards):
            return []
        from hbench.report import comparable_key
        from hbench.scoring import fail_under_failures, rank

        groups: dict[Any, list[Scorecard]] = {}
        for sc in scorecards:
            groups.setdefault(comparable_key(sc), []).append(sc)
        ranked = [r for cards in groups.values() for r in rank(cards, prefer=self.s.prefer)]
        return fail_under_failures(ranked, self.s.fail_under)

    def _verdict(self, scorecards: Sequence[Scorecard], exit_code: int) -> tuple[int, str | None]:
        """The exit code (DESIGN.md, CLI: 130 interrupted, 1 a lane failed to run, 3 a lane
        incomplete, 4 --fail-under missed, else 0) and one line saying which lane did what."""
        cards = list(scorecards)
        failed = [sc for sc in cards if sc.failed]
        incomplete = [sc for sc in cards if not sc.complete and not sc.failed]
        if exit_code == EXIT_INTERRUPTED:
            what = "; ".join(f"lane {sc.lane.get('name')!r}: {sc.incomplete_reason}" for sc in cards if not sc.complete)
            return exit_code, f"exit 130: interrupted; {what or 'no lane finished'}; resume with: {self.resume_command()}"
        if exit_code == EXIT_LANE_FAILED or failed:
            what = "; ".join(f"lane {sc.lane.get('name')!r} failed to run: {sc.incomplete_reason}"
                             for sc in failed) or "a report could not be written (see the log above)"
            return EXIT_LANE_FAILED, f"exit 1: {what}"
        if incomplete:
            what = "; ".join(f"lane {sc.lane.get('name')!r} incomplete: {sc.incomplete_reason}" for sc in incomplete)
            return EXIT_INCOMPLETE, (f"exit 3: {what} (not ranked); once the stack is fixed, re-run the errored "
                                     f"and missing attempts with: {self.resume_command()}")
        if self._fail_under_lines:
            spec = ",".join(f"{k}={v:g}" for k, v in self.s.fail_under.items())
            return EXIT_FAIL_UNDER, f"exit 4: --fail-under {spec} missed: {'; '.join(self._fail_under_lines)}"
        return exit_code, None

    def resume_command(self) -> str:
        argv = list(self.opts.argv) if self.opts.argv is not None else ["run", "--out", str(self.out)]
        if "--resume" not in argv:
            argv.append("--resume")
        return scrub(shlex.join(["hbench", *argv]))

    def _context(self) -> dict[str, Any]:
        # allow_mixed: lanes of one run share the suite, but may run different prompt sets
        # (a conditional prompt one lane's agent cannot serve): each set is ranked apart
        return {"journal": self.journal_path, "suite": self.suite, "allow_mixed": True, "prefer": self.s.prefer,
                "fail_under": list(getattr(self, "_fail_under_lines", []))}

    def _lane_reporters(self) -> list[Any]:
        """Reporters that write each lane's file as the lane finishes (``Reporter.per_lane``:
        the json scorecard)."""
        return [r for r in self.reporters if getattr(r, "per_lane", False)]

    def _write_lane_scorecard(self, sc: Scorecard, scorecards: LaneScorecards) -> bool:
        """The per-lane reporters write this lane's file now (a stopped or crashed run keeps
        every finished lane's scorecard); the scorecard joins ``scorecards``."""
        from hbench.report import scorecard_filename

        scorecards.add(sc)
        lane = str(sc.lane.get("name") or "lane")
        fname = scorecard_filename(lane)
        other = self._json_files.setdefault(fname, lane)
        ok = True
        for rep in self._lane_reporters():
            try:
                if other != lane:
                    raise ValueError(f"lanes {other!r} and {lane!r} would both be written to {fname}; rename one")
                rep.write([sc], self.out, self._context())
            except HBenchError:
                raise
            except Exception as exc:  # noqa: BLE001 - one broken reporter must not lose the rest
                self.log.error("report.failed", reporter=getattr(rep, "name", "?"), lane=lane,
                               error=scrub(f"{type(exc).__name__}: {exc}"))
                ok = False
        return ok

    def _write_reports(self, scorecards: LaneScorecards) -> bool:
        """Every reporter but the per-lane ones (written as each lane finished) over all
        the run's scorecards."""
        others = [r for r in self.reporters if not getattr(r, "per_lane", False)]
        if not others:
            return True
        ok = True
        cards = list(scorecards)
        for rep in others:
            try:
                rep.write(cards, self.out, self._context())
            except HBenchError:
                raise
            except Exception as exc:  # noqa: BLE001 - one broken reporter must not lose the rest
                ok = False
                self.log.error("report.failed", reporter=getattr(rep, "name", "?"),
                               error=scrub(f"{type(exc).__name__}: {exc}"))
        return ok

    # ----------------------------------------------------------------- one lane
    def _lane_settings(self, spec: LaneSpec) -> dict[str, Any]:
        d = self.suite.defaults
        return {
            "agent": spec.agent or self.s.agent,
            "timeout_s": float(self.s.timeout_s if self.s.timeout_s is not None else d.timeout_s),
            "max_turns": int(self.s.max_turns if self.s.max_turns is not None else d.max_turns),
            "max_tokens": int(spec.max_tokens if spec.max_tokens is not None else d.max_tokens),
            "temperature": float(spec.temperature if spec.temperature is not None else d.temperature),
        }

    def _lane(self, spec: LaneSpec, progress: _Progress) -> Scorecard:
        from hbench.journal import lane_fingerprint
        from hbench.lanes import LaneWaitCancelled, open_lane

        log = self.log
        settings = self._lane_settings(spec)
        agent = self.reg.agents.get(settings["agent"])
        runs = int(self.s.runs if self.s.runs is not None else self.suite.defaults.runs)
        not_started = self.stop.is_set()  # the run was stopped before this lane began
        if not not_started:
            self.journal.begin_lane(spec.name, lane_fingerprint(spec, settings))
        done = self.journal.completed(spec.name) if self.opts.resume else {}
        # --resume re-runs errored attempts: the new record supersedes the old (the journal keeps both)
        rerun = sorted(k for k, a in done.items() if a.error is not None)
        done = {k: a for k, a in done.items() if a.error is None}
        if rerun:
            log.info("run.rerun_errored", lane=spec.name, attempts=len(rerun))
        skipped, states = self._plan_lane(agent, runs, done)
        if self.s.shard is not None:  # --shard I/N: this slice of the lane's plan only (hbench.shard)
            self._shard_slice(spec, states, runs)
        sched = _Scheduler(states, self.s.adaptive)
        sched.prune()
        if done:
            log.info("run.resumed_lane", lane=spec.name, journaled=sum(len(s.done) for s in states),
                     remaining=sched.remaining())

        throughput, telemetry = Throughput(error="not measured"), Telemetry()
        served_model: str | None = None
        kind_info: dict[str, Any] = {}
        failed: str | None = None
        warnings: list[str] = []
        no_suite_tools = [pid for pid, why in skipped.items() if why.startswith("needs capability 'suite_tools'")]
        if no_suite_tools:  # suite format 2 prompts this agent cannot serve: say so once, in the scorecard
            warnings.append(f"{len(no_suite_tools)} prompt{'s' if len(no_suite_tools) != 1 else ''} skipped: agent "
                            f"{agent.name!r} cannot offer a prompt its own tools, decoys or follow-up turns "
                            f"(capability 'suite_tools'); they count nowhere: {', '.join(no_suite_tools)}")
        base_url, model = spec.base_url, spec.model
        finished_rec = self.journal.finished_record(spec.name) if self.opts.resume else None
        started = _now()
        rt = self._runtimes[spec.name] = _LaneRuntime()  # halted: why the lane stopped early
        rebuilt = finished_rec is not None and sched.remaining() == 0
        if rebuilt:
            throughput = _structure(Throughput, finished_rec.get("throughput"), Throughput(error="not measured"))
            telemetry = _structure(Telemetry, finished_rec.get("telemetry"), Telemetry())
            served_model = finished_rec.get("served_model")
            base_url = finished_rec.get("base_url", base_url)
            model = finished_rec.get("model", model)
            warnings.append("rebuilt from the journal (every attempt was already there)")
        elif not_started:
            pass  # no lane opened; the scorecard says the run stopped before it began
        else:
            kind = self.reg.lane_kinds.get(spec.kind)
            progress.lane(spec.name, sched.remaining())
            try:
                with open_lane(spec, kind, out_dir=self.out, headroom_gb=self.s.headroom_gb,
                               on_status=lambda t: progress.status(f"{spec.name}: {t}", lane=spec.name),
                               cancel=self.cancel) as running:
                    served_model = running.served_model
                    base_url, model = running.spec.base_url, running.spec.model
                    kind_info = {**_safe(lambda: kind.describe(running.spec), {}),
                                 **_safe(lambda: running.readiness(), {})}  # ready_s, resting memory (issue 21)
                    warnings.extend(running.warnings)
                    rt.sampler = self._sampler(spec, running, warnings)
                    try:
                        died = self._attempts(spec, running, agent, settings, sched, progress)
                    finally:
                        if rt.sampler is not None:
                            telemetry = _safe(rt.sampler.stop, Telemetry())
                        rt.sampler = None
                    if died:
                        failed = died
                    elif rt.halted:
                        log.error("lane.stopped", lane=spec.name, reason=rt.halted)
                        warnings.append(rt.halted)
                    elif not self.stop.is_set():
                        progress.status(f"{spec.name}: measuring throughput", lane=spec.name)
                        throughput = self._throughput(running)
                        self.journal.lane_finished(spec.name, {
                            "throughput": _unstructure(throughput), "telemetry": _unstructure(telemetry),
                            "served_model": served_model, "base_url": base_url, "model": model,
                        })
            except LaneWaitCancelled:
                pass  # Ctrl-C while it was getting ready: interrupted (below), not failed
            except LaneError as exc:
                failed = scrub(str(exc))
            finally:
                self.outdir.remove(self.work / "scratch" / _safe_name(spec.name))
            if failed:
                log.error("lane.failed", lane=spec.name, reason=failed)
                self.journal.lane_failed(spec.name, failed)
        missing = sched.remaining() + sum(s.in_flight for s in states)
        stopped = rt.halted
        self._runtimes.pop(spec.name, None)
        if self.stop.is_set() and not rebuilt:
            stopped = self._stop_reason(not_started)
            warnings.append(f"interrupted: {missing} planned attempts did not run; resume with {self.resume_command()}")
        if throughput.error and not failed and not self.stop.is_set() and not rt.halted:
            warnings.append(f"throughput: {throughput.error}")
        return self._scorecard(spec, states, skipped, runs, throughput, telemetry, served_model, base_url,
                               model, kind_info, failed, warnings, started, agent, missing=missing, stopped=stopped)

    def _plan_lane(self, agent: Any, runs: int, done: dict[tuple[str, int], Attempt]
                   ) -> tuple[dict[str, str], list[_PromptState]]:
        """Why each prompt left out is skipped, and the rest's states: ``runs`` attempts
        each, those in ``done`` already done, the others pending."""
        skipped: dict[str, str] = {}
        states: list[_PromptState] = []
        for p in self.suite.prompts:
            if self.s.core_only and not p.core:
                skipped[p.id] = "not core (--core-only)"
                continue
            not_selected = self._selected(p)
            if not_selected:
                skipped[p.id] = not_selected
                continue
            lacking = [c for c in p.needs if c not in agent.capabilities]
            if lacking:
                offers = ", ".join(sorted(agent.capabilities)) or "none"
                skipped[p.id] = f"needs capability {lacking[0]!r}; agent {agent.name!r} offers {offers}"
                continue
            st = _PromptState(prompt=p, runs=runs, pending=[])
            for n in range(1, runs + 1):
                if (p.id, n) in done:
                    st.done.append(done[(p.id, n)])
                else:
                    st.pending.append(n)
            states.append(st)
        return skipped, states

    def _shard_slice(self, spec: LaneSpec, states: list[_PromptState], runs: int) -> None:
        """``--shard I/N``: keep this shard's part of the lane's plan (every planned
        ``(prompt, n)`` in suite order, :func:`hbench.shard.select`), and record the whole
        plan in ``OUT/shard.json`` so ``hbench merge`` can tell what a missing shard held."""
        from hbench.journal import lane_fingerprint
        from hbench.shard import select, write_manifest

        index, count = self.s.shard  # type: ignore[misc]
        plan = [(st.prompt.id, n) for st in states for n in range(1, runs + 1)]
        mine = set(select(spec.name, plan, index, count))
        for st in states:
            st.pending = [n for n in st.pending if (st.prompt.id, n) in mine]
            st.done = [a for a in st.done if (st.prompt.id, a.n) in mine]
        with self._finish_lock:
            if self._shard_manifest is None:
                self._shard_manifest = {"index": index, "count": count, "suite": self.suite_info,
                                        "suite_path": str(self.suite.path), "run_id": self.run_id, "lanes": {}}
            self._shard_manifest["lanes"][spec.name] = {
                "fingerprint": lane_fingerprint(spec, self._lane_settings(spec)), "runs": runs,
                "plan": [[pid, n] for pid, n in plan]}
            write_manifest(self.out, self._shard_manifest)

    def _stop_reason(self, not_started: bool) -> str:
        why = f"run stopped by a fatal error ({self.fatal})" if self.fatal else "interrupted (Ctrl-C)"
        return f"{why} before this lane started" if not_started else why

    def _sampler(self, spec: LaneSpec, running: Any, warnings: list[str]) -> Any:
        from hbench.probes import Sampler

        probes = [self.reg.probes.get(n) for n in self.reg.probes.names()]
        try:
            return Sampler(probes, hz=self.s.sample_hz).start(spec.name, pid=running.pid, lane=running.spec)
        except Exception as exc:  # noqa: BLE001 - telemetry never stops a run
            warnings.append(f"telemetry: not measured ({type(exc).__name__}: {exc})")
            self.log.warning("telemetry.not_measured", lane=spec.name, reason=str(exc))
            return None

    def _throughput(self, running: Any) -> Throughput:
        from hbench.throughput import measure

        try:
            return measure(running)
        except Exception as exc:  # noqa: BLE001
            self.log.warning("throughput.failed", lane=running.spec.name, error=f"{type(exc).__name__}: {exc}")
            return Throughput(error=scrub(f"{type(exc).__name__}: {exc}"))

    # ----------------------------------------------------------------- attempts
    def _attempts(self, spec: LaneSpec, running: Any, agent: Any, settings: dict[str, Any],
                  sched: _Scheduler, progress: _Progress) -> str | None:
        """Run every planned attempt with K workers. Returns why the lane died, or None."""
        from hbench.lanes import api_key_for

        api_key = api_key_for(running.spec)
        died: list[str] = []
        halted: list[str] = []  # K errored attempts in a row: stop this lane, not the run
        k_errors = self.s.max_consecutive_errors
        streak = {"errored": 0}
        counts = {"done": 0, "passed": 0}
        told: set[str] = set()  # prompts whose plain progress line was written
        t_lane = time.monotonic()
        lock = threading.Lock()
        progress.set_total(sched.remaining(), lane=spec.name)
        rt = self._runtimes[spec.name]
        work_dir = self.work / "agents" / _safe_name(spec.name)
        work_dir.mkdir(parents=True, exist_ok=True)
        from hbench.sandbox import ScratchPool

        # scratch copies made ahead and removed behind, off the attempts' path (benchmarks.overhead)
        rt.pool = ScratchPool(self.fixtures, self.work / "scratch" / _safe_name(spec.name) / ".staging",
                                 ahead=min(self.s.concurrency, 8) + 1)

        def worker() -> None:
            while not self.stop.is_set() and not died and not halted:
                if not running.is_alive():
                    with lock:
                        if not died:
                            died.append(_died(running))
                    return
                job = sched.next()
                if job is None:
                    return
                st, n = job
                attempt = None
                try:
                    attempt = self._attempt(spec, running, agent, settings, st.prompt, n, api_key, work_dir, died)
                except Exception as exc:  # noqa: BLE001 - outside the agent: disk full, journal unwritable
                    self._fatal(exc)
                    return
                finally:
                    sched.finished(st, attempt, n)
                if attempt is not None:
                    with lock:
                        counts["done"] += 1
                        counts["passed"] += attempt.passed
                        streak["errored"] = streak["errored"] + 1 if attempt.error is not None else 0
                        if k_errors and streak["errored"] >= k_errors and not halted:
                            halted.append(f"stopped after {k_errors} consecutive errored attempts "
                                          f"(--max-consecutive-errors {k_errors})")
                        text = f"{spec.name} · {st.prompt.id} #{n}/{st.runs}"
                        passes = f"{counts['passed']}/{counts['done']} passed"
                    dropped = sched.prune()
                    progress.advance(text, passes, lane=spec.name)
                    with lock:
                        whole = not st.pending and st.in_flight == 0 and st.prompt.id not in told
                        if whole:
                            told.add(st.prompt.id)
                    if whole:
                        progress.prompt_done(spec.name, st.prompt.id, st.passes, len(st.done),
                                             time.monotonic() - t_lane)
                    if dropped:
                        progress.set_total(counts["done"] + sched.remaining(), lane=spec.name)

        k = max(1, min(self.s.concurrency, sched.remaining() or 1))
        threads = [threading.Thread(target=worker, name=f"hbench-attempt-{i}", daemon=True) for i in range(k)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:  # a second Ctrl-C: cancel what is in flight and leave now
            self.interrupt()
            raise
        finally:
            rt.pool.close()
        rt.halted = halted[0] if halted and not died else None
        return died[0] if died else None

    def _attempt(self, spec: LaneSpec, running: Any, agent: Any, settings: dict[str, Any], prompt: Prompt,
                 n: int, api_key: str | None, work_dir: Path, died: list[str]) -> Attempt | None:
        """One attempt, checked, journaled and broadcast; None when it must run again."""
        from hbench.agents import AttemptContext
        from hbench.checks import run_check
        from hbench.scenario import judge
        from hbench.text import valid_text
        from hbench.journal import light
        from hbench.sandbox import Sandbox, attempt_dir, remove_tree
        from hbench.scoring import attempt_outcome

        log = self.log
        dest = attempt_dir(self.work, spec.name, prompt.id, n)
        rt = self._runtimes.get(spec.name)
        pool = rt.pool if rt is not None else None
        pool.create(dest) if pool is not None else Sandbox.create(self.fixtures, dest)
        ctx = AttemptContext(
            lane=running.spec, prompt=prompt, suite=self.suite, n=n, scratch=dest,
            timeout_s=settings["timeout_s"], max_turns=settings["max_turns"],
            max_tokens=settings["max_tokens"], temperature=settings["temperature"], api_key=api_key,
            tools=dict(self.prompt_tools[prompt.id]), cancel=self.cancel, work_dir=work_dir,
        )
        label = f"{spec.name}:{prompt.id}#{n}"
        sampler = rt.sampler if rt is not None else None
        if sampler is not None:
            _safe(lambda: sampler.attempt_started(label), None)
        t0 = time.monotonic()
        try:
            attempt = agent.run_attempt(ctx)
        except Exception as exc:  # noqa: BLE001 - a driver bug is this attempt's error, not a crash
            log.error("attempt.agent_crashed", lane=spec.name, prompt=prompt.id, n=n,
                      error=scrub(f"{type(exc).__name__}: {exc}"))
            attempt = Attempt(lane=spec.name, prompt_id=prompt.id, n=n, agent=agent.name,
                              error=scrub(f"agent {agent.name!r} crashed: {type(exc).__name__}: {exc}"),
                              wall_s=time.monotonic() - t0, finished_at=_now())
        finally:
            pool.discard(dest) if pool is not None else remove_tree(dest)
            if sampler is not None:
                _safe(lambda: sampler.attempt_finished(label), None)
        if self.cancel.is_set() and (attempt.error or attempt.runaway):
            return None  # cut short by Ctrl-C: not a result; --resume runs it again
        if (attempt.error or attempt.runaway) and not running.is_alive():
            if not died:
                died.append(_died(running))
            return None  # the lane died under it: not the model's fault; --resume runs it again
        attempt.lane, attempt.prompt_id, attempt.n, attempt.agent = spec.name, prompt.id, n, agent.name
        # any agent's text, valid Unicode before it is checked, journaled and reported (hbench.text)
        attempt.answer = valid_text(attempt.answer or "")
        if attempt.error:
            attempt.error = valid_text(attempt.error)
        attempt.answers = [valid_text(a or "") for a in attempt.answers]
        # bounded: at most CHECK_TEXT_CAP bytes read, CHECK_BUDGET_S seconds (hbench.checks);
        # with the scenario fields (forbid_tools, expect_args, turns, decoys: hbench.scenario)
        check_s = [0.0]

        def bounded(check: Any, answer: str) -> CheckResult:
            result, took, cut = run_check(check, answer)
            check_s[0] += took
            if cut and cut not in attempt.warnings:
                attempt.warnings.append(cut)
            return result

        if attempt.error is not None:
            # errored (the stack failed): no answer to judge, and scoring counts it nowhere
            from hbench.scoring import error_summary

            attempt.check = CheckResult(False, f"not checked: the attempt errored ({error_summary(attempt.error)})")
        aliases_fn = getattr(agent, "attempt_aliases", None)
        aliases = aliases_fn(attempt.tool_calls) if callable(aliases_fn) else getattr(agent, "tool_aliases", {})
        if attempt.error is None:
            # the expected tool not called is named first in the why (hbench.scenario.judge)
            attempt.check = judge(prompt, attempt, decoys=self.prompt_decoys[prompt.id],
                                  fail_first=self.prompt_fail_first[prompt.id], check=bounded, aliases=aliases)
        attempt.check_s = check_s[0]
        attempt.tool_ok, attempt.passed = attempt_outcome(attempt, prompt, aliases)
        self.journal.append_attempt(attempt)
        log.info("attempt.finished", lane=spec.name, prompt=prompt.id, n=n, passed=attempt.passed,
                 runaway=attempt.runaway, error=attempt.error, wall_s=round(attempt.wall_s, 3))
        self.plugins.broadcast("hbench_attempt_finished", attempt=attempt, lane=spec, prompt=prompt)
        return light(attempt)

    # ----------------------------------------------------------------- scorecard
    def _scorecard(self, spec: LaneSpec, states: list[_PromptState], skipped: dict[str, str], runs: int,
                   throughput: Throughput, telemetry: Telemetry, served_model: str | None, base_url: str | None,
                   model: str | None, kind_info: dict[str, Any], failed: str | None, warnings: list[str],
                   started: str, agent: Any, *, missing: int = 0, stopped: str | None = None) -> Scorecard:
        from hbench.scoring import score_lane, score_prompt

        by_id = {s.prompt.id: s for s in states}
        prompt_scores = []
        for p in self.suite.prompts:
            if p.id in skipped:
                prompt_scores.append(score_prompt(p, [], skipped=skipped[p.id]))
            else:
                prompt_scores.append(score_prompt(p, by_id[p.id].done))
        from hbench.journal import lane_fingerprint

        # fingerprint: as in the journal's "lane" record; with served_model and the suite's
        # sha256 it is the lane's identity in the run database (different things never merge)
        lane = {"name": spec.name, "kind": spec.kind, "model": model, "base_url": scrub(base_url or ""),
                "served_model": served_model, "source": spec.source, **kind_info,
                "fingerprint": lane_fingerprint(spec, self._lane_settings(spec))}
        sc = score_lane(lane, self.suite_info, prompt_scores, runs, adaptive=self.s.adaptive,
                        missing=missing, stopped=stopped, failed=failed)
        sc.throughput = throughput
        sc.telemetry = telemetry
        from hbench.efficiency import efficiency

        slo = self.opts.slo_s if self.opts.slo_s is not None else self._lane_settings(spec).get("timeout_s")
        sc.efficiency = _safe(lambda: efficiency([a for s in states for a in s.done], slo), {})
        sc.failed = failed
        sc.warnings = [scrub(w) for w in warnings]
        sc.agent = _safe(agent.describe, {"name": agent.name})
        sc.provenance = {
            "hbench_version": __version__,
            "run_id": self.run_id,
            "started_at": started,
            "finished_at": _now(),
            "run_started_at": self.started_at,
            # hostname: the one name hbench.report.host_name reads (same-named lanes -> name@host)
            "host": {"hostname": platform.node(), "platform": platform.platform(), "machine": platform.machine(),
                     "cpus": os.cpu_count(), "python": platform.python_version()},
            "plugins": [{"name": i.name, "version": i.version, "builtin": i.builtin}
                        for i in self.plugins.plugin_list() if i.status == "ok"],
            "settings": {**self._lane_settings(spec), "runs": runs, "concurrency": self.s.concurrency,
                         "adaptive": self.s.adaptive, "core_only": self.s.core_only},
            "resumed": bool(self.opts.resume),
        }
        if spec.node is not None:
            sc.provenance["node"] = spec.node
        if self.s.shard is not None:
            sc.provenance["shard"] = {"index": self.s.shard[0], "count": self.s.shard[1]}
        return sc


# --------------------------------------------------------------------------- helpers


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


_malloc_trim: Any = None


def _release_free_memory() -> None:
    """Between lanes: hand the C heap's free pages back to the system (glibc
    ``malloc_trim``). Each lane starts and ends threads (attempt workers, scratch pool,
    sampler, probes); glibc gives threads arenas of their own and keeps what they freed,
    so without this peak RSS crept up ~0.2 MiB a lane (BENCHMARKS.md 7). Once a lane,
    ~1 ms. A no-op where the C library has no malloc_trim."""
    global _malloc_trim
    if _malloc_trim is None:
        _malloc_trim = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                fn = ctypes.CDLL(None).malloc_trim
                fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
                _malloc_trim = fn
            except (OSError, AttributeError):  # musl and others
                pass
    if _malloc_trim:
        _malloc_trim(0)


def _safe_name(name: str) -> str:
    from hbench.sandbox import safe_component

    return safe_component(name)


def _died(running: Any) -> str:
    stopped = getattr(running, "stop_reason", None)  # hbench stopped it (the memory floor): say why
    if stopped:
        return scrub(stopped)
    tail = _safe(running.log_tail, "")
    return scrub(f"lane {running.spec.name!r} died mid-suite" + (f"; last log lines:\n{tail}" if tail else ""))


def _safe(fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return default


def _unstructure(obj: Any) -> Any:
    return attrs.asdict(obj)


def _structure(cls: type, data: Any, default: Any) -> Any:
    if not isinstance(data, dict):
        return default
    try:
        import cattrs

        return cattrs.Converter().structure(data, cls)
    except Exception:  # noqa: BLE001
        return default


def run(opts: RunOptions, plugins: Any = None) -> RunResult:
    """``hbench run``: see the module docstring. Raises BadInput for bad input (exit 2)."""
    return Runner(opts, plugins).run()


__all__: Iterable[str] = ("RunOptions", "RunResult", "Runner", "run", "select_lanes", "available_lanes")
