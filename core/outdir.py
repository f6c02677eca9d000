"""The results folder (``--out``): what hbench may write there, what it owns, and the
lock that keeps two runs out of one folder.

``--out`` is a user's folder. hbench writes its results there (``journal.jsonl``,
``<lane>.json``, ``summary.md``, ``report.html``, ``review.md``, ``logs/``) and keeps
its working files (the rendered fixtures, each attempt's scratch copy, agent state)
under ``OUT/.hbench/``, a folder it creates and marks as its own with
``OUT/.hbench/marker.json``. hbench deletes only inside a marked folder
(:meth:`OutDir.remove`); a user's ``OUT/fixtures/`` is never touched.

:func:`claim` refuses, before anything is written (exit 2):

* an empty ``out`` (it would be the current folder);
* ``--out`` equal to or inside the suite folder;
* an existing file, or a non-empty folder that holds no earlier hbench run (neither the
  marker nor a journal whose first line is an hbench journal header);

and takes an exclusive lock (``OUT/.hbench/run.lock``, :mod:`filelock`), so a second
run on the same folder fails at once: ``results dir in use by pid N since T``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from filelock import FileLock, Timeout

from hbench.errors import BadInput
from hbench.sandbox import remove_tree

#: hbench's own folder inside ``--out``
WORK = ".hbench"
MARKER = "marker.json"
LOCK = "run.lock"
OWNER = "run.owner.json"
MARKER_TEXT = "hbench's working files (rendered fixtures, scratch copies); hbench deletes only inside this folder"


class OutDirError(BadInput):
    """``--out`` cannot be used: the message says why and what to pass instead."""


class OutDirInUse(OutDirError):
    """Another hbench run holds the lock on this results folder."""


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def is_marked(work: Path) -> bool:
    """Did hbench create ``work`` (an ``OUT/.hbench`` folder)?"""
    try:
        if work.is_symlink() or not work.is_dir():
            return False
        data = json.loads((work / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("owner") == "hbench"


def holds_hbench_run(out: Path) -> bool:
    """``out`` holds an earlier hbench run: the marker, or (runs from before the marker)
    a ``journal.jsonl`` whose first line is an hbench journal header."""
    if is_marked(out / WORK):
        return True
    journal = out / "journal.jsonl"
    try:
        with journal.open("rb") as fh:
            first = fh.readline(64 * 1024)
        rec = json.loads(first)
    except (OSError, ValueError):
        return False
    return isinstance(rec, dict) and rec.get("type") == "header" and str(rec.get("schema", "")).startswith("hbench.")


def mark(out: Path) -> Path:
    """Create ``OUT/.hbench`` with its marker (if it is not there) and return it."""
    work = Path(out) / WORK
    if work.is_symlink() or (work.exists() and not work.is_dir()):
        raise OutDirError(f"{work}: exists and is not hbench's folder (a link or a file); move it away, "
                          "or pass another --out")
    work.mkdir(parents=True, exist_ok=True)
    marker = work / MARKER
    if not is_marked(work):
        if any(p.name != MARKER for p in work.iterdir()):
            raise OutDirError(f"{work}: exists without hbench's marker, so it is not hbench's to write into; "
                              "move it away, or pass another --out")
        marker.write_text(json.dumps({"owner": "hbench", "note": MARKER_TEXT, "created_at": _now()}, indent=2)
                          + "\n", encoding="utf-8")
    return work


class OutDir:
    """A claimed results folder: ``path`` (OUT), ``work`` (``OUT/.hbench``), the lock."""

    def __init__(self, path: Path, work: Path, lock: FileLock):
        self.path = path
        self.work = work
        self._lock = lock

    def remove(self, target: Path) -> None:
        """Remove ``target`` when it lies inside this run's marked folder; refuse otherwise."""
        target = Path(target)
        real = Path(os.path.realpath(target.parent)) / target.name
        if not (is_marked(self.work) and _inside(real, Path(os.path.realpath(self.work))) and real != Path(
                os.path.realpath(self.work))):
            raise OutDirError(f"{target}: not inside hbench's own folder {self.work}; not deleted")
        remove_tree(target)

    def release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            try:
                (self.work / OWNER).unlink(missing_ok=True)
            except OSError:
                pass
            lock.release()

    def __enter__(self) -> OutDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim(out: str | os.PathLike[str], *, key: str = "--out", suite_path: str | os.PathLike[str] | None = None
          ) -> OutDir:
    """Check ``out`` may be used (see the module doc), create and mark ``OUT/.hbench``
    and lock it for this process. ``key`` is how the user named it (``--out`` or
    ``hbench.toml: run.out``), for messages. Release with :meth:`OutDir.release`."""
    raw = os.fspath(out)
    if not raw.strip():
        raise OutDirError(f"{key} is empty; name the results folder (for example results): an empty one "
                          "would be the current folder, whose files hbench does not own")
    path = Path(raw).expanduser()
    real = Path(os.path.realpath(path))
    if suite_path is not None:
        suite_real = Path(os.path.realpath(suite_path))
        if _inside(real, suite_real):
            raise OutDirError(f"{key} {raw}: is the suite folder {suite_real} or inside it; results and "
                              "working files would mix with the suite's own. Pass a folder outside the suite "
                              "(for example --out results)")
    if path.exists() and not path.is_dir():
        raise OutDirError(f"{key} {raw}: exists and is not a folder; pass a folder for the results")
    if path.is_dir() and any(path.iterdir()) and not holds_hbench_run(path):
        raise OutDirError(f"{key} {raw}: a folder that is not empty and holds no earlier hbench run; hbench "
                          "writes and deletes files in its results folder, so it uses only a new or empty one, "
                          "or one of its own. Pass another --out (a new folder)")
    path.mkdir(parents=True, exist_ok=True)
    work = mark(path)
    lock = _lock(work, key, raw)
    return OutDir(path, work, lock)


def _lock(work: Path, key: str, raw: str) -> FileLock:
    lock = FileLock(str(work / LOCK), timeout=0)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        who = _owner(work)
        raise OutDirInUse(f"results dir in use by {who}: {key} {raw} is another hbench run's results folder "
                          "right now; wait for it to finish, or pass another --out") from None
    try:
        (work / OWNER).write_text(json.dumps({"pid": os.getpid(), "since": _now()}) + "\n", encoding="utf-8")
    except OSError:
        pass
    return lock


def _owner(work: Path) -> str:
    try:
        data = json.loads((work / OWNER).read_text(encoding="utf-8"))
        return f"pid {int(data['pid'])} since {data['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (pid unknown)"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
