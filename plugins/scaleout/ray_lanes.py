"""``hbench run --ray auto|ADDRESS``: each lane a Ray task on the node that carries its label.

The scale-out plugin's ``hbench_run_lanes`` hands a ``--ray`` run here (core runs the lanes
itself otherwise). Ray is the engine (the optional extra ``[ray]``); hbench schedules nothing
itself. A lane with ``node = "spark2"`` runs as a task with the label selector
``hbench-node: spark2``: Ray places it on the node started with ``ray start ... --labels
hbench-node=spark2``. A lane without ``node`` runs on the driver's node. There the task:

* builds the lane's runner from what the driver sends (the lane's spec, the run settings,
  the suite path; no hbench.toml needed on the node), with hbench's working folder in a
  temporary folder of its own on that node (removed afterwards);
* opens the lane (a managed lane's server starts **on that node**), samples it with that
  node's probes, runs its attempts and measures its throughput, as a local run does;
* streams every journal record (attempts as they finish, ``lane_finished``) to the driver
  through a Ray queue (an actor pinned to the driver's node), and returns the lane's
  scorecard.

The driver's journal stays the single source of truth: it writes the ``lane`` record (so a
changed lane is refused on ``--resume`` as always), every streamed attempt (with the
``node`` it ran on) and ``lane_finished``; ``--resume`` hands each task the attempts the
journal already has. Scorecards and reports are written once, by the driver. A node that
dies mid-lane (the task is not retried: ``max_retries=0``) leaves that lane
``complete: false`` with its journaled attempts and the rest missing (exit 3); ``hbench run
--resume`` finishes it (on Ray or not: ``node`` is not part of a lane's fingerprint).

Lane tasks run with Ray's memory monitor off (``RAY_memory_monitor_refresh_ms=0`` in the
task's environment and in ``ray.init`` for a local cluster): on a unified-memory box (DGX
Spark) a model server's large resident memory looks like memory pressure, and the monitor
kills the task, and with it the lane (docs/SCALE.md). Nodes should be started with the same
variable set, as the monitor runs in each node's raylet.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from types import ModuleType
from typing import TYPE_CHECKING, Any

import attrs

from hbench.config import Config, RunDefaults
from hbench.errors import BadInput
from hbench.journal import attempt_from_dict, attempt_to_dict, lane_fingerprint, light
from hbench.lane_run import finish_lane, lost_lane_scorecard, run_lane
from hbench.lanes import is_managed
from hbench.logging import scrub
from hbench.models import Attempt, LaneSpec
from hbench.progress import Progress
from hbench.report import scorecard_from_dict, scorecard_to_dict
from hbench.run_settings import RunOptions
from hbench.run_state import RunState
from hbench.scorecard_build import LaneScorecards, now

if TYPE_CHECKING:
    from ray.util.queue import Queue

#: the Ray node label a lane's ``node`` is matched against (``ray start --labels hbench-node=NAME``)
NODE_LABEL = "hbench-node"
#: the lane task's environment: no memory monitor, no run database on the node (the driver writes it)
TASK_ENV = {"RAY_memory_monitor_refresh_ms": "0", "HBENCH_HISTORY": "0"}


def _ray() -> ModuleType:
    # Ray is an optional extra ([ray]) and slow to import: only a --ray run loads it
    try:
        import ray
    except ImportError:
        raise BadInput("--ray needs Ray: pip install 'hermes-bench[ray]' (on the driver and on every node)") from None
    return ray


def connect(address: str) -> ModuleType:
    """``ray.init`` to ``address`` (``auto``: the cluster this machine is part of)."""
    ray = _ray()
    if not ray.is_initialized():
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except ConnectionError as exc:
            raise BadInput(f"--ray {address}: cannot connect to a Ray cluster ({exc}); start one with "
                           "`ray start --head --labels hbench-node=NAME` (docs/SCALE.md) or pass its ADDRESS") from None
    return ray


def node_labels(ray: ModuleType) -> dict[str, str]:
    """Live nodes' ``hbench-node`` label -> node id."""
    out = {}
    for n in ray.nodes():
        if n.get("Alive") and (n.get("Labels") or {}).get(NODE_LABEL):
            out[n["Labels"][NODE_LABEL]] = n["NodeID"]
    return out


# --------------------------------------------------------------------------- on the node


