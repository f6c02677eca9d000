"""``--parallel-lanes N``: up to N lanes side by side in one hbench process.

Threads, not a scheduler of our own: each lane runs :func:`hbench.lane_run.run_lane` on its own
thread, exactly as it runs alone (its own ``--concurrency`` workers, its own telemetry
sampler, its own scratch pool), and journals into the run's one journal (appends are
whole, locked, fsynced lines; every record names its lane, so ``--resume`` reads them
back as before). Lanes start in lane order as slots free up, with one rule: **managed**
lanes (ones hbench starts) on the same ``node`` run one at a time, so each starts inside
that box's memory envelope; a managed lane waits while later unmanaged lanes, or managed
lanes of other nodes, go ahead. Scorecards come back in lane order whatever order the
lanes finish in; ``<lane>.json`` is written as each lane finishes.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from hbench.lane_run import finish_lane, release_free_memory, run_lane
from hbench.lanes import is_managed
from hbench.models import LaneSpec
from hbench.scorecard_build import LaneScorecards

if TYPE_CHECKING:
    from hbench.progress import Progress
    from hbench.run_state import RunState

LOCAL_NODE = ""  # a lane without `node`: the box hbench runs on


def node_of(spec: LaneSpec) -> str:
    return spec.node or LOCAL_NODE


def run_lanes_parallel(runner: RunState, progress: Progress) -> list[LaneScorecards]:
    """Run ``runner.lanes`` up to ``runner.s.parallel_lanes`` at a time. Returns one
    :class:`~hbench.scorecard_build.LaneScorecards` per lane, in lane order (``write_failed``
    set on a part whose scorecard could not be written). Re-raises the first error a lane
    thread raised (bad input found late, a journal that refuses a resume) after every
    started lane has wound down."""
    lanes = list(runner.lanes)
    slots = max(1, int(runner.s.parallel_lanes))
    kinds = runner.reg.lane_kinds

    def managed(spec: LaneSpec) -> bool:
        try:
            return bool(is_managed(spec, kinds.get(spec.kind)))
        except Exception:  # noqa: BLE001 - an unknown kind was refused in _prepare
            return bool(spec.start)

    parts = [LaneScorecards() for _ in lanes]
    errors: list[BaseException] = []
    cond = threading.Condition()
    busy_nodes: set[str] = set()  # nodes with a managed lane running
    active = [0]
    pending = list(range(len(lanes)))
    threads: list[threading.Thread] = []

    def one(i: int, hold: str | None) -> None:
        spec = lanes[i]
        try:
            sc = run_lane(runner, spec, progress)
            if not finish_lane(runner, spec, sc, parts[i]):
                parts[i].write_failed = not sc.failed
            del sc
        except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
            with cond:
                errors.append(exc)
            runner.interrupt()  # the other lanes wind down (their scorecards say why)
        finally:
            release_free_memory()
            with cond:
                active[0] -= 1
                if hold is not None:
                    busy_nodes.discard(hold)
                cond.notify_all()

    def next_lane() -> tuple[int, str | None] | None:
        for j, i in enumerate(pending):
            spec = lanes[i]
            hold = node_of(spec) if managed(spec) else None
            if hold is not None and hold in busy_nodes and not runner.stop.is_set():
                continue  # a managed lane of this node is running: wait for it
            del pending[j]
            return i, hold
        return None

    try:
        while True:
            with cond:
                if not pending and active[0] == 0:
                    break
                pick = next_lane() if pending and active[0] < slots else None
                if pick is None:
                    cond.wait(0.2)  # a timeout: Ctrl-C reaches the main thread
                    continue
                i, hold = pick
                active[0] += 1
                if hold is not None:
                    busy_nodes.add(hold)
            t = threading.Thread(target=one, args=(i, hold), name=f"hbench-lane-{i}", daemon=True)
            threads.append(t)
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:  # a second Ctrl-C: cancel what is in flight and leave now
        runner.interrupt()
        raise
    if errors:
        raise errors[0]
    return parts


__all__ = ["run_lanes_parallel", "node_of"]
