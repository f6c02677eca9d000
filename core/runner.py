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
   (``OUT/scratch/<lane>/<prompt>/<n>``, removed afterwards), is checked
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
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, overload

import attrs

from hbench import __version__
from hbench.errors import BadInput, HBenchError, LaneError
from hbench.logging import get_logger, scrub
from hbench.models import Attempt, CheckResult, LaneSpec, Prompt, Scorecard, Suite, Telemetry, Throughput

#: exit codes (DESIGN.md, CLI)
EXIT_OK, EXIT_LANE_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


@attrs.define
class RunOptions:
    """``hbench run`` options. ``None`` = take it from ``[run]`` in hbench.toml, else the suite."""

    suite: str | None = None
    lanes: str | None = None  # "all" or "a,b"
    lane_url: str | None = None
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
    argv: list[str] | None = None  # the command line, for the printed --resume command


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


def _settings(opts: RunOptions, cfg_run: Any) -> _Settings:
    def pick(name: str, cfg_name: str | None = None) -> Any:
        v = getattr(opts, name)
        return v if v is not None else getattr(cfg_run, cfg_name or name)

    s = _Settings(
        suite=pick("suite"), runs=pick("runs"), core_only=bool(pick("core_only")),
        timeout_s=pick("timeout_s"), max_turns=pick("max_turns"), concurrency=int(pick("concurrency")),
        adaptive=bool(pick("adaptive")), out=Path(pick("out")), agent=pick("agent"), report=pick("report"),
        sample_hz=float(pick("sample_hz")), headroom_gb=float(pick("memory_headroom_gb")),
    )
    bad = []
    if s.runs is not None and s.runs < 1:
        bad.append(f"--runs {s.runs}: must be 1 or more")
    if s.concurrency < 1:
        bad.append(f"--concurrency {s.concurrency}: must be 1 or more")
    if s.timeout_s is not None and not s.timeout_s > 0:
        bad.append(f"--timeout {s.timeout_s}: must be a positive number of seconds")
    if s.max_turns is not None and s.max_turns < 1:
        bad.append(f"--max-turns {s.max_turns}: must be 1 or more")
    if not s.sample_hz > 0:
        bad.append(f"--sample-hz {s.sample_hz}: must be a positive number")
    if bad:
        raise BadInput("; ".join(bad), bad)
    return s


def available_lanes(registries: Any, config: Any) -> dict[str, LaneSpec]:
    """Plugin lanes, overridden by hbench.toml lanes of the same name."""
    lanes: dict[str, LaneSpec] = {}
    for e in registries.lanes.entries():
        spec = attrs.evolve(e.obj)
        spec.source = spec.source or f"plugin {e.plugin}"
        lanes[e.name] = spec
    lanes.update(config.lanes)
    return lanes


def select_lanes(opts: RunOptions, registries: Any, config: Any) -> list[LaneSpec]:
    """``--lane-url/--model`` > ``--lanes all|a,b`` > ``[run].lanes`` > every hbench.toml
    lane > the ready-made lane ``embedded``."""
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
    if "embedded" in known:
        return [known["embedded"]]
    raise BadInput("no lanes to run: add [lanes.NAME] to hbench.toml, pass --lanes, or "
                   "--lane-url URL --model ID (or pip install 'hermes-bench[embedded]' for the default lane)")


# --------------------------------------------------------------------------- progress


