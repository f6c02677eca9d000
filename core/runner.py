"""``hbench run``: lanes x prompts x attempts, journaled as they end.

:func:`run` is the whole command: the settings resolved (:mod:`hbench.run_settings`), the
run prepared (:class:`hbench.run_state.RunState`: suite, lanes from
:mod:`hbench.lane_select`, ``--out``, journal), then each selected lane run by
:func:`hbench.lane_run.run_lane`, one after another (or side by side:
:mod:`hbench.parallel`, or a plugin's ``hbench_run_lanes``: ``--ray``). For each lane:

1. the lane's fingerprint goes into the journal (``--resume`` refuses a changed lane);
2. attempts already journaled are skipped (``--resume``); the rest are planned in suite
   order, ``runs`` per prompt; conditional prompts the agent cannot serve and non-core
   prompts under ``--core-only`` are reported as skipped;
3. the lane is opened (:func:`hbench.lanes.open_lane`: managed lanes start here), the
   telemetry :class:`~hbench.sampler.Sampler` runs around the suite, and ``--concurrency``
   worker threads take attempts in order (:mod:`hbench.scheduler`: ``--adaptive`` stops a
   prompt once its strict-majority verdict can no longer change);
4. each attempt runs in a fresh scratch copy of the rendered fixtures
   (``OUT/.hbench/scratch/<lane>/<prompt>/<n>``, removed afterwards; ``OUT/.hbench`` is
   hbench's marked working folder, the only place it deletes: :mod:`hbench.outdir`), is checked
   (``prompt.check.check``, :func:`hbench.scoring.attempt_outcome`), appended to the
   journal (fsynced) and broadcast (``hbench_attempt_finished``);
5. after the suite, ``hbench_measure_throughput`` measures the still-warm lane; the
   scorecard is built once, complete (:func:`hbench.scorecard_build.build_scorecard`:
   :func:`hbench.scoring.score_lane` + throughput, telemetry, provenance; never changed
   afterwards), ``hbench_lane_finished`` is broadcast and the json reporter writes the
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

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Callable, Sequence

import attrs

from hbench.config import available_lanes
from hbench.errors import BadInput, HBenchError
from hbench.lane_run import finish_lane, release_free_memory, run_lane
from hbench.lane_select import discovered_lanes, select_lanes
from hbench.logging import scrub
from hbench.models import Scorecard
from hbench.parallel import run_lanes_parallel
from hbench.progress import Progress
from hbench.ranking import Ranked, fail_under_failures, rank
from hbench.report import comparable_key
from hbench.run_settings import MAX_CONSECUTIVE_ERRORS, RunOptions, parse_fail_under
from hbench.run_state import RunState
from hbench.scorecard_build import LaneScorecards

if TYPE_CHECKING:
    from hbench.plugin_manager import HBenchPlugins

#: exit codes (DESIGN.md, CLI)
EXIT_OK, EXIT_LANE_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_INCOMPLETE, EXIT_FAIL_UNDER = 3, 4  # a lane incomplete (errored/missing attempts); --fail-under missed


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


class Runner(RunState):
    """The whole run: :class:`~hbench.run_state.RunState` prepared, every lane run (one
    after another, side by side or on Ray), the cross-lane reports and the exit code."""

    # ----------------------------------------------------------------- signals
    def _install_sigint(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = signal.getsignal(signal.SIGINT)

        def handler(_sig: int, _frame: FrameType | None) -> None:
            if self.stop.is_set():  # a second Ctrl-C: give up at once
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt
            self.stop.set()
            self.cancel.set()
            sys.stderr.write("\ninterrupted: cancelling attempts in flight and stopping the lane "
                             "(Ctrl-C again to quit at once)\n")

        signal.signal(signal.SIGINT, handler)
        return lambda: signal.signal(signal.SIGINT, previous)

    # ----------------------------------------------------------------- main
    def run(self) -> RunResult:
        try:
            return self._run()
        finally:
            outdir = getattr(self, "outdir", None)
            if outdir is not None:
                outdir.release()  # the lock on --out

    def _run(self) -> RunResult:
        self.prepare()
        restore = self._install_sigint()
        scorecards = LaneScorecards()
        exit_code = EXIT_OK
        tty = sys.stderr.isatty()
        show = self.opts.progress if self.opts.progress is not None else tty
        try:
            with Progress(bool(show), plain=self.opts.progress is None and not tty) as progress:
                # a plugin may run the lanes elsewhere (--ray: the scale-out plugin's Ray tasks);
                # else --parallel-lanes: threads in this process (hbench.parallel). The
                # scorecards are kept in lane order, whatever order lanes finish in
                _, parts = self.plugins.first_result("hbench_run_lanes", isolate=False, state=self, progress=progress)
                if parts is None and self.opts.ray:
                    raise BadInput(f"--ray {self.opts.ray}: no plugin runs lanes on Ray (hook hbench_run_lanes); "
                                   "the built-in scale-out plugin does, with Ray: pip install 'hermes-bench[ray]'")
                if parts is None and self.s.parallel_lanes > 1 and len(self.lanes) > 1:
                    parts = run_lanes_parallel(self, progress)
                side_by_side = parts is not None
                if parts is not None:
                    for part in parts:
                        scorecards.extend(part)
                    if any(sc.failed for sc in scorecards) or any(p.write_failed for p in parts):
                        exit_code = EXIT_LANE_FAILED
                for spec in self.lanes if not side_by_side else ():
                    # once the run is stopped (Ctrl-C, a fatal error) no lane is opened, but
                    # each left still gets its scorecard: complete false, and why
                    sc = run_lane(self, spec, progress)
                    if not finish_lane(self, spec, sc, scorecards):
                        exit_code = EXIT_LANE_FAILED
                    del sc  # kept compressed in LaneScorecards: memory stays flat over lanes
                    release_free_memory()
        finally:
            restore()
            self.journal.close()
            for leftover in (self.work / "scratch",):
                try:
                    leftover.rmdir()  # only when empty: every attempt's copy is already gone
                except OSError:
                    pass
        interrupted = self.stop.is_set()
        fail_under = self._fail_under(scorecards)
        # the cross-lane reports, once: after the last lane, or what finished before a stop
        if len(scorecards) and not self._write_reports(scorecards, fail_under):
            exit_code = EXIT_LANE_FAILED
        if self.fatal:
            raise HBenchError(f"run stopped: {self.fatal}\nevery finished attempt is in {self.journal_path}; "
                              f"once fixed, resume with: {self.resume_command()}")
        self.plugins.broadcast("hbench_run_finished", scorecards=scorecards, out_dir=self.out,
                               context=self.context(fail_under))
        if interrupted:
            exit_code = EXIT_INTERRUPTED
            sys.stderr.write(f"stopped; every finished attempt is in {self.journal_path}.\n"
                             f"resume with: {self.resume_command()}\n")
        exit_code, verdict = self._verdict(scorecards, exit_code, fail_under)
        return RunResult(scorecards=scorecards, exit_code=exit_code, out_dir=self.out,
                         journal=self.journal_path, interrupted=interrupted, verdict=verdict,
                         fail_under=list(fail_under))

    def _fail_under(self, scorecards: Sequence[Scorecard]) -> list[str]:
        """``--fail-under``: the lanes that missed a threshold, ranked as the reports rank
        them (within each comparable set), one line each."""
        if not self.s.fail_under or not len(scorecards):
            return []
        groups: dict[tuple[object, ...], list[Scorecard]] = {}
        for sc in scorecards:
            groups.setdefault(comparable_key(sc), []).append(sc)
        ranked: list[Ranked] = [r for cards in groups.values() for r in rank(cards, prefer=self.s.prefer)]
        return fail_under_failures(ranked, self.s.fail_under)

    def _verdict(self, scorecards: Sequence[Scorecard], exit_code: int,
                 fail_under: list[str]) -> tuple[int, str | None]:
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
        if fail_under:
            spec = ",".join(f"{k}={v:g}" for k, v in self.s.fail_under.items())
            return EXIT_FAIL_UNDER, f"exit 4: --fail-under {spec} missed: {'; '.join(fail_under)}"
        return exit_code, None

    def _write_reports(self, scorecards: LaneScorecards, fail_under: list[str]) -> bool:
        """Every reporter but the per-lane ones (written as each lane finished) over all
        the run's scorecards."""
        others = [r for r in self.reporters if not getattr(r, "per_lane", False)]
        if not others:
            return True
        ok = True
        cards = list(scorecards)
        for rep in others:
            try:
                rep.write(cards, self.out, self.context(fail_under))
            except HBenchError:
                raise
            except Exception as exc:  # noqa: BLE001 - one broken reporter must not lose the rest
                ok = False
                self.log.error("report.failed", reporter=getattr(rep, "name", "?"),
                               error=scrub(f"{type(exc).__name__}: {exc}"))
        return ok


def run(opts: RunOptions, plugins: HBenchPlugins | None = None) -> RunResult:
    """``hbench run``: see the module docstring. Raises BadInput for bad input (exit 2)."""
    return Runner(opts, plugins).run()


__all__ = ["RunOptions", "RunResult", "Runner", "run", "select_lanes", "available_lanes", "discovered_lanes",
           "parse_fail_under", "LaneScorecards", "MAX_CONSECUTIVE_ERRORS", "EXIT_OK", "EXIT_LANE_FAILED",
           "EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_INCOMPLETE", "EXIT_FAIL_UNDER"]
