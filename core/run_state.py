"""What the lanes of one run share: the settings, the suite, the selected lanes, the
results folder and journal, the tools each prompt offers, and how the run is stopped.

:class:`RunState` is built from the options (config read, settings resolved: bad input is
refused before anything runs), then :meth:`RunState.prepare` loads the suite, selects and
checks the lanes, claims ``--out``, renders the fixtures and opens the journal. The lane
loop (:mod:`hbench.lane_run`) runs one lane of it; the runner (:mod:`hbench.runner`) runs
them all, one after another, side by side (:mod:`hbench.parallel`) or on Ray
(:mod:`hbench.plugins.scaleout.ray_lanes`), which builds a RunState of its own for each lane's task.
"""

from __future__ import annotations

import shlex
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from hbench.config import file_name_clashes, load_config
from hbench.errors import BadInput, HBenchError, SuiteError
from hbench.journal import Journal
from hbench.lane_select import select_lanes
from hbench.lanes import LaneKind, is_managed, with_kind
from hbench.logging import get_logger, scrub
from hbench.models import LaneSpec, Suite
from hbench.outdir import claim
from hbench.plugin_manager import get_plugins
from hbench.run_settings import RunOptions, Settings, resolve
from hbench.suite import load_suite, render_fixtures, resolve_suite
from hbench.suite_tools import build_suite_tools, offered_tools

if TYPE_CHECKING:
    from hbench.config import Config
    from hbench.plugin_manager import HBenchPlugins
    from hbench.reporters import Reporter
    from hbench.tools import Tool


class RunState:
    def __init__(self, opts: RunOptions, plugins: HBenchPlugins | None = None, config: Config | None = None):
        """``config``: an :class:`hbench.config.Config` to use instead of reading hbench.toml
        (a lane's Ray task gets its lane and ``[run]`` from the driver: hbench.plugins.scaleout.ray_lanes)."""
        self.opts = opts
        self.plugins = plugins or get_plugins()
        self.reg = self.plugins.registries
        self.config = config if config is not None else load_config(opts.config,
                                                                    lane_kinds=self.reg.lane_kinds.names())
        #: the run's settings; once the suite is loaded, with its defaults (per lane: lane_settings)
        self.s: Settings = resolve(opts, self.config.run, registries=self.reg)
        self.log = get_logger()
        self.stop = threading.Event()  # Ctrl-C: no new attempts
        self.cancel = threading.Event()  # Ctrl-C: cancel attempts in flight
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.fatal: str | None = None  # what stopped the run (disk full, journal unwritable)
        self._fatal_lock = threading.Lock()
        self.finish_lock = threading.Lock()  # lane_finished hooks and <lane>.json, one lane at a time
        self.shard_manifest: dict[str, Any] | None = None  # --shard: OUT/shard.json (hbench.lane_run)
        self.json_files: dict[str, str] = {}  # <lane>.json name -> the lane written to it

    # ----------------------------------------------------------------- setup
    def prepare(self) -> None:
        reg = self.reg
        if self.s.suite is None:
            raise BadInput(f"no suite to run: pass --suite NAME|FOLDER or set suite in {self._config_name()} [run] "
                           f"(no plugin marked a default suite; installed: {', '.join(reg.suites.names()) or 'none'})")
        try:
            resolve_suite(self.s.suite, reg)  # an unknown name: say which key or flag gave it
        except SuiteError as exc:
            key = "--suite" if self.opts.suite is not None else f"{self._config_name()}: run.suite"
            raise SuiteError(f"{key}: {exc}") from None
        self.suite: Suite = load_suite(self.s.suite, reg)
        self.s = resolve(self.opts, self.config.run, self.suite, registries=reg)
        self._check_selection()
        # a lane without `kind`: the default kind, by name
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
            agent_name = self.lane_settings(spec).agent
            if agent_name not in reg.agents:
                problems.append(f"lane {spec.name!r}: {reg.agents.unknown(agent_name)} ({self._agent_key(spec)})")
            else:
                ok, why = reg.agents.get(agent_name).usable()
                if not ok:
                    problems.append(f"agent {agent_name!r} cannot run: {why}")
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
        suite_tools = build_suite_tools(self.suite)
        self.prompt_tools: dict[str, dict[str, Tool]] = {}
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

    def _config_name(self) -> str:
        return Path(self.config.path).name if self.config.path else "hbench.toml"

    def _agent_key(self, spec: LaneSpec) -> str:
        """Where the agent of ``spec`` was named, as the user wrote it (issue 15)."""
        if spec.agent:
            return f"{spec.source}: lanes.{spec.name}.agent" if spec.source.endswith(".toml") else f"lane {spec.name!r} agent"
        return "--agent" if self.opts.agent is not None else f"{self._config_name()}: run.agent"

    def _reporters(self) -> list[Reporter]:
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

    # ----------------------------------------------------------------- per lane
    def lane_settings(self, spec: LaneSpec) -> Settings:
        """The settings of lane ``spec``'s attempts (:func:`hbench.run_settings.resolve`):
        what its journal fingerprint hashes and its scorecard's provenance records."""
        return resolve(self.opts, self.config.run, self.suite, spec, registries=self.reg)

    # ----------------------------------------------------------------- stopping
    def record_fatal(self, exc: BaseException) -> None:
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

    def stop_reason(self, not_started: bool) -> str:
        why = f"run stopped by a fatal error ({self.fatal})" if self.fatal else "interrupted (Ctrl-C)"
        return f"{why} before this lane started" if not_started else why

    def resume_command(self) -> str:
        argv = list(self.opts.argv) if self.opts.argv is not None else ["run", "--out", str(self.out)]
        if "--resume" not in argv:
            argv.append("--resume")
        return scrub(shlex.join(["hbench", *argv]))

    def context(self, fail_under: list[str] | None = None) -> dict[str, Any]:
        """What reporters are given besides the scorecards."""
        # allow_mixed: lanes of one run share the suite, but may run different prompt sets
        # (a conditional prompt one lane's agent cannot serve): each set is ranked apart
        return {"journal": self.journal_path, "suite": self.suite, "allow_mixed": True, "prefer": self.s.prefer,
                "fail_under": list(fail_under or [])}


__all__ = ["RunState"]
