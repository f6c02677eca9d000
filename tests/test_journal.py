"""The attempt journal: append + fsync per attempt, resume checks, torn tails, streaming."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbench.journal import (Journal, JournalError, attempt_from_dict, attempt_to_dict, completed,
                            iter_records, lane_fingerprint, light)
from hbench.logging import register_secret
from hbench.models import Attempt, CheckResult, LaneSpec, ToolCall, Turn

SUITE = {"name": "s", "version": "1", "sha256": "a" * 64, "fixtures_sha256": "b" * 64}


def make_attempt(lane: str = "l1", pid: str = "p1", n: int = 1, **kw: object) -> Attempt:
    return Attempt(
        lane=lane, prompt_id=pid, n=n, answer=f"answer {n}",
        tool_calls=[ToolCall(name="read_file", arguments={"path": "a.md"}, id="c1", result="x" * 1000)],
        transcript=[{"role": "user", "content": "hi"}], turns=[Turn(wall_s=0.5, ttft_ms=12.0)],
        check=CheckResult(True, "ok"), passed=True, wall_s=1.5, **kw,
    )


def test_roundtrip_and_light(tmp_path: Path) -> None:
    a = make_attempt(runaway=None, error="boom")
    assert attempt_from_dict(json.loads(json.dumps(attempt_to_dict(a)))) == a
    la = light(a)
    assert la.transcript == [] and la.tool_calls[0].result == "" and la.answer == a.answer
    assert a.tool_calls[0].result == "x" * 1000  # the original is untouched


def test_append_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.open(path, suite=SUITE, resume=False) as j:
        j.begin_lane("l1", "fp1")
        for n in (1, 2):
            j.append_attempt(make_attempt(n=n))
        j.append_attempt(make_attempt(lane="l2", n=1))
        j.lane_finished("l1", {"throughput": {"tok_s": 10.0}})
    types = [r["type"] for _, r in iter_records(path)]
    assert types == ["header", "lane", "attempt", "attempt", "attempt", "lane_finished"]
    done = completed(path, "l1")
    assert sorted(done) == [("p1", 1), ("p1", 2)]
    assert done[("p1", 2)].answer == "answer 2" and done[("p1", 2)].transcript == []
    assert sorted(completed(path)) == [("l1", "p1", 1), ("l1", "p1", 2), ("l2", "p1", 1)]
    j2 = Journal.open(path, suite=SUITE, resume=True)
    assert j2.finished_record("l1")["throughput"] == {"tok_s": 10.0}
    assert j2.finished_record("l2") is None
    j2.append_attempt(make_attempt(n=3))
    assert j2.finished_record("l1") is None  # an attempt after it makes it stale
    j2.close()


def test_resume_refuses_another_suite(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    Journal.open(path, suite=SUITE, resume=False).close()
    other = {**SUITE, "sha256": "c" * 64}
    with pytest.raises(JournalError, match=r"cannot --resume.*sha256.*another --out"):
        Journal.open(path, suite=other, resume=True)


def test_resume_refuses_changed_lane(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.open(path, suite=SUITE, resume=False) as j:
        j.begin_lane("l1", "fp1")
    with Journal.open(path, suite=SUITE, resume=True) as j:
        j.begin_lane("l1", "fp1")  # same: fine, not written twice
        with pytest.raises(JournalError, match="lane 'l1'.*changed"):
            j.begin_lane("l1", "fp2")
    assert sum(r["type"] == "lane" for _, r in iter_records(path)) == 1


def test_fingerprint_ignores_cosmetics_but_not_settings() -> None:
    a = LaneSpec(name="x", base_url="http://h/v1", model="m")
    settings_ = {"agent": "builtin", "timeout_s": 60}
    b = LaneSpec(name="x", base_url="http://h/v1", model="m", tags=["t"], source="cli", api_key_env="K")
    assert lane_fingerprint(a, settings_) == lane_fingerprint(b, settings_)
    assert lane_fingerprint(a, settings_) != lane_fingerprint(LaneSpec(name="x", base_url="http://h/v1", model="m2"), settings_)
    assert lane_fingerprint(a, settings_) != lane_fingerprint(a, {**settings_, "timeout_s": 61})


def test_new_run_keeps_the_old_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.open(path, suite=SUITE, resume=False) as j:
        j.append_attempt(make_attempt())
    Journal.open(path, suite=SUITE, resume=False).close()
    rotated = [p for p in tmp_path.iterdir() if p.name != "journal.jsonl"]
    assert len(rotated) == 1 and completed(rotated[0], "l1")
    assert completed(path, "l1") == {}


def test_torn_last_line_is_ignored_and_cut(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.open(path, suite=SUITE, resume=False) as j:
        j.append_attempt(make_attempt(n=1))
        j.append_attempt(make_attempt(n=2))
    data = path.read_bytes()
    path.write_bytes(data[:-40])  # kill -9 in the middle of writing attempt 2
    assert sorted(completed(path, "l1")) == [("p1", 1)]
    with Journal.open(path, suite=SUITE, resume=True) as j:
        j.append_attempt(make_attempt(n=2))
    assert sorted(completed(path, "l1")) == [("p1", 1), ("p1", 2)]
    for line in path.read_bytes().splitlines():
        json.loads(line)  # every line whole again


def test_corrupt_middle_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.open(path, suite=SUITE, resume=False) as j:
        j.append_attempt(make_attempt(n=1))
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"{garbage\n" + lines[1])
    with pytest.raises(JournalError, match=r"journal.jsonl:2: corrupt"):
        Journal.open(path, suite=SUITE, resume=True)


def test_secrets_never_reach_the_journal(tmp_path: Path) -> None:
    register_secret("sk-journal-secret-123")
    path = tmp_path / "journal.jsonl"
    with Journal.open(path, suite=SUITE, resume=False) as j:
        j.append_attempt(make_attempt(error="401 for key sk-journal-secret-123"))
    assert "sk-journal-secret-123" not in path.read_text()
    assert "***" in path.read_text()


def test_each_attempt_is_on_disk_when_append_returns(tmp_path: Path) -> None:
    """A child appends then is SIGKILLed at once: the record survives."""
    path = tmp_path / "journal.jsonl"
    code = f"""
