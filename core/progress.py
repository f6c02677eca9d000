"""Progress of a run on stderr: a rich bar per lane on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from hbench.logging import scrub


class Progress:
    """A rich bar on stderr: lane, prompt, attempt, passes so far, ETA. With ``plain``
    (stderr not a terminal: a pipe, a CI log) no bar and no escape codes: one line per
    finished prompt, and a status line (waiting for a lane, measuring) every few seconds."""

    def __init__(self, enabled: bool, plain: bool = False, status_every_s: float = 5.0):
        self.enabled = enabled
        self.plain = plain and not enabled
        self.status_every_s = status_every_s
        self._p: Any = None
        self._task: Any = None  # the last lane's (callers that name no lane)
        self._tasks: dict[str, Any] = {}  # one bar per lane: --parallel-lanes shows every active lane
        self._lock = threading.Lock()
        self._last_status: dict[str, float] = {}  # status head -> when it was last written

    def __enter__(self) -> Progress:
        if self.enabled:
            # rich is imported only when a bar is drawn: `hbench --help` and plain runs stay light
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)
            from rich.progress import Progress as RichProgress

            self._p = RichProgress(TextColumn("{task.description}"), TextColumn("{task.fields[passes]}"),
                                   BarColumn(), MofNCompleteColumn(),
                                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                   console=Console(stderr=True), transient=False)
            self._p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.stop()

    def lane(self, name: str, total: int) -> None:
        if self._p is not None:
            with self._lock:
                self._task = self._tasks[name] = self._p.add_task(f"{name}: starting", total=max(total, 0),
                                                                  passes="")

    def _task_of(self, lane: str | None) -> Any:
        return self._tasks.get(lane, self._task) if lane is not None else self._task

    def status(self, text: str, lane: str | None = None) -> None:
        if self.plain:
            head = text.split(",", 1)[0]  # "lane: waiting for URL to be ready" without the count
            now = time.monotonic()
            with self._lock:
                last_t = self._last_status.get(head, -1e9)
                if now - last_t < self.status_every_s:
                    return
                self._last_status = {head: now} if lane is None else {**self._last_status, head: now}
            self._line(text)
        task = self._task_of(lane)
        if self._p is not None and task is not None:
            with self._lock:
                self._p.update(task, description=text)

    def prompt_done(self, lane: str, prompt: str, passes: int, attempts: int, elapsed_s: float) -> None:
        """One plain line when a prompt has all its attempts (plain mode only)."""
        if self.plain:
            self._line(f"{lane} · {prompt}: {passes}/{attempts} passed · {elapsed_s:.1f} s elapsed")

    @staticmethod
    def _line(text: str) -> None:
        try:
            sys.stderr.write(scrub(text.replace("\n", " ")) + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed pipe never stops a run
            pass

    def advance(self, text: str, passes: str, lane: str | None = None) -> None:
        task = self._task_of(lane)
        if self._p is not None and task is not None:
            with self._lock:
                self._p.update(task, advance=1, description=text, passes=passes)

    def set_total(self, total: int, lane: str | None = None) -> None:
        task = self._task_of(lane)
        if self._p is not None and task is not None:
            with self._lock:
                self._p.update(task, total=total)


__all__ = ["Progress"]
