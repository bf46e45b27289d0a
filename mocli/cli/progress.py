"""The progress bar the command line draws on stderr while long work runs."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..io.files import reporting_to


class Bar:
    """A progress bar on stderr. ``report`` is the :data:`mocli.io.files.Progress` the
    library calls; :meth:`close` erases the bar, so that what a command prints next starts
    on a clean line (a command calls it once its work is done, before any output)."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=Console(stderr=True), transient=True)
        self.tasks: dict[str, int] = {}
        self.report = reporting_to(self._update)
        self.open = False

    def _update(self, stage: str, done: int, total: int) -> None:
        if total < 2:
            return
        if not self.open:
            self.progress.start()
            self.open = True
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done)

    def close(self) -> None:
        if self.open:
            self.progress.stop()
            self.open = False


@contextlib.contextmanager
def progress_on_stderr() -> Iterator[Bar | None]:
    """A :class:`Bar` when stderr is a terminal (stdout stays data), else None; the bar is
    erased at the end whatever happens."""
    if not sys.stderr.isatty():
        yield None
        return
    bar = Bar()
    try:
        yield bar
    finally:
        bar.close()


def clear(bar: Bar | None) -> None:
    if bar is not None:
        bar.close()