class _Progress:
    """A rich bar on stderr: lane, prompt, attempt, passes so far, ETA."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._p: Any = None
        self._task: Any = None
        self._lock = threading.Lock()

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
                self._task = self._p.add_task(f"{name}: starting", total=max(total, 0), passes="")

    def status(self, text: str) -> None:
        if self._p is not None and self._task is not None:
            with self._lock:
                self._p.update(self._task, description=text)

    def advance(self, text: str, passes: str) -> None:
        if self._p is not None and self._task is not None:
            with self._lock:
                self._p.update(self._task, advance=1, description=text, passes=passes)

    def set_total(self, total: int) -> None:
        if self._p is not None and self._task is not None:
            with self._lock:
                self._p.update(self._task, total=total)


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
                return
            st.done.append(attempt)
            if self.adaptive and st.decided():
                st.pending.clear()


# --------------------------------------------------------------------------- the run


class Runner:
    def __init__(self, opts: RunOptions, plugins: Any = None):
        from hbench.config import load_config
        from hbench.plugin_manager import get_plugins

        self.opts = opts
        self.plugins = plugins or get_plugins()
        self.reg = self.plugins.registries
        self.config = load_config(opts.config, lane_kinds=self.reg.lane_kinds.names())
        self.s = _settings(opts, self.config.run)
        self.log = get_logger()
        self.stop = threading.Event()  # Ctrl-C: no new attempts
        self.cancel = threading.Event()  # Ctrl-C: cancel attempts in flight
        self.started_at = _now()
        self._sampler_now: Any = None
        self.fatal: str | None = None  # what stopped the run (disk full, journal unwritable)
        self._fatal_lock = threading.Lock()

    # ----------------------------------------------------------------- setup
    def _prepare(self) -> None:
        from hbench.journal import Journal
        from hbench.suite import load_suite, render_fixtures

        reg = self.reg
        self.suite: Suite = load_suite(self.s.suite, reg)
        self.lanes = select_lanes(self.opts, reg, self.config)
        problems = []
        for spec in self.lanes:
            if spec.kind not in reg.lane_kinds:
                problems.append(f"lane {spec.name!r}: {reg.lane_kinds.unknown(spec.kind)}")
            agent_name = spec.agent or self.s.agent
            if agent_name not in reg.agents:
                problems.append(f"lane {spec.name!r}: {reg.agents.unknown(agent_name)} (--agent)")
            else:
                ok, why = reg.agents.get(agent_name).usable()
                if not ok:
                    problems.append(f"agent {agent_name!r} cannot run: {why}")
        names = [s.name for s in self.lanes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            problems.append(f"lane {', '.join(dup)} selected twice")
        self.reporters = self._reporters()
        if problems:
            raise BadInput("\n".join(dict.fromkeys(problems)), list(dict.fromkeys(problems)))
        out = self.s.out
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.fixtures = out / "fixtures"
        from hbench.sandbox import remove_tree

        remove_tree(self.fixtures)
        if self.suite.fixtures_dir:
            render_fixtures(self.suite, self.fixtures)
        else:
            self.fixtures.mkdir(parents=True)
        self.suite_info = {"name": self.suite.name, "version": self.suite.version,
                           "sha256": self.suite.sha256, "fixtures_sha256": self.suite.fixtures_sha256}
        self.journal_path = out / "journal.jsonl"
        self.journal = Journal.open(self.journal_path, suite=self.suite_info, resume=self.opts.resume)
        self.tools = {n: reg.tools.get(n) for n in reg.tools.names()}

    def _reporters(self) -> list[Any]:
        reg = self.reg.reporters
        if self.s.report is None:
            return [reg.get(n) for n in reg.names()]
        names = [n.strip() for n in self.s.report.split(",") if n.strip()]
        missing = [n for n in names if n not in reg]
        if missing:
            raise BadInput(f"--report: unknown reporter {', '.join(map(repr, missing))} "
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
        self._prepare()
        restore = self._install_sigint()
        scorecards = LaneScorecards()
        self._json_files: dict[str, str] = {}  # <lane>.json name -> the lane written to it
        exit_code = EXIT_OK
        show = self.opts.progress if self.opts.progress is not None else sys.stderr.isatty()
        try:
            with _Progress(bool(show)) as progress:
                for spec in self.lanes:
                    if self.stop.is_set():
                        break
                    sc = self._lane(spec, progress)
                    if sc.failed:
                        exit_code = EXIT_LANE_FAILED
                    self.plugins.broadcast("hbench_lane_finished", scorecard=sc, lane=spec)
                    if not self._write_lane_scorecard(sc, scorecards):
                        exit_code = EXIT_LANE_FAILED
                    del sc  # kept compressed in LaneScorecards: memory stays flat over lanes
                    _release_free_memory()
        finally:
            restore()
            self.journal.close()
            for leftover in (self.out / "scratch",):
                try:
                    leftover.rmdir()  # only when empty: every attempt's copy is already gone
                except OSError:
                    pass
        # the cross-lane reports, once: after the last lane, or what finished before a stop
        if len(scorecards) and not self._write_reports(scorecards):
            exit_code = EXIT_LANE_FAILED
        if self.fatal:
            raise HBenchError(f"run stopped: {self.fatal}\nevery finished attempt is in {self.journal_path}; "
                              f"once fixed, resume with: {self.resume_command()}")
        context = self._context()
        self.plugins.broadcast("hbench_run_finished", scorecards=scorecards, out_dir=self.out, context=context)
        interrupted = self.stop.is_set()
        if interrupted:
            exit_code = EXIT_INTERRUPTED
            sys.stderr.write(f"stopped; every finished attempt is in {self.journal_path}.\n"
                             f"resume with: {self.resume_command()}\n")
        return RunResult(scorecards=scorecards, exit_code=exit_code, out_dir=self.out,
                         journal=self.journal_path, interrupted=interrupted)

    def resume_command(self) -> str:
        argv = list(self.opts.argv) if self.opts.argv is not None else ["run", "--out", str(self.out)]
        if "--resume" not in argv:
            argv.append("--resume")
        return scrub(shlex.join(["hbench", *argv]))

    def _context(self) -> dict[str, Any]:
        return {"journal": self.journal_path, "suite": self.suite, "allow_mixed": False}

    def _json_reporter(self) -> Any:
        return next((r for r in self.reporters if getattr(r, "name", None) == "json"), None)

    def _write_lane_scorecard(self, sc: Scorecard, scorecards: LaneScorecards) -> bool:
        """The json reporter writes this lane's ``<lane>.json`` now (a stopped or crashed
        run keeps every finished lane's scorecard); the scorecard joins ``scorecards``."""
        from hbench.report import scorecard_filename

        scorecards.add(sc)
        rep = self._json_reporter()
        if rep is None:
            return True
        lane = str(sc.lane.get("name") or "lane")
        fname = scorecard_filename(lane)
        other = self._json_files.setdefault(fname, lane)
        try:
            if other != lane:
                raise ValueError(f"lanes {other!r} and {lane!r} would both be written to {fname}; rename one")
            rep.write([sc], self.out, self._context())
        except HBenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - one broken reporter must not lose the rest
            self.log.error("report.failed", reporter="json", lane=lane, error=scrub(f"{type(exc).__name__}: {exc}"))
            return False
        return True

    def _write_reports(self, scorecards: LaneScorecards) -> bool:
        """Every reporter but json (written per lane) over all the run's scorecards."""
        json_rep = self._json_reporter()
        others = [r for r in self.reporters if r is not json_rep]
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
        from hbench.lanes import open_lane
        from hbench.sandbox import remove_tree

        log = self.log
        settings = self._lane_settings(spec)
        agent = self.reg.agents.get(settings["agent"])
        runs = int(self.s.runs if self.s.runs is not None else self.suite.defaults.runs)
        self.journal.begin_lane(spec.name, lane_fingerprint(spec, settings))
        done = self.journal.completed(spec.name) if self.opts.resume else {}
        skipped: dict[str, str] = {}
        states: list[_PromptState] = []
        for p in self.suite.prompts:
            if self.s.core_only and not p.core:
                skipped[p.id] = "not core (--core-only)"
                continue
            if p.conditional and p.conditional not in agent.capabilities:
                offers = ", ".join(sorted(agent.capabilities)) or "none"
                skipped[p.id] = f"needs capability {p.conditional!r}; agent {agent.name!r} offers {offers}"
                continue
            st = _PromptState(prompt=p, runs=runs, pending=[])
            for n in range(1, runs + 1):
                if (p.id, n) in done:
                    st.done.append(done[(p.id, n)])
                else:
                    st.pending.append(n)
            states.append(st)
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
        base_url, model = spec.base_url, spec.model
        finished_rec = self.journal.finished_record(spec.name) if self.opts.resume else None
        started = _now()
        if finished_rec is not None and sched.remaining() == 0:
            throughput = _structure(Throughput, finished_rec.get("throughput"), Throughput(error="not measured"))
            telemetry = _structure(Telemetry, finished_rec.get("telemetry"), Telemetry())
            served_model = finished_rec.get("served_model")
            base_url = finished_rec.get("base_url", base_url)
            model = finished_rec.get("model", model)
            warnings.append("rebuilt from the journal (every attempt was already there)")
        else:
            kind = self.reg.lane_kinds.get(spec.kind)
            progress.lane(spec.name, sched.remaining())
            try:
                with open_lane(spec, kind, out_dir=self.out, headroom_gb=self.s.headroom_gb,
                               on_status=lambda t: progress.status(f"{spec.name}: {t}")) as running:
                    served_model = running.served_model
                    base_url, model = running.spec.base_url, running.spec.model
                    kind_info = _safe(lambda: kind.describe(running.spec), {})
                    warnings.extend(running.warnings)
                    self._sampler_now = self._sampler(spec, running, warnings)
                    try:
                        died = self._attempts(spec, running, agent, settings, sched, progress)
                    finally:
                        if self._sampler_now is not None:
                            telemetry = _safe(self._sampler_now.stop, Telemetry())
                        self._sampler_now = None
                    if died:
                        failed = died
                    elif not self.stop.is_set():
                        progress.status(f"{spec.name}: measuring throughput")
                        throughput = self._throughput(running)
                        self.journal.lane_finished(spec.name, {
                            "throughput": _unstructure(throughput), "telemetry": _unstructure(telemetry),
                            "served_model": served_model, "base_url": base_url, "model": model,
                        })
            except LaneError as exc:
                failed = scrub(str(exc))
            finally:
                remove_tree(self.out / "scratch" / _safe_name(spec.name))
            if failed:
                log.error("lane.failed", lane=spec.name, reason=failed)
                self.journal.lane_failed(spec.name, failed)
        if self.stop.is_set():
            left = sched.remaining() + sum(s.in_flight for s in states)
            warnings.append(f"interrupted: {left} planned attempts did not run; resume with {self.resume_command()}")
        if throughput.error and not failed and not self.stop.is_set():
            warnings.append(f"throughput: {throughput.error}")
        return self._scorecard(spec, states, skipped, runs, throughput, telemetry, served_model, base_url,
                               model, kind_info, failed, warnings, started, agent)

    def _sampler(self, spec: LaneSpec, running: Any, warnings: list[str]) -> Any:
        try:
            from hbench.probes import Sampler
        except ImportError:
            warnings.append("telemetry: not measured (no sampler in this install)")
            self.log.warning("telemetry.not_measured", lane=spec.name, reason="hbench.probes.Sampler missing")
            return None
        probes = [self.reg.probes.get(n) for n in self.reg.probes.names()]
        try:
            return Sampler(probes, hz=self.s.sample_hz).start(spec.name, pid=running.pid, lane=running.spec)
        except Exception as exc:  # noqa: BLE001 - telemetry never stops a run
            warnings.append(f"telemetry: not measured ({type(exc).__name__}: {exc})")
            self.log.warning("telemetry.not_measured", lane=spec.name, reason=str(exc))
            return None

    def _throughput(self, running: Any) -> Throughput:
        try:
            from hbench.throughput import measure
        except ImportError:
            self.log.warning("throughput.not_measured", lane=running.spec.name, reason="hbench.throughput missing")
            return Throughput(error="not measured (no throughput probe in this install)")
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
        counts = {"done": 0, "passed": 0}
        lock = threading.Lock()
        progress.set_total(sched.remaining())
        work_dir = self.out / "agents" / _safe_name(spec.name)
        work_dir.mkdir(parents=True, exist_ok=True)
        from hbench.sandbox import ScratchPool

        # scratch copies made ahead and removed behind, off the attempts' path (benchmarks.overhead)
        self._pool = ScratchPool(self.fixtures, self.out / "scratch" / _safe_name(spec.name) / ".staging",
                                 ahead=min(self.s.concurrency, 8) + 1)

        def worker() -> None:
            while not self.stop.is_set() and not died:
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
                        text = f"{spec.name} · {st.prompt.id} #{n}/{st.runs}"
                        passes = f"{counts['passed']}/{counts['done']} passed"
                    dropped = sched.prune()
                    progress.advance(text, passes)
                    if dropped:
                        progress.set_total(counts["done"] + sched.remaining())

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
            self._pool.close()
        return died[0] if died else None

    def _attempt(self, spec: LaneSpec, running: Any, agent: Any, settings: dict[str, Any], prompt: Prompt,
                 n: int, api_key: str | None, work_dir: Path, died: list[str]) -> Attempt | None:
        """One attempt, checked, journaled and broadcast; None when it must run again."""
        from hbench.agents import AttemptContext
        from hbench.journal import light
        from hbench.sandbox import Sandbox, attempt_dir, remove_tree
        from hbench.scoring import attempt_outcome

        log = self.log
        dest = attempt_dir(self.out, spec.name, prompt.id, n)
        pool = getattr(self, "_pool", None)
        pool.create(dest) if pool is not None else Sandbox.create(self.fixtures, dest)
        ctx = AttemptContext(
            lane=running.spec, prompt=prompt, suite=self.suite, n=n, scratch=dest,
            timeout_s=settings["timeout_s"], max_turns=settings["max_turns"],
            max_tokens=settings["max_tokens"], temperature=settings["temperature"], api_key=api_key,
            tools=dict(self.tools), cancel=self.cancel, work_dir=work_dir,
        )
        label = f"{spec.name}:{prompt.id}#{n}"
        sampler = self._sampler_now
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
        try:
            attempt.check = prompt.check.check(attempt.answer)
        except Exception as exc:  # noqa: BLE001
            attempt.check = CheckResult(False, f"check {type(prompt.check).__name__} failed: {type(exc).__name__}: {exc}")
        aliases_fn = getattr(agent, "attempt_aliases", None)
        aliases = aliases_fn(attempt.tool_calls) if callable(aliases_fn) else getattr(agent, "tool_aliases", {})
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
                   started: str, agent: Any) -> Scorecard:
        from hbench.scoring import score_lane, score_prompt

        by_id = {s.prompt.id: s for s in states}
        prompt_scores = []
        for p in self.suite.prompts:
            if p.id in skipped:
                prompt_scores.append(score_prompt(p, [], skipped=skipped[p.id]))
            else:
                prompt_scores.append(score_prompt(p, by_id[p.id].done))
        lane = {"name": spec.name, "kind": spec.kind, "model": model, "base_url": scrub(base_url or ""),
                "served_model": served_model, "source": spec.source, **kind_info}
        sc = score_lane(lane, self.suite_info, prompt_scores, runs, adaptive=self.s.adaptive)
        sc.throughput = throughput
        sc.telemetry = telemetry
        sc.failed = failed
        sc.warnings = [scrub(w) for w in warnings]
        sc.agent = _safe(agent.describe, {"name": agent.name})
        sc.provenance = {
            "hbench_version": __version__,
            "started_at": started,
            "finished_at": _now(),
            "run_started_at": self.started_at,
            "host": {"name": platform.node(), "platform": platform.platform(), "machine": platform.machine(),
                     "cpus": os.cpu_count(), "python": platform.python_version()},
            "plugins": [{"name": i.name, "version": i.version, "builtin": i.builtin}
                        for i in self.plugins.plugin_list() if i.status == "ok"],
            "settings": {**self._lane_settings(spec), "runs": runs, "concurrency": self.s.concurrency,
                         "adaptive": self.s.adaptive, "core_only": self.s.core_only},
            "resumed": bool(self.opts.resume),
        }
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