class _QueueJournal:
    """What a lane's runner needs of a journal, on a node: records go to the driver."""

    def __init__(self, queue: Queue, lane: str, node: str, done: dict[tuple[str, int], Attempt],
                 finished: dict[str, Any] | None, header: dict[str, Any]):
        self.queue, self.lane, self.node = queue, lane, node
        self._done, self._finished, self.header = done, finished, header

    def begin_lane(self, lane: str, fingerprint: str) -> None:
        pass  # the driver wrote it (and checked it against its journal)

    def completed(self, lane: str) -> dict[tuple[str, int], Attempt]:
        return dict(self._done)

    def finished_record(self, lane: str) -> dict[str, Any] | None:
        return self._finished

    def append_attempt(self, attempt: Attempt, node: str | None = None) -> None:
        self.queue.put({"type": "attempt", "lane": self.lane, "node": self.node, "attempt": attempt_to_dict(attempt)})

    def lane_finished(self, lane: str, data: dict[str, Any]) -> None:
        self.queue.put({"type": "lane_finished", "lane": lane, "data": data})

    def lane_failed(self, lane: str, reason: str) -> None:
        self.queue.put({"type": "lane_failed", "lane": lane, "reason": reason})

    def close(self) -> None:
        pass


def run_lane_task(job: dict[str, Any], queue: Queue) -> dict[str, Any]:
    """The body of a lane's Ray task (importable: Ray pickles it by reference)."""
    for k, v in TASK_ENV.items():
        os.environ.setdefault(k, v)
    tmp = tempfile.mkdtemp(prefix="hbench-ray-lane-")
    try:
        spec = LaneSpec(**job["spec"])
        opts = RunOptions(**{**job["opts"], "out": os.path.join(tmp, "out"), "config": None, "lanes": spec.name,
                             "lane_url": None, "model": None, "progress": False, "ray": None,
                             "parallel_lanes": None, "report": "json"})
        state = RunState(opts, config=Config(lanes={spec.name: spec}, run=RunDefaults(**job["run"]), path=None))
        state.prepare()
        state.journal.close()
        state.run_id = job["run_id"]
        done = {(a["prompt_id"], a["n"]): attempt_from_dict(a) for a in job["done"]}
        state.journal = _QueueJournal(queue, spec.name, job["node"], done, job["finished"],  # type: ignore[assignment]
                                      state.journal.header)
        try:
            with Progress(False) as progress:
                sc = run_lane(state, state.lanes[0], progress, node=job["node"])
        finally:
            state.outdir.release()
        return scorecard_to_dict(sc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the task's own folder (nothing else)


# --------------------------------------------------------------------------- the driver


def run_lanes_on_ray(runner: RunState, progress: Progress) -> list[LaneScorecards]:
    """Every lane of ``runner`` as a Ray task; returns one LaneScorecards per lane, in lane order."""
    ray = connect(runner.opts.ray)
    # Ray stays lazy (an optional extra, slow to import): only a --ray run gets here
    from ray.util.queue import Empty, Queue
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    labels = node_labels(ray)
    here_name = next((name for name, nid in labels.items() if nid == here), None)
    queue = Queue(maxsize=0, actor_options={"num_cpus": 0, "scheduling_strategy":
                                            NodeAffinitySchedulingStrategy(here, soft=False)})
    task = ray.remote(run_lane_task)
    lanes = list(runner.lanes)
    parts = [LaneScorecards() for _ in lanes]
    opts = attrs.asdict(runner.opts)
    run_defaults = attrs.asdict(runner.config.run)
    pending: dict[Any, tuple[int, LaneSpec, str]] = {}  # Ray ObjectRef -> (lane index, lane, node)
    prompts = {p.id: p for p in runner.suite.prompts}
    lost: list[tuple[int, LaneSpec, str]] = []
    kinds = runner.reg.lane_kinds
    busy: dict[str, int] = {}  # node -> the managed lane running there (one at a time, as --parallel-lanes)
    waiting: list[int] = []

    def managed(spec: LaneSpec) -> bool:
        try:
            return bool(is_managed(spec, kinds.get(spec.kind)))
        except Exception:  # noqa: BLE001 - an unknown kind was refused before
            return bool(spec.start)

    def submit(i: int) -> None:
        spec = lanes[i]
        node = spec.node or here_name or "driver"
        settings = runner.lane_settings(spec)
        runner.journal.begin_lane(spec.name, lane_fingerprint(spec, settings))
        done = runner.journal.completed(spec.name) if runner.opts.resume else {}
        done = {k: a for k, a in done.items() if a.error is None}  # errored ones run again
        finished = runner.journal.finished_record(spec.name) if runner.opts.resume else None
        job = {"spec": attrs.asdict(spec), "opts": opts, "run": run_defaults, "run_id": runner.run_id, "node": node,
               "done": [attempt_to_dict(a) for a in done.values()], "finished": finished}
        strategy = ({"label_selector": {NODE_LABEL: spec.node}} if spec.node is not None
                    else {"scheduling_strategy": NodeAffinitySchedulingStrategy(here, soft=False)})
        ref = task.options(num_cpus=0, max_retries=0, runtime_env={"env_vars": dict(TASK_ENV)},
                           **strategy).remote(job, queue)
        pending[ref] = (i, spec, node)
        if managed(spec):
            busy[node] = i
        progress.status(f"{spec.name}: sent to Ray node {node}", lane=spec.name)

    for i, spec in enumerate(lanes):
        if spec.node is not None and spec.node not in labels:
            lost.append((i, spec, f"no live Ray node is labelled {NODE_LABEL}={spec.node} (nodes: "
                                  f"{', '.join(sorted(labels)) or 'none labelled'}); start it with "
                                  f"`ray start --address ADDRESS --labels {NODE_LABEL}={spec.node}`"))
        else:
            waiting.append(i)

    def submit_ready() -> None:
        """Lanes in order; a managed lane waits while a managed lane of its node runs."""
        for i in list(waiting):
            spec = lanes[i]
            node = spec.node or here_name or "driver"
            if runner.stop.is_set() or (managed(spec) and node in busy):
                continue
            waiting.remove(i)
            submit(i)

    def drain() -> None:
        while True:
            try:
                items = queue.get_nowait_batch(queue.qsize()) if queue.qsize() else []
            except Empty:
                items = []
            if not items:
                return
            for rec in items:
                if rec["type"] == "attempt":
                    a = attempt_from_dict(rec["attempt"])
                    runner.journal.append_attempt(a, node=rec["node"])
                    progress.status(f"{a.lane} · {a.prompt_id} #{a.n} on {rec['node']}: "
                                    f"{'passed' if a.passed else 'failed'}", lane=a.lane)
                    p = prompts.get(a.prompt_id)
                    if p is not None:
                        spec = next(s for s in lanes if s.name == a.lane)
                        runner.plugins.broadcast("hbench_attempt_finished", attempt=light(a), lane=spec, prompt=p)
                elif rec["type"] == "lane_finished":
                    runner.journal.lane_finished(rec["lane"], rec["data"])
                elif rec["type"] == "lane_failed":
                    runner.journal.lane_failed(rec["lane"], rec["reason"])

    cancelled = False
    try:
        submit_ready()
        while pending:
            drain()
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.3)
            for ref in ready:
                i, spec, node = pending.pop(ref)
                if busy.get(node) == i:
                    del busy[node]
                try:
                    card = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the node died, the task crashed
                    drain()
                    why = scrub(runner.stop_reason(False) if runner.stop.is_set() else
                                f"Ray node {node} was lost mid-lane ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''})")
                    runner.log.error("lane.node_lost", lane=spec.name, node=node, error=why)
                    lost.append((i, spec, why))
                    continue
                drain()
                sc = scorecard_from_dict(card, f"lane {spec.name} from Ray node {node}")
                if not finish_lane(runner, spec, sc, parts[i]):
                    parts[i].write_failed = not sc.failed
            submit_ready()
            if runner.stop.is_set() and not cancelled:
                cancelled = True
                for ref in pending:
                    ray.cancel(ref, force=True)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    for i in waiting:  # never sent: the run was stopped first
        lost.append((i, lanes[i], runner.stop_reason(True)))
    for i, spec, why in sorted(lost, key=lambda x: x[0]):
        sc = lost_lane_scorecard(runner, spec, why, now())
        if not finish_lane(runner, spec, sc, parts[i]):
            parts[i].write_failed = not sc.failed
    return parts


__all__ = ["run_lanes_on_ray", "run_lane_task", "NODE_LABEL", "connect", "node_labels"]
