"""The per-attempt scratch copy and the path confinement every tool resolves through.

Each attempt gets a **fresh copy** of the rendered fixtures at
``OUT/.hbench/scratch/<lane>/<prompt>/<n>/`` (:func:`attempt_dir`, :meth:`Sandbox.create`);
transcripts live in the journal, outside it. A model-supplied path is confined to that
copy by :meth:`Sandbox.resolve`, which refuses, with a :class:`~hbench.tools.ToolError`
the model sees:

* NUL bytes, absolute paths (``/etc/passwd``, ``C:\\``), ``~`` and any ``..`` component;
* symlinks whose target leaves the copy (checked component by component, so a symlinked
  directory in the middle of a path is caught too);

and :meth:`Sandbox.open_regular` (used for every read) additionally refuses anything that
is not a regular file (devices such as ``/dev/zero`` linked in, FIFOs, sockets) and hard
links (``st_nlink > 1``: the other name may be outside the copy). It opens with
``O_NOFOLLOW | O_NONBLOCK`` and re-checks with ``fstat``, so a FIFO cannot block the
attempt and a swapped-in symlink is not followed. Reads are capped
(:attr:`Sandbox.max_read_bytes`): a 1 GB file costs one capped ``read``, never 1 GB.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import stat
import threading
from pathlib import Path
from collections import deque
from typing import Iterator

from hbench.text import has_surrogate
from hbench.tools import ToolError

#: default cap on the bytes one read returns to the model
MAX_READ_BYTES = 32 * 1024

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_component(name: str) -> str:
    """A lane name or prompt id as one safe path component (no separators, no ``..``)."""
    out = _SAFE.sub("_", name).strip(".") or "_"
    return out[:120]


def attempt_dir(out_dir: Path, lane: str, prompt_id: str, n: int) -> Path:
    """``WORK/scratch/<lane>/<prompt>/<n>``: one attempt's private scratch folder (the runner passes
    ``OUT/.hbench`` as ``out_dir``: hbench's marked working folder, see :mod:`hbench.outdir`)."""
    return Path(out_dir) / "scratch" / safe_component(lane) / safe_component(prompt_id) / str(int(n))


