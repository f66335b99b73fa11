"""Progress bars for long commands: on stderr, only when stderr is a terminal.

Without a terminal (a pipe, a CI log) nothing is drawn, so output carries no blank or
stray lines; only the slow steps that ask for it (``lines=True``: a layer's mapping
search) say each finished item in one plain line on stderr, such as
``searching 8 distinct layers on 2 processes: 3/8 mlp (12.4 s)``. A :class:`Bar` is one
task with a count, its description and elapsed time; bars can share one live display
(``Bar(outer.progress, ...)``), so a comparison shows its overall count and the current
run's layers at once.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


def live_progress(console: Console | None = None) -> Progress | None:
    """A started-on-demand rich Progress on ``console`` (default: stderr), or None when that
    console is not a terminal."""
    con = console or Console(stderr=True)
    if not con.is_terminal:
        return None
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("elapsed"), TimeElapsedColumn(), console=con, transient=True)


def plain_lines(progress: Any, console: Console | None = None) -> bool:
    """Whether ``progress`` asks for progress (True) where stderr (or ``console``) is not a
    terminal: then slow steps print one plain line per finished item (:func:`line`)."""
    return progress is True and not (console or Console(stderr=True)).is_terminal


def line(text: str, console: Console | None = None) -> None:
    """One plain progress line on stderr (or ``console``'s file)."""
    print(text, file=console.file if console is not None else sys.stderr, flush=True)


class Bar:
    """One counted task. ``progress`` is True (a new display on stderr if it is a terminal),
    False (nothing), or a running :class:`rich.progress.Progress` to add the task to (it is
    removed again on exit). Use as a context manager. With ``lines``, ``progress=True``
    and no terminal, each :meth:`advance` prints ``DESCRIPTION: DONE/TOTAL ITEM (ELAPSED s)``."""

    def __init__(self, progress: bool | Progress | None, description: str, total: int,
                 console: Console | None = None, *, lines: bool = False):
        self.progress: Progress | None
        if isinstance(progress, Progress):
            self.progress, self._own = progress, False
        else:
            self.progress, self._own = (live_progress(console) if progress else None), True
        self._task: TaskID | None = None
        self._description, self._total = description, total
        self._lines = lines and self.progress is None and plain_lines(progress, console)
        self._console = console
        self._done = 0
        self._t0 = time.perf_counter()

    def __enter__(self) -> "Bar":
        if self.progress is not None:
            if self._own:
                self.progress.start()
            self._task = self.progress.add_task(self._description, total=self._total)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None and self._task is not None:
            if self._own:
                self.progress.stop()
            else:
                self.progress.remove_task(self._task)

    def describe(self, text: str) -> None:
        if self.progress is not None and self._task is not None:
            self.progress.update(self._task, description=text)

    def advance(self, n: int = 1, item: str | None = None) -> None:
        """Count ``n`` more done (``item``: what was done, for a plain line)."""
        self._done += n
        if self._lines:
            what = f" {item}" if item else ""
            line(f"{self._description}: {self._done}/{self._total}{what} "
                 f"({time.perf_counter() - self._t0:.1f} s)", self._console)
        if self.progress is not None and self._task is not None:
            self.progress.advance(self._task, n)

    def count(self, done: int, total: int | None = None) -> None:
        """Set the count to ``done`` (of ``total`` when given), as a search reports it."""
        if self.progress is not None and self._task is not None:
            self.progress.update(self._task, completed=done, total=total)