import os, signal
from hbench.journal import Journal
from hbench.models import Attempt
j = Journal.open({str(path)!r}, suite={SUITE!r}, resume=False)
j.append_attempt(Attempt(lane="l1", prompt_id="p1", n=1, answer="kept"))
os.kill(os.getpid(), signal.SIGKILL)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert r.returncode == -9
    assert completed(path, "l1")[("p1", 1)].answer == "kept"


def test_reading_is_streaming(tmp_path: Path) -> None:
    """iter_records yields the first record before the whole file is read."""
    path = tmp_path / "journal.jsonl"
    with Journal.open(path, suite=SUITE, resume=False) as j:
        for n in range(1, 200):
            j.append_attempt(make_attempt(n=n))
    it = iter_records(path)
    no, first = next(it)
    assert (no, first["type"]) == (1, "header")
    assert sum(1 for _ in it) == 199


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=8), st.integers(1, 9), st.text(max_size=30)), max_size=12),
       st.integers(min_value=0, max_value=400))
def test_any_truncation_keeps_every_whole_record(tmp_path_factory: pytest.TempPathFactory,
                                                  rows: list[tuple[str, int, str]], cut: int) -> None:
    path = tmp_path_factory.mktemp("j") / "journal.jsonl"
    with Journal.open(path, suite=SUITE, resume=False) as j:
        for pid, n, ans in rows:
            j.append_attempt(Attempt(lane="l", prompt_id=pid, n=n, answer=ans))
    data = path.read_bytes()
    header_len = data.index(b"\n") + 1
    keep = max(header_len, len(data) - cut)
    os.truncate(path, keep)
    whole = data[:keep].count(b"\n") - 1  # attempt lines that kept their newline
    expected: dict[tuple[str, int], str] = {}
    for pid, n, ans in rows[:whole]:
        expected[(pid, n)] = ans
    got = {k: a.answer for k, a in completed(path, "l").items()}
    assert got == expected
    with Journal.open(path, suite=SUITE, resume=True):
        pass
    assert path.stat().st_size == len(b"".join(data[:keep].splitlines(keepends=True)[: whole + 1]))


# ---------------------------------------------------------------- the index (one read at open)

_OPS = st.lists(st.one_of(
    st.tuples(st.just("attempt"), st.sampled_from(["a", "b", "c"]), st.sampled_from(["p1", "p2"]),
              st.integers(1, 3), st.text(max_size=12)),
    st.tuples(st.just("finished"), st.sampled_from(["a", "b", "c"]), st.integers(0, 99)),
    st.tuples(st.just("lane"), st.sampled_from(["a", "b", "c"]), st.sampled_from(["fp1", "fp2"])),
    st.tuples(st.just("reopen")),
), max_size=25)


