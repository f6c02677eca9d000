"""--shard I/N and hbench merge: the partition is disjoint, covering, balanced and stable
(hypothesis); the bundled suite split 2 and 3 ways against the scripted server, then merged,
gives the unsharded run's scores and per-attempt verdicts; a missing shard makes the lane
incomplete (exit 3); shards of different runs are refused (exit 2)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbench.errors import BadInput
from hbench.journal import iter_records
from hbench.runner import RunOptions, run
from hbench.shard import parse_shard, select, shard_of
from test_parallel_lanes import same_parts
from test_runner import steady_scripts

RUNS = 2
TWO_LANES = ("lane-a", "lane-b")


# --------------------------------------------------------------------------- the partition (pure)


@given(lane=st.text(min_size=1, max_size=20), size=st.integers(0, 300), count=st.integers(1, 12))
@settings(max_examples=200, deadline=None)
def test_the_slices_are_disjoint_covering_balanced_and_stable(lane: str, size: int, count: int) -> None:
    plan = [(f"p{i // 3}", i % 3 + 1) for i in range(size)]
    slices = [select(lane, plan, i, count) for i in range(count)]
    together = [x for s in slices for x in s]
    assert sorted(together) == sorted(plan) and len(together) == len(set(together)) == len(plan)  # disjoint, covering
    assert max(map(len, slices)) - min(map(len, slices)) <= 1  # balanced
    assert slices == [select(lane, list(plan), i, count) for i in range(count)]  # stable
    for i, s in enumerate(slices):  # each in plan order, each item where shard_of says
        assert s == [x for x in plan if x in set(s)]
        assert all(shard_of(lane, plan.index(x), count) == i for x in s)


def test_shard_of_is_fixed_across_processes() -> None:
    """Not Python's salted hash: another interpreter picks the same shards."""
    import subprocess

    code = "from hbench.shard import shard_of; print([shard_of('qwen3', p, 7) for p in range(20)])"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"}).stdout.strip()
    assert other == str([shard_of("qwen3", p, 7) for p in range(20)])


@pytest.mark.parametrize("text", ["", "3", "1/0", "3/3", "-1/2", "a/b", "1/2/3", "0/10001"])
def test_a_bad_shard_is_bad_input_naming_the_flag(text: str) -> None:
    with pytest.raises(BadInput, match="--shard") as exc:
        parse_shard(text)
    assert "I/N" in str(exc.value)


def test_parse_shard() -> None:
    assert parse_shard("0/1") == (0, 1) and parse_shard(" 2 / 3 ") == (2, 3)


# --------------------------------------------------------------------------- end to end


def lanes_toml(path: Path, url: str, **extra: str) -> Path:
    path.write_text("".join(f'[lanes.{n}]\nbase_url = "{url}"\nmodel = "scripted-model"\n'
                            + "".join(f"{k} = {v}\n" for k, v in extra.items()) + "\n" for n in TWO_LANES))
    return path


def shard_run(toml: Path, out: Path, shard: str | None, **kw: Any) -> Any:
    return run(RunOptions(lanes="all", config=str(toml), out=str(out), suite="hermes-brain-v1", runs=RUNS,
                          report="json", progress=False, shard=shard, **kw))


def verdicts(journal: Path) -> dict[tuple[str, str, int], tuple[bool, str, Any]]:
    out = {}
    for _, r in iter_records(journal):
        if r["type"] == "attempt":
            a = r["attempt"]
            out[(r["lane"], r["prompt_id"], r["n"])] = (a["passed"], a["check"]["why"], a["runaway"])
    return out


def scores(out: Path) -> dict[str, Any]:
    cards = {}
    for n in TWO_LANES:
        cards[n] = same_parts(json.loads((out / f"{n}.json").read_text()))
    return cards


@pytest.fixture(scope="module")
def split_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from hbench.testing import ScriptedServer

    tmp = tmp_path_factory.mktemp("shards")
    with ScriptedServer(steady_scripts()) as srv:
        toml = lanes_toml(tmp / "hbench.toml", srv.url)
        whole = shard_run(toml, tmp / "whole", None)
        assert whole.exit_code == 0
        shards = {n: [shard_run(toml, tmp / f"s{n}-{i}", f"{i}/{n}") for i in range(n)] for n in (2, 3)}
        other = shard_run(toml, tmp / "other-1", "1/2", max_turns=3)  # another lane setting
    return {"tmp": tmp, "toml": toml, "whole": whole, "shards": shards, "other": other}


