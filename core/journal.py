"""The append-only attempt journal (``OUT/journal.jsonl``) and what ``--resume`` reads back.

One JSON object per line, schema ``hbench.journal/1``:

* ``{"type": "header", ...}`` - first line: the suite's name, sha256 and fixtures sha256,
  and the ``run_id`` (kept by ``--resume``; every scorecard of the run carries it).
  ``--resume`` against a journal of another suite (or another version of it) is refused.
* ``{"type": "lane", "lane": NAME, "fingerprint": SHA}`` - before a lane's first attempt:
  the sha256 of the lane's configuration and the settings that shape an attempt
  (:func:`lane_fingerprint`). A resumed lane whose fingerprint differs is refused.
* ``{"type": "attempt", "lane", "prompt_id", "n", "attempt": {...}}`` - one per finished
  attempt: transcript, tool calls, answer, check result, timings, runaway/error. Written
  with a single ``write`` to an ``O_APPEND`` file, flushed and fsynced before the runner
  moves on, so a kill -9 loses at most the attempt in flight.
* ``{"type": "lane_finished", "lane", ...}`` - throughput, telemetry and served model,
  so a resumed run need not reopen a lane whose attempts are all journaled.
* ``{"type": "lane_failed", "lane", "reason"}`` - informational.

Reading is streaming (one line at a time). An open :class:`Journal` reads its file once
(at ``--resume``) and then keeps a compact index in step with what it appends: per lane
the fingerprint, the byte offset of each attempt record and the last ``lane_finished``
record; :meth:`Journal.completed` reads back only that lane's lines. The runner keeps
only "light" attempts (:func:`light`: no transcript, no tool output) in memory. A torn
last line (a kill in the middle of a write) is ignored and cut off when the journal is
reopened for appending; a corrupt line anywhere else is an error naming its line number.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from array import array
from pathlib import Path
from typing import Any, Iterator, Mapping

import attrs
import cattrs

from hbench.errors import BadInput, HBenchError
from hbench.logging import get_logger, scrub
from hbench.models import JOURNAL_SCHEMA, Attempt, CheckResult, LaneSpec, ToolCall, Turn
from hbench.run_settings import Settings
from hbench.text import SURROGATE_ESCAPE_BYTES, valid_json, valid_text

_conv = cattrs.Converter()

#: LaneSpec fields that do not change what an attempt does (excluded from the fingerprint)
_NOT_FINGERPRINTED = {"source", "tags", "api_key_env", "ready_timeout_s", "expected_memory_gb", "env", "node",
                      "memory_floor_gb", "sweep_depths", "sweep_concurrency", "sweep_budget_s"}


class JournalError(BadInput):
    """The journal cannot be resumed (another suite or lane config, or corrupt)."""


class JournalWriteError(HBenchError):
    """The journal could not be written (disk full, I/O error); what was written is intact."""

    exit_code = 1


def lane_fingerprint(spec: LaneSpec, settings: Settings | Mapping[str, Any]) -> str:
    """sha256 of the lane's configuration plus the per-attempt settings: the lane's resolved
    :class:`~hbench.run_settings.Settings` (its :meth:`~hbench.run_settings.Settings.limits`:
    agent, timeout, max_turns, max_tokens, temperature), or those as a mapping. ``runs`` is
    not part of it: resuming with a larger ``--runs`` extends a lane. The same lane and
    limits give the digest journals have always held (tests/test_run_settings.py pins one)."""
    limits = settings.limits() if isinstance(settings, Settings) else dict(settings)
    cfg = {k: v for k, v in attrs.asdict(spec).items() if k not in _NOT_FINGERPRINTED}
    blob = json.dumps({"lane": cfg, "settings": limits}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def attempt_to_dict(attempt: Attempt) -> dict[str, Any]:
    return _conv.unstructure(attempt)


def attempt_from_dict(data: dict[str, Any]) -> Attempt:
    return _conv.structure(data, Attempt)


def light(attempt: Attempt) -> Attempt:
    """The attempt without its transcript and tool output: what scoring needs, kept in memory."""
    return attrs.evolve(
        attempt,
        transcript=[],
        tool_calls=[attrs.evolve(tc, result="") for tc in attempt.tool_calls],
    )


def _light_attempt(data: dict[str, Any]) -> Attempt:
    """A journaled attempt dict structured as :func:`light` would leave it; the transcript
    and tool output are dropped before structuring (most of a record's bytes).

    Records this hbench wrote are built directly (~4x faster than cattrs: --resume reads
    thousands); anything else (another version's fields, wrong types) goes through cattrs,
    which ignores unknown keys and names a bad field."""
    data = dict(data)
    data["transcript"] = []
    calls = data.get("tool_calls")
    if isinstance(calls, list):
        data["tool_calls"] = [{**c, "result": ""} if isinstance(c, dict) else c for c in calls]
    try:
        check = data.get("check")
        return Attempt(**{
            **data,
            "tool_calls": [ToolCall(**c) for c in data.get("tool_calls") or ()],
            "turns": [Turn(**t) for t in data.get("turns") or ()],
            "check": CheckResult(**check) if check is not None else None,
        })
    except TypeError:
        return _conv.structure(data, Attempt)


class _LaneIndex:
    """What the journal holds for one lane, without the records themselves."""

    __slots__ = ("begun", "fingerprint", "offsets", "finished")

    def __init__(self) -> None:
        self.begun = False  # a "lane" record was seen; its fingerprint is the first one's
        self.fingerprint: Any = None
        self.offsets = array("q")  # byte offset of each attempt record, in file order
        self.finished: dict[str, Any] | None = None  # last lane_finished after the last attempt


def iter_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line_number, record)`` for each complete record, streaming.

    A last line without its newline, or one that does not parse, is a torn write and is
    skipped; a bad line before the last raises :class:`JournalError`.
    """
    with open(path, "rb") as f:
        pending: tuple[int, bytes] | None = None
        for no, raw in enumerate(f, 1):
            if pending is not None:
                yield pending[0], _parse(path, *pending)
            pending = (no, raw)
        if pending is not None:
            no, raw = pending
            if raw.endswith(b"\n"):
                try:
                    yield no, _parse(path, no, raw)
                except JournalError:
                    get_logger().warning("journal.torn_line", path=str(path), line=no)
            else:
                get_logger().warning("journal.torn_line", path=str(path), line=no)


def _parse(path: Path, no: int, raw: bytes) -> dict[str, Any]:
    try:
        rec = json.loads(raw)
        if not isinstance(rec, dict) or "type" not in rec:
            raise ValueError("not a journal record")
        if SURROGATE_ESCAPE_BYTES.search(raw):  # written escaped (by hand, another tool): made valid
            rec = valid_json(rec)
        return rec
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply (hand-edited)
        raise JournalError(
            f"{path}:{no}: corrupt journal line ({exc}); move the file away to start over, "
            f"or delete that line to resume"
        ) from None


def _index_record(index: dict[str, _LaneIndex], rec: dict[str, Any], offset: int) -> None:
    kind, lane = rec.get("type"), rec.get("lane")
    if kind not in ("lane", "attempt", "lane_finished") or not isinstance(lane, str):
        return
    li = index.get(lane)
    if li is None:
        li = index[lane] = _LaneIndex()
    if kind == "attempt":
        li.offsets.append(offset)
        li.finished = None
    elif kind == "lane_finished":
        li.finished = rec
    elif not li.begun:
        li.begun, li.fingerprint = True, rec.get("fingerprint")


def _scan(path: Path) -> tuple[dict[str, _LaneIndex], int]:
    """One streaming pass: every line checked as :func:`iter_records` does, the per-lane
    index built, and the length up to the end of the last complete, parseable line."""
    index: dict[str, _LaneIndex] = {}
    offset = 0
    with open(path, "rb") as f:
        pending: tuple[int, int, bytes] | None = None
        for no, raw in enumerate(f, 1):
            if pending is not None:
                _index_record(index, _parse(path, pending[0], pending[2]), pending[1])
            pending = (no, offset, raw)
            offset += len(raw)
    if pending is None:
        return index, 0
    no, start, raw = pending
    if raw.endswith(b"\n"):
        try:
            _index_record(index, _parse(path, no, raw), start)
            return index, offset
        except JournalError:
            pass
    get_logger().warning("journal.torn_line", path=str(path), line=no)
    return index, start


class Journal:
    """An open journal. Thread-safe: concurrent attempts append whole lines."""

    def __init__(self, path: Path, header: dict[str, Any], index: dict[str, _LaneIndex] | None = None):
        self.path = Path(path)
        self.header = header
        self._lock = threading.Lock()
        self._index: dict[str, _LaneIndex] = index if index is not None else {}
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: Path, *, suite: dict[str, Any], resume: bool) -> Journal:
        """Open ``path`` for a run of ``suite`` (``{name, version, sha256, fixtures_sha256}``).

        ``resume``: continue the journal there (refused when it is for another suite).
        Otherwise an existing journal is kept, renamed ``journal.<time>.jsonl``, and a new
        one started.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        log = get_logger()
        exists = path.exists() and path.stat().st_size > 0
        # run_id names the run in the run database; a --resume keeps it (one run, continued)
        header = {"type": "header", "schema": JOURNAL_SCHEMA, "suite": suite,
                  "created_at": _now(), "run_id": uuid.uuid4().hex}
        if exists and resume:
            first = next(iter_records(path), None)
            if first is None or first[1].get("type") != "header":
                raise JournalError(f"{path}: no journal header; it is not an hbench journal (use another --out)")
            old = first[1]
            if old.get("schema") != JOURNAL_SCHEMA:
                raise JournalError(f"{path}: journal schema {old.get('schema')!r}, this hbench writes "
                                   f"{JOURNAL_SCHEMA!r}; rerun without --resume")
            theirs, ours = old.get("suite") or {}, suite
            for key in ("name", "sha256", "fixtures_sha256"):
                if theirs.get(key) != ours.get(key):
                    raise JournalError(
                        f"{path}: cannot --resume: the journal is for suite {theirs.get('name')!r} "
                        f"({key} {str(theirs.get(key))[:12]}), this run uses suite {ours.get('name')!r} "
                        f"({key} {str(ours.get(key))[:12]}); rerun without --resume, or pass another --out"
                    )
            # one pass: every line checked before anything is appended, and the index built
            index, good = _scan(path)
            if good < path.stat().st_size:
                log.warning("journal.truncated_torn_tail", path=str(path), kept_bytes=good)
                os.truncate(path, good)
            log.info("journal.resumed", path=str(path))
            return cls(path, old, index)
        if exists:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(path.stat().st_mtime))
            dest = path.with_name(f"{path.stem}.{stamp}{path.suffix}")
            i = 1
            while dest.exists():
                dest = path.with_name(f"{path.stem}.{stamp}-{i}{path.suffix}")
                i += 1
            path.rename(dest)
            log.warning("journal.rotated", previous=str(dest),
                        hint="pass --resume to continue a journal instead of starting over")
        j = cls(path, header)
        j._append(header)
        return j

    # ----------------------------------------------------------------- writing
    def _append(self, record: dict[str, Any]) -> None:
        """Write one record (whole, fsynced), then index it."""
        line = scrub(json.dumps(record, ensure_ascii=False, default=str, separators=(",", ":"))) + "\n"
        try:
            data = line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from an agent: U+FFFD, never a stopped run
            line = valid_text(line)
            data = line.encode("utf-8")
        with self._lock:
            start = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
                os.fsync(self._fd)
            except OSError as exc:
                # A full disk (or a failing one) mid-record: cut the partial line off so the
                # journal stays whole records only, and stop with a clear error.
                try:
                    os.ftruncate(self._fd, start)
                except OSError:
                    pass  # the torn tail is cut when the journal is next opened
                raise JournalWriteError(
                    f"cannot write the journal {self.path}: {exc.strerror or exc}; it holds every "
                    f"record before this one. Free space on that disk (or pass another --out), "
                    f"then run again with --resume"
                ) from None
            # (a lane_finished record is kept as written: scrubbed)
            _index_record(self._index, json.loads(line) if record.get("type") == "lane_finished" else record,
                          start)

    def begin_lane(self, lane: str, fingerprint: str) -> None:
        """Record the lane's fingerprint, or refuse when the journal holds another one."""
        with self._lock:
            li = self._index.get(lane)
            begun, theirs = (li.begun, li.fingerprint) if li is not None else (False, None)
        if begun:
            if theirs != fingerprint:
                raise JournalError(
                    f"{self.path}: cannot --resume lane {lane!r}: its configuration or the run "
                    f"settings (agent, timeout, max_turns, max_tokens, temperature) changed since "
                    f"the journal was written; restore them, rerun without --resume, or pass another --out"
                )
            return
        self._append({"type": "lane", "lane": lane, "fingerprint": fingerprint, "at": _now()})

    def append_attempt(self, attempt: Attempt, node: str | None = None) -> None:
        """``node``: the machine the attempt ran on (``--ray``), kept in the record."""
        record = {"type": "attempt", "lane": attempt.lane, "prompt_id": attempt.prompt_id,
                  "n": attempt.n, "attempt": attempt_to_dict(attempt)}
        if node is not None:
            record["node"] = node
        self._append(record)

    def lane_finished(self, lane: str, data: dict[str, Any]) -> None:
        self._append({"type": "lane_finished", "lane": lane, **data, "at": _now()})

    def lane_failed(self, lane: str, reason: str) -> None:
        self._append({"type": "lane_failed", "lane": lane, "reason": reason, "at": _now()})

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- reading
    def completed(self, lane: str) -> dict[tuple[str, int], Attempt]:
        """Light attempts already journaled for ``lane``, by ``(prompt_id, n)``: only that
        lane's records are read (by their indexed offsets); a later record of the same
        attempt wins."""
        with self._lock:
            li = self._index.get(lane)
            offsets = array("q", li.offsets) if li is not None else array("q")
        out: dict[tuple[str, int], Attempt] = {}
        if not offsets:
            return out
        with open(self.path, "rb") as f:
            for off in offsets:
                f.seek(off)
                raw = f.readline()
                try:
                    data = json.loads(raw)["attempt"]
                    if SURROGATE_ESCAPE_BYTES.search(raw):  # written escaped elsewhere: made valid
                        data = valid_json(data)
                    a = _light_attempt(data)
                except Exception as exc:  # noqa: BLE001
                    raise JournalError(f"{self.path}: unreadable attempt record at byte {off} ({exc}); "
                                       f"delete that line to resume") from None
                out[(a.prompt_id, a.n)] = a
        return out

    def finished_record(self, lane: str) -> dict[str, Any] | None:
        """The last ``lane_finished`` record of ``lane`` after its last attempt, or None."""
        with self._lock:
            li = self._index.get(lane)
            return li.finished if li is not None else None


def completed(path: Path, lane: str | None = None) -> dict[Any, Attempt]:
    """Light attempts in a journal file: by ``(prompt_id, n)`` for one lane, or by
    ``(lane, prompt_id, n)`` when ``lane`` is None."""
    out: dict[Any, Attempt] = {}
    for no, rec in iter_records(path):
        if rec.get("type") != "attempt" or (lane is not None and rec.get("lane") != lane):
            continue
        try:
            a = _light_attempt(rec["attempt"])
        except Exception as exc:  # noqa: BLE001
            raise JournalError(f"{path}:{no}: unreadable attempt record ({exc}); delete that line to resume") from None
        key = (a.prompt_id, a.n) if lane is not None else (a.lane, a.prompt_id, a.n)
        out[key] = a
    return out


def transcripts(path: Path, lane: str) -> Iterator[Attempt]:
    """Full journaled attempts of one lane, one at a time (for reports)."""
    for _no, rec in iter_records(path):
        if rec.get("type") == "attempt" and rec.get("lane") == lane:
            yield attempt_from_dict(rec["attempt"])


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