def _reference_finished(path: Path, lane: str) -> dict | None:
    last = None
    for _no, rec in iter_records(path):
        if rec.get("lane") == lane and rec["type"] == "lane_finished":
            last = rec
        elif rec.get("lane") == lane and rec["type"] == "attempt":
            last = None
    return last


def _reference_fingerprint(path: Path, lane: str) -> str | None:
    return next((r["fingerprint"] for _no, r in iter_records(path) if r["type"] == "lane" and r["lane"] == lane),
                None)


@settings(max_examples=60, deadline=None)
@given(_OPS)
def test_index_agrees_with_a_full_read(tmp_path_factory: pytest.TempPathFactory, ops: list[tuple]) -> None:
    """Whatever was appended, in this session or before a reopen, the open journal's
    answers equal those of reading the whole file."""
    path = tmp_path_factory.mktemp("j") / "journal.jsonl"
    j = Journal.open(path, suite=SUITE, resume=False)
    try:
        for op in ops:
            if op[0] == "attempt":
                j.append_attempt(Attempt(lane=op[1], prompt_id=op[2], n=op[3], answer=op[4],
                                         tool_calls=[ToolCall(name="read_file", arguments={}, result="out")],
                                         transcript=[{"role": "user", "content": "q"}]))
            elif op[0] == "finished":
                j.lane_finished(op[1], {"throughput": {"tok_s": float(op[2])}})
            elif op[0] == "lane":
                ref = _reference_fingerprint(path, op[1])
                if ref is not None and ref != op[2]:
                    with pytest.raises(JournalError, match=f"lane '{op[1]}'.*changed"):
                        j.begin_lane(op[1], op[2])
                else:
                    j.begin_lane(op[1], op[2])
                    assert _reference_fingerprint(path, op[1]) == (ref or op[2])
            else:
                j.close()
                j = Journal.open(path, suite=SUITE, resume=True)
            for lane in ("a", "b", "c"):
                assert j.completed(lane) == completed(path, lane)
                assert j.finished_record(lane) == _reference_finished(path, lane)
        for a in j.completed("a").values():
            assert a.transcript == [] and all(tc.result == "" for tc in a.tool_calls)
    finally:
        j.close()


def test_resume_reads_the_file_once_whatever_the_lanes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--resume over many lanes: the file is read once at open; fingerprints and
    lane_finished records come from the index and only the asked lane's lines are reread
    (it was one whole-file read per lane and per question: O(lanes x journal))."""
    import builtins

    import hbench.journal as journal_mod

    path = tmp_path / "journal.jsonl"
    with Journal.open(path, suite=SUITE, resume=False) as j:
        for li in range(20):
            j.begin_lane(f"l{li}", "fp")
            for n in (1, 2):
                j.append_attempt(make_attempt(lane=f"l{li}", n=n))
            j.lane_finished(f"l{li}", {"throughput": {"tok_s": float(li)}})
    read: list[int] = []

    class Counting:
        def __init__(self, f):  # noqa: ANN001
            self.f = f

        def __enter__(self):  # noqa: ANN204
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def __iter__(self):  # noqa: ANN204
            for raw in self.f:
                read.append(len(raw))
                yield raw

        def seek(self, off: int) -> int:
            return self.f.seek(off)

        def readline(self) -> bytes:
            raw = self.f.readline()
            read.append(len(raw))
            return raw

    monkeypatch.setattr(journal_mod, "open", lambda *a, **k: Counting(builtins.open(*a, **k)), raising=False)
    j = Journal.open(path, suite=SUITE, resume=True)
    size = path.stat().st_size
    assert size <= sum(read) < size * 1.1  # once (+ the first lines again for the suite check)
    read.clear()
    for li in range(20):
        j.begin_lane(f"l{li}", "fp")
        assert j.finished_record(f"l{li}")["throughput"] == {"tok_s": float(li)}
    assert read == []
    got = j.completed("l7")
    assert sorted(got) == [("p1", 1), ("p1", 2)] and got[("p1", 2)].lane == "l7"
    assert len(read) == 2 and sum(read) < size / 15
    j.close()