@pytest.mark.parametrize("n", [2, 3])
def test_merged_shards_score_as_the_unsharded_run(split_runs: dict[str, Any], n: int) -> None:
    from hbench.plugins.scaleout.merge import merge

    tmp = split_runs["tmp"]
    assert all(r.exit_code == 0 for r in split_runs["shards"][n]), [r.verdict for r in split_runs["shards"][n]]
    shard_attempts = [sum(sc.attempts_run for sc in r.scorecards) for r in split_runs["shards"][n]]
    assert sum(shard_attempts) == 2 * 8 * RUNS and max(shard_attempts) - min(shard_attempts) <= 2
    result = merge([tmp / f"s{n}-{i}" for i in range(n)], tmp / f"merged-{n}")
    assert result.exit_code == 0, result.verdict
    merged, whole = scores(tmp / f"merged-{n}"), scores(tmp / "whole")
    assert merged == whole
    assert verdicts(tmp / f"merged-{n}" / "journal.jsonl") == verdicts(tmp / "whole" / "journal.jsonl")
    card = json.loads((tmp / f"merged-{n}" / "lane-a.json").read_text())
    assert [m["shard"] for m in card["provenance"]["merged_from"]] == list(range(n))
    assert (tmp / f"merged-{n}" / "summary.md").is_file() and (tmp / f"merged-{n}" / "report.html").is_file()


def test_a_missing_shard_leaves_the_lanes_incomplete(split_runs: dict[str, Any], capsys) -> None:
    from hbench.cli import main
    from hbench.logging import configure

    tmp = split_runs["tmp"]
    with pytest.raises(SystemExit) as exc:
        try:
            main(["merge", str(tmp / "s3-0"), str(tmp / "s3-2"), "--out", str(tmp / "merged-short"), "--report", "json"])
        finally:
            configure("json", "warning", stream=sys.__stderr__)
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert "shard 1/3 not merged" in err
    held = sum(sc.attempts_run for sc in split_runs["shards"][3][1].scorecards)
    for lane in TWO_LANES:
        card = json.loads((tmp / "merged-short" / f"{lane}.json").read_text())
        assert card["complete"] is False and "shard 1/3 not merged" in card["incomplete_reason"]
        assert card["attempts_planned"] == 8 * RUNS
    cards = [json.loads((tmp / "merged-short" / f"{n}.json").read_text()) for n in TWO_LANES]
    assert sum(8 * RUNS - c["attempts_scored"] - c["errored"] for c in cards) == held


def test_shards_of_different_runs_are_refused(split_runs: dict[str, Any], capsys) -> None:
    from hbench.cli import main
    from hbench.logging import configure

    tmp = split_runs["tmp"]
    for dirs, says in (([tmp / "s2-0", tmp / "other-1"], "lane fingerprint"),
                       ([tmp / "s2-0", tmp / "s3-1"], "count 3"),
                       ([tmp / "s2-0", tmp / "s2-0"], "give each shard once"),
                       ([tmp / "whole"], "not the --out of an `hbench run --shard")):
        with pytest.raises(SystemExit) as exc:
            try:
                main(["merge", *map(str, dirs), "--out", str(tmp / "refused")])
            finally:
                configure("json", "warning", stream=sys.__stderr__)
        assert exc.value.code == 2
        assert says in capsys.readouterr().err
        assert not (tmp / "refused").exists()  # nothing written


def test_shard_with_adaptive_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="--adaptive"):
        run(RunOptions(lane_url="http://127.0.0.1:9/v1", model="m", suite="hermes-brain-v1", shard="0/2",
                       adaptive=True, out=str(tmp_path / "o"), progress=False))


def test_merge_writes_the_merged_lanes_to_the_run_database(split_runs: dict[str, Any], monkeypatch,
                                                          tmp_path: Path) -> None:
    """The history plugin's own writer (hbench_lane_finished) gets the merged lanes, as a run's."""
    from hbench.plugins.history.query import history
    from hbench.plugins.scaleout.merge import merge

    db = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    monkeypatch.setenv("HBENCH_HISTORY", "1")
    monkeypatch.setenv("HBENCH_DB", db)
    tmp = split_runs["tmp"]
    result = merge([tmp / "s2-0", tmp / "s2-1"], tmp_path / "merged", report="json")
    assert result.exit_code == 0
    runs = history(db)
    assert len(runs) == 1
    text = json.dumps(runs)
    assert all(lane in text for lane in TWO_LANES)
    assert result.scorecards[0].provenance["run_id"] in text
