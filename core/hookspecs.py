"""Hook specifications: the whole plugin API of hbench.

Every hook is prefixed ``hbench_``. Registration hooks receive a ``register`` callable
instead of returning values, so hbench validates each object as it arrives and knows
which plugin registered it (a duplicate name is an error naming both plugins).

One shape for every registration hook: ``register(obj, name=None, default=False)`` where
``obj`` is the class that does the work (``register(MyLaneKind)``, ``register(MyReporter)``,
``register(MyCheck)``), or, for what is data, the data itself (a ``LaneSpec``, a suite
folder). hbench keeps one instance of a lane kind, reporter, agent or tool (made with no
arguments; an instance is accepted too), and the class of a check or probe (one per
prompt, one per run). ``name`` defaults to ``obj.name``;
``default=True`` marks the entry used when none is named (the agent of a bare ``hbench
run``, the kind of a lane without ``kind``, the suite without ``--suite``). The first
default registered wins (built-ins register first); a second is logged and ignored.

Implement hooks with ``from hbench import hookimpl``. Plugins are found through the
setuptools entry-point group ``hbench``::

    [project.entry-points.hbench]
    gptoss = "hbench_lane_gptoss"

This docstring-per-hook file is the reference documentation; ``tests/test_hookspecs.py``
fails when a hook lacks a docstring or a test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import typer

    from hbench.agents import Agent
    from hbench.lanes import LaneKind, RunningLane
    from hbench.models import Attempt, LaneSpec, Prompt, Scorecard, Throughput
    from hbench.probes import Probe
    from hbench.progress import Progress
    from hbench.reporters import Reporter
    from hbench.run_state import RunState
    from hbench.scorecard_build import LaneScorecards
    from hbench.tools import Tool

hookspec = pluggy.HookspecMarker("hbench")


# --------------------------------------------------------------------------- register callables
# One shape for every registration hook: ``register(obj, name=None, default=False)``, ``obj``
# the class (or, for data, the value); ``name`` defaults to ``obj.name``. Each hook's
# ``register`` is typed by what it accepts.


class RegisterLaneKind(Protocol):
    def __call__(self, kind: type[LaneKind] | LaneKind, name: str | None = None, default: bool = False) -> None: ...


class RegisterLane(Protocol):
    def __call__(self, spec: LaneSpec, name: str | None = None, default: bool = False) -> None: ...


class RegisterCheck(Protocol):
    def __call__(self, cls: type[Any], name: str | None = None, default: bool = False) -> None: ...


class RegisterProbe(Protocol):
    def __call__(self, cls: type[Probe], name: str | None = None, default: bool = False) -> None: ...


class RegisterReporter(Protocol):
    def __call__(self, reporter: type[Reporter] | Reporter, name: str | None = None, default: bool = False) -> None: ...


class RegisterAgent(Protocol):
    def __call__(self, agent: type[Agent] | Agent, name: str | None = None, default: bool = False) -> None: ...


class RegisterTool(Protocol):
    def __call__(self, tool: type[Tool] | Tool, name: str | None = None, default: bool = False) -> None: ...


class RegisterFound(Protocol):
    """``hbench_discover_lanes``' register: a lane found running (no name, no default)."""

    def __call__(self, spec: LaneSpec) -> None: ...


class RegisterSuite(Protocol):
    def __call__(self, path: Path, name: str | None = None, default: bool = False) -> None: ...

# --------------------------------------------------------------------------- registration


@hookspec
def hbench_register_lane_kinds(register: RegisterLaneKind) -> None:
    """Register lane kinds (serving backends).

    ``register(MyKind)`` where ``MyKind`` subclasses :class:`hbench.LaneKind` (hbench
    keeps one instance; an instance is accepted too): it knows how to reach,
    health-check, start, stop and describe one kind of server
    (``openai``, ``llamacpp``, ``vllm``, ``nim``, ``ollama``, ``embedded``).
    """


@hookspec
def hbench_register_lanes(register: RegisterLane) -> None:
    """Register ready-made candidate lanes.

    ``register(spec)`` where ``spec`` is a :class:`hbench.models.LaneSpec`. This is what
    ``pip install hermes-bench-lane-gptoss`` adds; ``hbench run --lanes all`` runs them.
    Lanes in ``hbench.toml`` with the same name override plugin lanes.
    """


@hookspec
def hbench_register_checks(register: RegisterCheck) -> None:
    """Register check kinds.

    ``register(cls)`` where ``cls`` is an attrs class with ``name: ClassVar[str]`` (the
    ``kind`` used in prompts), attrs fields for its options (validated with cattrs when a
    suite loads, extra keys refused) and ``check(self, answer: str) -> CheckResult``.
    Optional class variables: ``regex_fields`` (fields whose substituted placeholder
    values are regex-escaped) and ``gate`` (e.g. ``"honesty"``: failing such a prompt by
    majority makes a lane unrankable); an optional classmethod
    ``options_from_prompt(prompt, options) -> options`` fills options from the prompt text.
    """


@hookspec
def hbench_register_probes(register: RegisterProbe) -> None:
    """Register telemetry probes.

    ``register(cls)`` where ``cls`` is a :class:`hbench.probes.Probe` subclass (the
    runner makes one instance per run: probes hold state): ``name``,
    ``available() -> (bool, why)`` and ``sample() -> dict``. Import heavy libraries
    (pynvml) inside those methods, never at module import.
    """


@hookspec
def hbench_register_reporters(register: RegisterReporter) -> None:
    """Register result sinks.

    ``register(MyReporter)`` where ``MyReporter`` subclasses :class:`hbench.Reporter`
    (hbench keeps one instance; an instance is accepted too): ``name`` and ``write(scorecards, out_dir, context) -> list[Path]``. Selected with
    ``hbench run --report NAME,...`` and used by ``hbench report``.
    """


