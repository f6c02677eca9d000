"""A lane's scorecard, assembled once and complete, and the run's scorecards kept small.

:func:`build_scorecard` is the one place a :class:`~hbench.models.Scorecard` is made during
a run: from a :class:`LaneOutcome` (what one lane's loop found: attempts, throughput,
telemetry, why it failed or stopped, warnings) and the run (suite, settings, plugins), it
scores the prompts and the lane (:mod:`hbench.scoring`) and adds throughput, telemetry,
efficiency, agent and provenance in the same step. Nothing changes a scorecard after it is
built (tests/test_runner_scorecard.py holds the runner to that).

:class:`LaneScorecards` holds the run's scorecards in lane order as compressed JSON, so
memory does not grow with lanes.
"""

from __future__ import annotations

import json
import os
import platform
import time
import zlib
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar, overload

import attrs

from hbench import __version__
from hbench.efficiency import efficiency
from hbench.journal import lane_fingerprint
from hbench.logging import scrub
from hbench.models import LaneSpec, Scorecard, Telemetry, Throughput
from hbench.report import scorecard_from_dict, scorecard_to_dict
from hbench.scoring import score_lane, score_prompt

if TYPE_CHECKING:
    from hbench.agents import Agent
    from hbench.run_state import RunState
    from hbench.scheduler import PromptState


def now() -> str:
    """A timestamp as scorecards and provenance write it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


T = TypeVar("T")


def safe(fn: Callable[[], T], default: T) -> T:
    """``fn()``, or ``default`` when it raises (describe(), telemetry: never stop a run)."""
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return default


@attrs.frozen
class LaneOutcome:
    """What one lane's run found: everything its scorecard is built from, besides the run's
    own facts (suite, settings, plugins)."""

    spec: LaneSpec
    agent: Agent
    runs: int
    states: list[PromptState]  # the planned prompts, their scored attempts in ``done``
    skipped: dict[str, str]  # prompt id -> why it was left out
    started: str  # when the lane began (:func:`now`)
    throughput: Throughput = attrs.field(factory=lambda: Throughput(error="not measured"))
    telemetry: Telemetry = attrs.field(factory=Telemetry)
    served_model: str | None = None
    base_url: str | None = None
    model: str | None = None
    kind_info: dict[str, Any] = attrs.field(factory=dict)  # LaneKind.describe + readiness (ready_s, ...)
    failed: str | None = None  # why the lane failed to run
    warnings: list[str] = attrs.field(factory=list)
    missing: int = 0  # planned attempts that did not run
    stopped: str | None = None  # why the lane stopped early
    node: str | None = None  # the node it ran on (a Ray task's), else the lane's own ``node``


def build_scorecard(run: RunState, o: LaneOutcome) -> Scorecard:
    """The lane's scorecard, complete: scores (:func:`hbench.scoring.score_lane`) plus
    throughput, telemetry, efficiency, warnings, agent and provenance."""
    spec = o.spec
    by_id = {s.prompt.id: s for s in o.states}
    prompt_scores = [score_prompt(p, [], skipped=o.skipped[p.id]) if p.id in o.skipped
                     else score_prompt(p, by_id[p.id].done) for p in run.suite.prompts]
    settings = run.lane_settings(spec)
    # fingerprint: as in the journal's "lane" record; with served_model and the suite's
    # sha256 it is the lane's identity in the run database (different things never merge)
    lane = {"name": spec.name, "kind": spec.kind, "model": o.model, "base_url": scrub(o.base_url or ""),
            "served_model": o.served_model, "source": spec.source, **o.kind_info,
            "fingerprint": lane_fingerprint(spec, settings)}
    scores = score_lane(lane, run.suite_info, prompt_scores, o.runs, adaptive=settings.adaptive,
                        missing=o.missing, stopped=o.stopped, failed=o.failed)
    slo = settings.slo_s if settings.slo_s is not None else settings.timeout_s
    agent = o.agent
    provenance: dict[str, Any] = {
        "hbench_version": __version__,
        "run_id": run.run_id,
        "started_at": o.started,
        "finished_at": now(),
        "run_started_at": run.started_at,
        # hostname: the one name hbench.report.host_name reads (same-named lanes -> name@host)
        "host": {"hostname": platform.node(), "platform": platform.platform(), "machine": platform.machine(),
                 "cpus": os.cpu_count(), "python": platform.python_version()},
        "plugins": [{"name": i.name, "version": i.version, "builtin": i.builtin}
                    for i in run.plugins.plugin_list() if i.status == "ok"],
        "settings": {**settings.limits(), "runs": o.runs, "concurrency": settings.concurrency,
                     "adaptive": settings.adaptive, "core_only": settings.core_only},
        "resumed": bool(run.opts.resume),
    }
    node = o.node if o.node is not None else spec.node
    if node is not None:
        provenance["node"] = node
    if settings.shard is not None:
        provenance["shard"] = {"index": settings.shard[0], "count": settings.shard[1]}
    return attrs.evolve(
        scores,
        throughput=o.throughput,
        telemetry=o.telemetry,
        efficiency=safe(lambda: efficiency([a for s in o.states for a in s.done], slo), {}),
        failed=o.failed,
        warnings=[scrub(w) for w in o.warnings],
        agent=safe(agent.describe, {"name": agent.name}),
        provenance=provenance,
    )


class LaneScorecards(Sequence[Scorecard]):
    """The run's scorecards in lane order, without holding them all: each is kept as its
    scorecard JSON (``hbench.scorecard/1``, as ``<lane>.json`` holds it), zlib-compressed
    (~20x smaller), and structured again each time it is asked for. Independent of the
    files under OUT, so the result outlives them."""

    def __init__(self) -> None:
        self._items: list[bytes] = []
        #: a part of a side-by-side run (hbench.parallel, a plugin's hbench_run_lanes) whose lane's
        #: scorecard could not be written, though the lane itself ran
        self.write_failed = False

    def add(self, scorecard: Scorecard) -> None:
        data = json.dumps(scorecard_to_dict(scorecard), ensure_ascii=False, allow_nan=False)
        self._items.append(zlib.compress(data.encode("utf-8"), 1))

    def extend(self, other: LaneScorecards) -> None:
        """Append ``other``'s scorecards (as they are kept: compressed)."""
        self._items.extend(other._items)

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
        return scorecard_from_dict(json.loads(zlib.decompress(blob)), "<this run's scorecard>")

    def __repr__(self) -> str:
        return f"LaneScorecards({len(self)} lanes)"


__all__ = ["LaneOutcome", "LaneScorecards", "build_scorecard", "now", "safe"]
