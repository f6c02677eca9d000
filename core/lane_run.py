"""One lane of a run, start to scorecard (:func:`run_lane`), and what follows it
(:func:`finish_lane`: ``hbench_lane_finished`` and the lane's ``<lane>.json``).

A lane's loop: its fingerprint goes into the journal; attempts already journaled are
skipped (``--resume``) and the rest planned (:func:`hbench.scheduler.plan`, sliced by
``--shard``); the lane is opened (:func:`hbench.lanes.open_lane`: managed lanes start
here), the telemetry :class:`~hbench.sampler.Sampler` runs around the suite, and
``--concurrency`` worker threads take attempts in order. Each attempt runs in a fresh
scratch copy of the rendered fixtures, is checked, journaled (fsynced) and broadcast
(``hbench_attempt_finished``). After the suite, ``hbench_measure_throughput`` (the built-in
throughput plugin) measures the still-warm lane, and the scorecard is built once
(:func:`hbench.scorecard_build.build_scorecard`).

The runner (:mod:`hbench.runner`), ``--parallel-lanes`` (:mod:`hbench.parallel`) and Ray
(the scale-out plugin's ``hbench_run_lanes``) all run lanes through this module; it knows none of them.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import cattrs

from hbench.agents import AttemptContext
from hbench.checks import run_check
from hbench.errors import HBenchError, LaneError
from hbench.journal import lane_fingerprint, light
from hbench.lanes import LaneWaitCancelled, api_key_for, open_lane
from hbench.logging import scrub
from hbench.models import Attempt, CheckResult, LaneSpec, Prompt, Scorecard, Telemetry, Throughput
from hbench.report import scorecard_filename
from hbench.sampler import Sampler
from hbench.sandbox import Sandbox, ScratchPool, attempt_dir, remove_tree, safe_component
from hbench.scenario import judge
from hbench.scheduler import PromptState, Scheduler, plan
from hbench.scorecard_build import LaneOutcome, LaneScorecards, build_scorecard, now, safe
from hbench.scoring import attempt_outcome, error_summary
from hbench.shard import select, write_manifest
from hbench.text import valid_text

if TYPE_CHECKING:
    from hbench.agents import Agent
    from hbench.lanes import RunningLane
    from hbench.progress import Progress
    from hbench.run_state import RunState


def run_lane(run: RunState, spec: LaneSpec, progress: Progress, *, node: str | None = None) -> Scorecard:
    """Run lane ``spec`` of ``run`` and return its scorecard. Once the run is stopped
    (Ctrl-C, a fatal error) no lane is opened, but the lane still gets its scorecard:
    complete false, and why. ``node``: where it ran (a Ray task's node), for provenance."""
    return _LaneRun(run, spec, progress).execute(node)


def finish_lane(run: RunState, spec: LaneSpec, sc: Scorecard, scorecards: LaneScorecards) -> bool:
    """``hbench_lane_finished`` and the lane's ``<lane>.json``; False when the lane
    failed or its scorecard could not be written. One lane at a time (thread-safe)."""
    with run.finish_lock:
        run.plugins.broadcast("hbench_lane_finished", scorecard=sc, lane=spec)
        written = _write_lane_scorecard(run, sc, scorecards)
    return written and not sc.failed


def _write_lane_scorecard(run: RunState, sc: Scorecard, scorecards: LaneScorecards) -> bool:
    """The per-lane reporters (``Reporter.per_lane``: the json scorecard) write this lane's
    file now (a stopped or crashed run keeps every finished lane's scorecard); the
    scorecard joins ``scorecards``."""
    scorecards.add(sc)
    lane = str(sc.lane.get("name") or "lane")
    fname = scorecard_filename(lane)
    other = run.json_files.setdefault(fname, lane)
    ok = True
    for rep in (r for r in run.reporters if getattr(r, "per_lane", False)):
        try:
            if other != lane:
                raise ValueError(f"lanes {other!r} and {lane!r} would both be written to {fname}; rename one")
            rep.write([sc], run.out, run.context())
        except HBenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - one broken reporter must not lose the rest
            run.log.error("report.failed", reporter=getattr(rep, "name", "?"), lane=lane,
                          error=scrub(f"{type(exc).__name__}: {exc}"))
            ok = False
    return ok


def lost_lane_scorecard(run: RunState, spec: LaneSpec, why: str, started: str, node: str | None = None) -> Scorecard:
    """The scorecard of a lane that never ran here (its Ray node was lost, or never
    there): its journaled attempts scored, the rest missing; ``complete: false`` saying why."""
    settings = run.lane_settings(spec)
    agent = run.reg.agents.get(settings.agent)
    runs = int(settings.runs)  # type: ignore[arg-type] - resolved with the suite: never None
    skipped, states = plan(run.suite.prompts, run.s, agent, runs, run.journal.completed(spec.name))
    stopped = f"{why}; resume with {run.resume_command()}"
    return build_scorecard(run, LaneOutcome(
        spec=spec, agent=agent, runs=runs, states=states, skipped=skipped, started=started,
        base_url=spec.base_url, model=spec.model, warnings=[stopped],
        missing=sum(len(s.pending) for s in states), stopped=stopped, node=node))


class _LaneRun:
    """One lane's loop; what its attempts share while it runs (lanes may run side by side)."""

    def __init__(self, run: RunState, spec: LaneSpec, progress: Progress):
        self.run, self.spec, self.progress = run, spec, progress
        self.log = run.log
        self.settings = run.lane_settings(spec)
        self.agent: Agent = run.reg.agents.get(self.settings.agent)
        self.halted: str | None = None  # why the lane stopped early (K errored attempts in a row)
        self.sampler: Sampler | None = None
        self.pool: ScratchPool | None = None

    def execute(self, node: str | None) -> Scorecard:
        run, spec, progress, log, agent = self.run, self.spec, self.progress, self.log, self.agent
        runs = int(self.settings.runs)  # type: ignore[arg-type] - resolved with the suite: never None
        not_started = run.stop.is_set()  # the run was stopped before this lane began
        if not not_started:
            run.journal.begin_lane(spec.name, lane_fingerprint(spec, self.settings))
        done = run.journal.completed(spec.name) if run.opts.resume else {}
        # --resume re-runs errored attempts: the new record supersedes the old (the journal keeps both)
        rerun = sorted(k for k, a in done.items() if a.error is not None)
        done = {k: a for k, a in done.items() if a.error is None}
        if rerun:
            log.info("run.rerun_errored", lane=spec.name, attempts=len(rerun))
        skipped, states = plan(run.suite.prompts, run.s, agent, runs, done)
        if run.s.shard is not None:  # --shard I/N: this slice of the lane's plan only (hbench.shard)
            self._shard_slice(states, runs)
        sched = Scheduler(states, run.s.adaptive)
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
        finished_rec = run.journal.finished_record(spec.name) if run.opts.resume else None
        started = now()
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
            kind = run.reg.lane_kinds.get(spec.kind)
            progress.lane(spec.name, sched.remaining())
            try:
                with open_lane(spec, kind, out_dir=run.out, headroom_gb=run.s.headroom_gb,
                               on_status=lambda t: progress.status(f"{spec.name}: {t}", lane=spec.name),
                               cancel=run.cancel) as running:
                    served_model = running.served_model
                    base_url, model = running.spec.base_url, running.spec.model
                    kind_info = {**safe(lambda: kind.describe(running.spec), {}),
                                 **safe(lambda: running.readiness(), {})}  # ready_s, resting memory (issue 21)
                    warnings.extend(running.warnings)
                    self.sampler = self._start_sampler(running, warnings)
                    try:
                        died = self._attempts(running, sched)
                    finally:
                        if self.sampler is not None:
                            telemetry = safe(self.sampler.stop, Telemetry())
                        self.sampler = None
                    if died:
                        failed = died
                    elif self.halted:
                        log.error("lane.stopped", lane=spec.name, reason=self.halted)
                        warnings.append(self.halted)
                    elif not run.stop.is_set():
                        progress.status(f"{spec.name}: measuring throughput", lane=spec.name)
                        throughput = self._throughput(running)
                        run.journal.lane_finished(spec.name, {
                            "throughput": attrs.asdict(throughput), "telemetry": attrs.asdict(telemetry),
                            "served_model": served_model, "base_url": base_url, "model": model,
                        })
            except LaneWaitCancelled:
                pass  # Ctrl-C while it was getting ready: interrupted (below), not failed
            except LaneError as exc:
                failed = scrub(str(exc))
            finally:
                run.outdir.remove(run.work / "scratch" / safe_component(spec.name))
            if failed:
                log.error("lane.failed", lane=spec.name, reason=failed)
                run.journal.lane_failed(spec.name, failed)
        missing = sched.remaining() + sum(s.in_flight for s in states)
        stopped = self.halted
        if run.stop.is_set() and not rebuilt:
            stopped = run.stop_reason(not_started)
            warnings.append(f"interrupted: {missing} planned attempts did not run; resume with {run.resume_command()}")
        if throughput.error and not failed and not run.stop.is_set() and not self.halted:
            warnings.append(f"throughput: {throughput.error}")
        return build_scorecard(run, LaneOutcome(
            spec=spec, agent=agent, runs=runs, states=states, skipped=skipped, started=started,
            throughput=throughput, telemetry=telemetry, served_model=served_model, base_url=base_url,
            model=model, kind_info=kind_info, failed=failed, warnings=warnings, missing=missing,
            stopped=stopped, node=node))

    def _shard_slice(self, states: list[PromptState], runs: int) -> None:
        """``--shard I/N``: keep this shard's part of the lane's plan (every planned
        ``(prompt, n)`` in suite order, :func:`hbench.shard.select`), and record the whole
        plan in ``OUT/shard.json`` so ``hbench merge`` can tell what a missing shard held."""
        run, spec = self.run, self.spec
        index, count = run.s.shard  # type: ignore[misc]
        lane_plan = [(st.prompt.id, n) for st in states for n in range(1, runs + 1)]
        mine = set(select(spec.name, lane_plan, index, count))
        for st in states:
            st.pending = [n for n in st.pending if (st.prompt.id, n) in mine]
            st.done = [a for a in st.done if (st.prompt.id, a.n) in mine]
        with run.finish_lock:
            if run.shard_manifest is None:
                run.shard_manifest = {"index": index, "count": count, "suite": run.suite_info,
                                      "suite_path": str(run.suite.path), "run_id": run.run_id, "lanes": {}}
            run.shard_manifest["lanes"][spec.name] = {
                "fingerprint": lane_fingerprint(spec, self.settings), "runs": runs,
                "plan": [[pid, n] for pid, n in lane_plan]}
            write_manifest(run.out, run.shard_manifest)

    def _start_sampler(self, running: RunningLane, warnings: list[str]) -> Sampler | None:
        reg, spec = self.run.reg, self.spec
        probes = [reg.probes.get(n) for n in reg.probes.names()]
        try:
            return Sampler(probes, hz=self.run.s.sample_hz).start(spec.name, pid=running.pid, lane=running.spec)
        except Exception as exc:  # noqa: BLE001 - telemetry never stops a run
            warnings.append(f"telemetry: not measured ({type(exc).__name__}: {exc})")
            self.log.warning("telemetry.not_measured", lane=spec.name, reason=str(exc))
            return None

    def _throughput(self, running: RunningLane) -> Throughput:
        """``hbench_measure_throughput``: the first plugin that answers (a plugin that raises is
        logged and the next asked); none: the lane's throughput says so and the run goes on."""
        try:
            plugin, result = self.run.plugins.first_result("hbench_measure_throughput", running=running)
            if result is None:
                return Throughput(error="no throughput plugin")
            if not isinstance(result, Throughput):
                return Throughput(error=f"plugin {plugin!r} answered {type(result).__name__}, not a Throughput")
            return result
        except Exception as exc:  # noqa: BLE001
            self.log.warning("throughput.failed", lane=running.spec.name, error=f"{type(exc).__name__}: {exc}")
            return Throughput(error=scrub(f"{type(exc).__name__}: {exc}"))

    # ----------------------------------------------------------------- attempts
    def _attempts(self, running: RunningLane, sched: Scheduler) -> str | None:
        """Run every planned attempt with K workers. Returns why the lane died, or None."""
        run, spec, progress = self.run, self.spec, self.progress
        api_key = api_key_for(running.spec)
        died: list[str] = []
        halted: list[str] = []  # K errored attempts in a row: stop this lane, not the run
        k_errors = run.s.max_consecutive_errors
        streak = {"errored": 0}
        counts = {"done": 0, "passed": 0}
        told: set[str] = set()  # prompts whose plain progress line was written
        t_lane = time.monotonic()
        lock = threading.Lock()
        progress.set_total(sched.remaining(), lane=spec.name)
        work_dir = run.work / "agents" / safe_component(spec.name)
        work_dir.mkdir(parents=True, exist_ok=True)
        # scratch copies made ahead and removed behind, off the attempts' path (benchmarks.overhead)
        pool = self.pool = ScratchPool(run.fixtures, run.work / "scratch" / safe_component(spec.name) / ".staging",
                                       ahead=min(run.s.concurrency, 8) + 1)

        def worker() -> None:
            while not run.stop.is_set() and not died and not halted:
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
                    attempt = self._attempt(running, st.prompt, n, api_key, work_dir, died)
                except Exception as exc:  # noqa: BLE001 - outside the agent: disk full, journal unwritable
                    run.record_fatal(exc)
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

        k = max(1, min(run.s.concurrency, sched.remaining() or 1))
        threads = [threading.Thread(target=worker, name=f"hbench-attempt-{i}", daemon=True) for i in range(k)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:  # a second Ctrl-C: cancel what is in flight and leave now
            run.interrupt()
            raise
        finally:
            pool.close()
        self.halted = halted[0] if halted and not died else None
        return died[0] if died else None

    def _attempt(self, running: RunningLane, prompt: Prompt, n: int, api_key: str | None, work_dir: Path,
                 died: list[str]) -> Attempt | None:
        """One attempt, checked, journaled and broadcast; None when it must run again."""
        run, spec, agent, settings, log = self.run, self.spec, self.agent, self.settings, self.log
        dest = attempt_dir(run.work, spec.name, prompt.id, n)
        pool = self.pool
        pool.create(dest) if pool is not None else Sandbox.create(run.fixtures, dest)
        ctx = AttemptContext(
            lane=running.spec, prompt=prompt, suite=run.suite, n=n, scratch=dest,
            timeout_s=settings.timeout_s, max_turns=settings.max_turns,
            max_tokens=settings.max_tokens, temperature=settings.temperature, api_key=api_key,
            tools=dict(run.prompt_tools[prompt.id]), cancel=run.cancel, work_dir=work_dir,
        )
        label = f"{spec.name}:{prompt.id}#{n}"
        sampler = self.sampler
        if sampler is not None:
            safe(lambda: sampler.attempt_started(label), None)
        t0 = time.monotonic()
        try:
            attempt = agent.run_attempt(ctx)
        except Exception as exc:  # noqa: BLE001 - a driver bug is this attempt's error, not a crash
            log.error("attempt.agent_crashed", lane=spec.name, prompt=prompt.id, n=n,
                      error=scrub(f"{type(exc).__name__}: {exc}"))
            attempt = Attempt(lane=spec.name, prompt_id=prompt.id, n=n, agent=agent.name,
                              error=scrub(f"agent {agent.name!r} crashed: {type(exc).__name__}: {exc}"),
                              wall_s=time.monotonic() - t0, finished_at=now())
        finally:
            pool.discard(dest) if pool is not None else remove_tree(dest)
            if sampler is not None:
                safe(lambda: sampler.attempt_finished(label), None)
        if run.cancel.is_set() and (attempt.error or attempt.runaway):
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
            attempt.check = CheckResult(False, f"not checked: the attempt errored ({error_summary(attempt.error)})")
        aliases_fn = getattr(agent, "attempt_aliases", None)
        aliases = aliases_fn(attempt.tool_calls) if callable(aliases_fn) else getattr(agent, "tool_aliases", {})
        if attempt.error is None:
            # the expected tool not called is named first in the why (hbench.scenario.judge)
            attempt.check = judge(prompt, attempt, decoys=run.prompt_decoys[prompt.id],
                                  fail_first=run.prompt_fail_first[prompt.id], check=bounded, aliases=aliases)
        attempt.check_s = check_s[0]
        attempt.tool_ok, attempt.passed = attempt_outcome(attempt, prompt, aliases)
        run.journal.append_attempt(attempt)
        log.info("attempt.finished", lane=spec.name, prompt=prompt.id, n=n, passed=attempt.passed,
                 runaway=attempt.runaway, error=attempt.error, wall_s=round(attempt.wall_s, 3))
        run.plugins.broadcast("hbench_attempt_finished", attempt=attempt, lane=spec, prompt=prompt)
        return light(attempt)


# --------------------------------------------------------------------------- helpers


_malloc_trim: Any = None


def release_free_memory() -> None:
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
                fn = ctypes.CDLL(None).malloc_trim
                fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
                _malloc_trim = fn
            except (OSError, AttributeError):  # musl and others
                pass
    if _malloc_trim:
        _malloc_trim(0)


def _died(running: RunningLane) -> str:
    stopped = getattr(running, "stop_reason", None)  # hbench stopped it (the memory floor): say why
    if stopped:
        return scrub(stopped)
    tail = safe(running.log_tail, "")
    return scrub(f"lane {running.spec.name!r} died mid-suite" + (f"; last log lines:\n{tail}" if tail else ""))


T = TypeVar("T")


def _structure(cls: type[T], data: object, default: T) -> T:
    if not isinstance(data, dict):
        return default
    try:
        return cattrs.Converter().structure(data, cls)
    except Exception:  # noqa: BLE001
        return default


__all__ = ["run_lane", "finish_lane", "lost_lane_scorecard", "release_free_memory"]