@hookspec
def hbench_register_agents(register: RegisterAgent) -> None:
    """Register agent drivers.

    ``register(MyAgent)`` where ``MyAgent`` subclasses :class:`hbench.Agent` (hbench keeps
    one instance; an instance is accepted too): ``name``,
    ``capabilities``, ``usable() -> (bool, why)`` and
    ``run_attempt(ctx) -> Attempt``. Chosen with ``--agent`` or a lane's ``agent``.
    """


@hookspec
def hbench_register_tools(register: RegisterTool) -> None:
    """Register sandboxed tools for the built-in agent.

    ``register(MyTool)`` where ``MyTool`` subclasses :class:`hbench.Tool` (hbench keeps one
    instance; a tool made from data, like a decoy from its catalogue line, is registered
    as that instance): ``name``, a JSON
    ``parameters`` schema, ``description`` and ``call(args, sandbox) -> str``. Every path
    must resolve through the sandbox.
    """


@hookspec
def hbench_register_suites(register: RegisterSuite) -> None:
    """Register suites.

    ``register(path, name=NAME)`` where ``path`` is a suite folder (``suite.toml``,
    ``prompts.jsonl``, ``ground_truth.json``, ``fixtures/``). ``hbench run --suite NAME``.
    """


@hookspec
def hbench_discover_lanes(register: RegisterFound, host: str) -> None:
    """Find lanes already running on ``host`` (``hbench run --discover`` when nothing is
    configured).

    ``register(spec)`` for each :class:`hbench.models.LaneSpec` found (kind, base_url,
    model). Called only when discovery is asked for; probe with short, bounded timeouts,
    and only ``host``. The built-in finder probes the usual ports of vLLM, llama.cpp,
    SGLang, Ollama, LiteLLM and LM Studio (``hbench discover``).
    """


@hookspec
def hbench_register_commands(app: typer.Typer) -> None:
    """Add commands to the ``hbench`` CLI: ``@app.command("mycmd") def mycmd(): ...`` (or
    ``app.add_typer(group)``). ``app`` is this plugin's own; its commands join hbench's the
    first time a command core lacks is looked up or the commands are listed. The built-in
    commands (doctor, throughput, probe, report, validate, the listings) come this way too.
    Keep typer the only import at the module's top and import the module doing the work
    inside the command, so ``hbench --help`` stays fast. A registration that raises, or a
    name already taken (by core, a built-in or a plugin registered earlier), leaves all of
    this plugin's commands out and marks the plugin broken (fatal with ``--strict-plugins``)."""


# --------------------------------------------------------------------------- broadcasts
# Called for every plugin; return values are ignored. Live sinks use these to stream.


@hookspec
def hbench_attempt_finished(attempt: Attempt, lane: LaneSpec, prompt: Prompt) -> None:
    """An attempt was scored and journaled. Called once per attempt, as it ends."""


@hookspec
def hbench_lane_finished(scorecard: Scorecard, lane: LaneSpec) -> None:
    """A lane finished (or failed); its scorecard is final."""


@hookspec
def hbench_run_finished(scorecards: list[Scorecard], out_dir: Path, context: dict[str, Any]) -> None:
    """A run finished; every lane's scorecard is final and reports are written."""


# --------------------------------------------------------------------------- one plugin answers
# firstresult: plugins are asked one at a time, in pluggy's call order (tryfirst first, then the
# last registered first, so a third-party plugin before the built-ins; trylast last). The first
# answer that is not None wins and the rest are not asked.


@hookspec(firstresult=True)
def hbench_measure_throughput(running: RunningLane) -> Throughput | None:
    """Measure a lane's throughput: what the scorecard's ``throughput`` holds (decode
    tok/s, TTFT, the samples, the server's own figure, the bounded sweeps).

    Called once per lane, on the still-warm lane after its last attempt and before it is
    stopped (not when the run was stopped or the lane died). Return a
    :class:`hbench.models.Throughput`, or None to leave the lane to the next plugin (a
    plugin that knows only its own lane kind). The built-in throughput plugin answers for
    every lane; when no plugin answers, the lane's throughput is
    ``Throughput(error="no throughput plugin")`` and the run goes on. Must not raise for a
    server problem (refused, dropped, timed out): return ``Throughput(error=...)`` saying
    what happened. A plugin that raises anyway is logged (its traceback at debug level)
    and the next plugin is asked.
    """


@hookspec(firstresult=True)
def hbench_run_lanes(state: RunState, progress: Progress) -> list[LaneScorecards] | None:
    """Run every lane of a run somewhere else (other processes, other machines).

    Called once per ``hbench run``, after the run is prepared (``state``: its settings
    ``state.s`` and options ``state.opts``, ``state.lanes``, the journal) and before any lane
    runs. Return None when the run is not yours: core then runs the lanes itself, one
    after another or ``--parallel-lanes`` at a time. Taking it, run each lane (a lane's
    body is :func:`hbench.lane_run.run_lane`; write its journal records through
    ``state.journal``), finish each with :func:`hbench.lane_run.finish_lane` and return one
    :class:`hbench.scorecard_build.LaneScorecards` per lane of ``state.lanes``, in lane
    order. The built-in scale-out plugin takes a run given ``--ray`` (``state.opts.ray``);
    a ``--ray`` run no plugin takes is bad input (exit 2). Not isolated: a plugin that
    raises ends the run (it may have half run the lanes), an :class:`hbench.errors.BadInput`
    as the message to the person running hbench.
    """