class Sandbox:
    """Path confinement to one directory (an attempt's scratch copy)."""

    def __init__(self, root: Path, *, max_read_bytes: int = MAX_READ_BYTES):
        self.root = Path(os.path.realpath(root))
        if not self.root.is_dir():
            raise NotADirectoryError(f"sandbox root {self.root} is not a directory")
        self.max_read_bytes = max_read_bytes

    # ----------------------------------------------------------------- creation
    @classmethod
    def create(cls, fixtures: Path | None, dest: Path, **kw: int) -> Sandbox:
        """Make ``dest`` a fresh copy of ``fixtures`` (or an empty folder) and confine to it.

        Whatever was at ``dest`` (an attempt interrupted by a kill) is removed first.
        Symlinks are copied as links, never followed, so a fixture cannot smuggle outside
        content into the copy.
        """
        dest = Path(dest)
        if dest.exists() or dest.is_symlink():
            remove_tree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if fixtures is not None and Path(fixtures).is_dir():
            shutil.copytree(fixtures, dest, symlinks=True)
        else:
            dest.mkdir()
        return cls(dest, **kw)

    # ----------------------------------------------------------------- confinement
    def _inside(self, p: str) -> bool:
        root = str(self.root)
        return p == root or p.startswith(root + os.sep)

    def resolve(self, path: object, *, what: str = "path") -> Path:
        """The real path of model-supplied ``path`` inside the sandbox, or ToolError.

        The path need not exist (the caller reports "no such file" itself).
        """
        if path is None:
            path = "."
        if not isinstance(path, str):
            raise ToolError(f"{what} must be a string, got {type(path).__name__}")
        if "\x00" in path:
            raise ToolError(f"{what} contains a NUL byte; refused")
        if has_surrogate(path):
            raise ToolError(f"{what} holds a lone surrogate (text that is not valid Unicode); refused")
        if len(path) > 4096:
            raise ToolError(f"{what} is longer than 4096 characters; refused")
        raw = path.strip()
        if raw in ("", "."):
            return self.root
        norm = raw.replace("\\", "/")
        if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
            raise ToolError(
                f"{what} {path!r} is absolute; refused. Paths are relative to the workspace "
                f"root (use '.' for the root, or e.g. 'notes/todo.md')"
            )
        if norm.startswith("~"):
            raise ToolError(f"{what} {path!r} starts with '~'; refused. Paths are relative to the workspace root")
        parts = [p for p in norm.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise ToolError(f"{what} {path!r} contains '..'; refused. Stay inside the workspace")
        # Walk component by component so a symlink anywhere on the way is checked.
        cur = str(self.root)
        for i, part in enumerate(parts):
            nxt = os.path.join(cur, part)
            try:
                st = os.lstat(nxt)
            except FileNotFoundError:
                return Path(os.path.join(nxt, *parts[i + 1 :]))
            except OSError as exc:
                raise ToolError(f"{what} {path!r}: {exc.strerror or exc}") from None
            if stat.S_ISLNK(st.st_mode):
                target = os.path.realpath(nxt)
                if not self._inside(target):
                    raise ToolError(f"{what} {path!r} is a symlink that points outside the workspace; refused")
                nxt = target
            cur = nxt
        return Path(cur)

    def rel(self, p: Path | str) -> str:
        """``p`` relative to the root, as the model should write it (``.`` for the root)."""
        r = os.path.relpath(str(p), str(self.root))
        return "." if r == "." else r.replace(os.sep, "/")

    # ----------------------------------------------------------------- reading
    def check_regular(self, real: Path, st: os.stat_result, shown: str) -> None:
        if stat.S_ISDIR(st.st_mode):
            raise ToolError(f"{shown!r} is a directory; use list_dir")
        if not stat.S_ISREG(st.st_mode):
            kind = ("a device file" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                    else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                    else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise ToolError(f"{shown!r} is {kind}; refused")
        if st.st_nlink > 1:
            raise ToolError(f"{shown!r} is a hard link to a file that may be outside the workspace; refused")

    def open_regular(self, path: object, *, what: str = "path") -> tuple[int, os.stat_result, Path]:
        """Open a confined regular file read-only: ``(fd, stat, real_path)``; the caller closes fd."""
        real = self.resolve(path, what=what)
        shown = path if isinstance(path, str) else str(path)
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise ToolError(f"no such file: {shown!r} (list_dir shows what exists)") from None
        except IsADirectoryError:
            raise ToolError(f"{shown!r} is a directory; use list_dir") from None
        except OSError as exc:
            if exc.errno == getattr(os, "ELOOP", -1):
                raise ToolError(f"{shown!r} is a symlink; refused") from None
            raise ToolError(f"cannot open {shown!r}: {exc.strerror or exc}") from None
        try:
            st = os.fstat(fd)
            self.check_regular(real, st, shown)
        except BaseException:
            os.close(fd)
            raise
        return fd, st, real

    def read_bytes(self, path: object, limit: int | None = None) -> tuple[bytes, int]:
        """Up to ``limit`` (default :attr:`max_read_bytes`) bytes of a confined regular
        file, and its full size. Never reads more than the cap."""
        limit = self.max_read_bytes if limit is None else limit
        fd, st, _real = self.open_regular(path)
        try:
            chunks: list[bytes] = []
            left = limit
            while left > 0:
                b = os.read(fd, min(left, 1 << 16))
                if not b:
                    break
                chunks.append(b)
                left -= len(b)
            return b"".join(chunks), st.st_size
        finally:
            os.close(fd)

    def walk(self, start: Path, *, max_depth: int = 12, max_entries: int = 5000) -> Iterator[tuple[Path, os.stat_result]]:
        """Entries under ``start`` (a resolved path inside the root), breadth-first and
        sorted, never following symlinks, bounded in depth and entries. Yields
        ``(path, lstat)``; raises :class:`WalkLimit` (a ToolError) past ``max_entries``."""
        queue: deque[tuple[Path, int]] = deque([(start, 0)])
        seen = 0
        while queue:
            d, depth = queue.popleft()
            try:
                names = sorted(os.listdir(d))
            except OSError:
                continue
            for name in names:
                p = d / name
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                seen += 1
                if seen > max_entries:
                    raise WalkLimit(f"more than {max_entries} entries; narrow the path or pattern")
                yield p, st
                if stat.S_ISDIR(st.st_mode) and depth + 1 < max_depth:
                    queue.append((p, depth + 1))


def decode_text(data: bytes) -> str | None:
    """UTF-8 text (undecodable bytes replaced), or None when ``data`` looks binary."""
    if b"\x00" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


class WalkLimit(ToolError):
    """A directory walk hit its entry bound."""


def remove_tree(path: Path) -> None:
    """Remove a scratch folder (or a stray file/link at its place) without following links."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
        return
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


class ScratchPool:
    """Fresh scratch copies made ahead and removed behind, off the attempt's path.

    On a slow disk, copying the fixtures (18 files) and removing the copy cost ~40 ms of
    wall time per attempt (ext4 on a virtual disk: 8 ms to copy, 30 ms to remove), all of
    it between two model turns. A background thread keeps ``ahead`` copies ready under
    ``staging`` (same filesystem) and removes used ones, so an attempt only renames a
    ready copy into place (:meth:`create`) and away (:meth:`discard`). A copy is the same
    as :meth:`Sandbox.create` makes (``copytree`` with ``symlinks=True``); when none is
    ready, :meth:`create` copies at once. :meth:`close` waits for the removals.
    """

    def __init__(self, fixtures: Path | None, staging: Path, *, ahead: int = 2):
        self.fixtures = Path(fixtures) if fixtures is not None else None
        self.staging = Path(staging)
        self.ahead = max(1, int(ahead))
        self._ready: deque[Path] = deque()
        self._trash: deque[Path] = deque()
        self._names = itertools.count()
        self._cv = threading.Condition()
        self._closed = False
        remove_tree(self.staging)
        self.staging.mkdir(parents=True)
        self._thread = threading.Thread(target=self._work, name="hbench-scratch", daemon=True)
        self._thread.start()

    def _fresh(self, dest: Path) -> None:
        if self.fixtures is not None and self.fixtures.is_dir():
            shutil.copytree(self.fixtures, dest, symlinks=True)
        else:
            dest.mkdir()

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._closed and not self._trash and len(self._ready) >= self.ahead:
                    self._cv.wait()
                if self._closed and not self._trash:
                    return
                make = not self._closed and len(self._ready) < self.ahead
                victim = None if make else self._trash.popleft()
                name = self.staging / f"ready-{next(self._names)}"
            if make:
                try:
                    self._fresh(name)
                except OSError:  # disk full: create() copies (and reports) itself
                    remove_tree(name)
                    with self._cv:
                        self._closed = True
                    continue
                with self._cv:
                    self._ready.append(name)
            else:
                remove_tree(victim)

    def create(self, dest: Path, **kw: int) -> Sandbox:
        """Make ``dest`` a fresh copy (a ready one renamed into place) and confine to it."""
        dest = Path(dest)
        with self._cv:
            ready = self._ready.popleft() if self._ready else None
            self._cv.notify_all()
        if ready is None:
            return Sandbox.create(self.fixtures, dest, **kw)
        if dest.exists() or dest.is_symlink():
            remove_tree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(ready, dest)
        return Sandbox(dest, **kw)

    def discard(self, path: Path) -> None:
        """Remove a used copy: renamed into ``staging`` now, deleted in the background."""
        path = Path(path)
        if not (path.exists() or path.is_symlink()):
            return
        with self._cv:
            closed = self._closed and not self._thread.is_alive()
            trash = self.staging / f"trash-{next(self._names)}"
        try:
            os.rename(path, trash)
        except OSError:
            remove_tree(path)
            return
        if closed:
            remove_tree(trash)
            return
        with self._cv:
            self._trash.append(trash)
            self._cv.notify_all()

    def close(self) -> None:
        """Stop making copies, finish the removals, remove ``staging``."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join()
        remove_tree(self.staging)

    def __enter__(self) -> ScratchPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
