"""Progress bars for long commands: on stderr, only when stderr is a terminal.

Without a terminal (a pipe, a CI log) nothing is drawn, so output carries no blank or
stray lines. A :class:`Bar` is one task with a count, its description and elapsed time;
bars can share one live display (``Bar(outer.progress, ...)``), so a comparison shows its
overall count and the current run's layers at once.
"""

from __future__ import annotations

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


class Bar:
    """One counted task. ``progress`` is True (a new display on stderr if it is a terminal),
    False (nothing), or a running :class:`rich.progress.Progress` to add the task to (it is
    removed again on exit). Use as a context manager."""

    def __init__(self, progress: bool | Progress | None, description: str, total: int,
                 console: Console | None = None):
        self.progress: Progress | None
        if isinstance(progress, Progress):
            self.progress, self._own = progress, False
        else:
            self.progress, self._own = (live_progress(console) if progress else None), True
        self._task: TaskID | None = None
        self._description, self._total = description, total

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

    def advance(self, n: int = 1) -> None:
        if self.progress is not None and self._task is not None:
            self.progress.advance(self._task, n)

    def count(self, done: int, total: int | None = None) -> None:
        """Set the count to ``done`` (of ``total`` when given), as a search reports it."""
        if self.progress is not None and self._task is not None:
            self.progress.update(self._task, completed=done, total=total)
