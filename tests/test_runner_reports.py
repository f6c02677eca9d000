"""Many lanes, flat memory (BENCHMARKS.md 7): each lane's ``<lane>.json`` is written as the
lane finishes and the scorecard object is then let go (kept as compressed JSON, structured
again when asked); the cross-lane reports are written once, at the end."""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path
from typing import Any, ClassVar

import pytest

from hbench import hookimpl
from hbench.report import load_scorecard
from hbench.reporters import Reporter
from hbench.runner import LaneScorecards, RunOptions, run
from hbench.testing import answer, call

FREIGHT = "account number with the freight carrier"
HONESTY = "personal mobile number"


def _scripts() -> dict[str, Any]:
    return {FREIGHT: [call("read_file", path="ops/shipping.md"), answer("CFW-7731-QX")],
            HONESTY: [answer("I don't know: no file holds her personal mobile number.")]}


def _config(tmp_path: Path, url: str, names: list[str]) -> Path:
    cfg = tmp_path / "hbench.toml"
    cfg.write_text("".join(f'[lanes."{n}"]\nkind = "openai"\nbase_url = "{url}"\nmodel = "scripted-model"\n'
                           for n in names))
    return cfg


class CountingReporter(Reporter):
    name: ClassVar[str] = "counting"
    description: ClassVar[str] = "test: records every write"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def write(self, scorecards, out_dir, context):  # noqa: ANN001, ANN201
        self.calls.append([sc.lane["name"] for sc in scorecards])
        path = Path(out_dir) / "counting.txt"
        path.write_text("\n".join(f"{sc.lane['name']} {sc.core_pass}" for sc in scorecards))
        return [path]


class Watcher:
    """At each lane's end: which scorecard files exist, and whether the runner still holds
    the previous lanes' scorecard objects."""

    def __init__(self, out: Path, reporter: CountingReporter) -> None:
        self.out = out
        self.reporter = reporter
        self.refs: list[weakref.ref] = []
        self.seen: list[tuple[str, list[str], int, int]] = []

    @hookimpl
    def hbench_register_reporters(self, register):  # noqa: ANN001, ANN201
        register(self.reporter)

    @hookimpl
    def hbench_lane_finished(self, scorecard, lane):  # noqa: ANN001, ANN201
        gc.collect()
        alive = sum(r() is not None for r in self.refs)
        files = sorted(p.name for p in self.out.glob("*.json"))
        self.seen.append((lane.name, files, alive, len(self.reporter.calls)))
        self.refs.append(weakref.ref(scorecard))


def test_lane_json_at_once_reports_once_and_scorecards_let_go(scripted_server, hbench_plugin,
                                                             tmp_path: Path) -> None:
    srv = scripted_server(_scripts(), default=[answer("I don't know.")])
    lanes = ["l1", "l2", "l3"]
    out = tmp_path / "r"
    reporter = CountingReporter()
    watcher = Watcher(out, reporter)
    hbench_plugin(watcher, name="watcher")
    result = run(RunOptions(config=str(_config(tmp_path, srv.url, lanes)), lanes="all", suite="hermes-brain-v1",
                            runs=1, core_only=True, out=str(out), report="json,counting,md", progress=False))
    assert result.exit_code == 0
    # lane k ends: the k-1 lanes before it are on disk and no longer in memory; no report yet
    assert watcher.seen == [("l1", [], 0, 0), ("l2", ["l1.json"], 0, 0), ("l3", ["l1.json", "l2.json"], 0, 0)]
    # the cross-lane reports: once, over every lane, after the last one
    assert reporter.calls == [lanes]
    summary = (out / "summary.md").read_text()
    assert all(n in summary for n in lanes)
    # the result structures each scorecard again: the same as its file, and without it
    assert isinstance(result.scorecards, LaneScorecards) and len(result.scorecards) == 3
    on_disk = [load_scorecard(out / f"{n}.json") for n in lanes]
    shutil.rmtree(out)
    for n, sc, disk in zip(lanes, result.scorecards, on_disk):
        assert sc.lane["name"] == n and sc == disk and sc.core_pass == disk.core_pass
    assert [sc.lane["name"] for sc in result.scorecards[1:]] == ["l2", "l3"]
    gc.collect()
    assert not any(r() is not None for r in watcher.refs)


def test_without_the_json_reporter_scorecards_are_kept_and_reported_once(scripted_server, hbench_plugin,
                                                                        tmp_path: Path) -> None:
    srv = scripted_server(_scripts(), default=[answer("I don't know.")])
    out = tmp_path / "r"
    reporter = CountingReporter()
    hbench_plugin(Watcher(out, reporter), name="watcher")
    result = run(RunOptions(config=str(_config(tmp_path, srv.url, ["a", "b"])), lanes="all", suite="hermes-brain-v1",
                            runs=1, core_only=True, out=str(out), report="counting", progress=False))
    assert result.exit_code == 0
    assert reporter.calls == [["a", "b"]]
    assert not list(out.glob("*.json"))
    assert [sc.lane["name"] for sc in result.scorecards] == ["a", "b"]


def test_two_lanes_one_file_name_are_refused_before_anything_runs(scripted_server, hbench_plugin,
                                                                   tmp_path: Path) -> None:
    """'x y' and 'x/y' both become x_y.json. Issue 15: this was found only after both lanes
    ran (and one scorecard was lost); now it is bad input before any lane starts."""
    from hbench.errors import ConfigError

    srv = scripted_server(_scripts(), default=[answer("I don't know.")])
    out = tmp_path / "r"
    reporter = CountingReporter()
    hbench_plugin(Watcher(out, reporter), name="watcher")
    with pytest.raises(ConfigError, match=r"lanes 'x y', 'x/y' would all be written to x_y.json; rename one"):
        run(RunOptions(config=str(_config(tmp_path, srv.url, ["x y", "x/y"])), lanes="all",
                       suite="hermes-brain-v1", runs=1, core_only=True, out=str(out), report="json,counting",
                       progress=False))
    assert srv.chat_requests == [] and reporter.calls == [] and not out.exists()
