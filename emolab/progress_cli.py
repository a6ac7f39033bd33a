"""Progress for the command line: a rich bar on a terminal, plain lines otherwise (SSH jobs,
CI, `--json`), so headless runs never print colour codes or carriage returns."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .progress import Progress


class RichProgress(Progress):
    def __init__(self, bar) -> None:
        super().__init__()
        self.bar = bar
        self.current = None

    def task(self, description: str, total: int) -> None:
        if self.current is not None:
            self.bar.update(self.current, visible=False)
        self.current = self.bar.add_task(description, total=total or None)

    def update(self, completed: int, total: int | None = None) -> None:
        if self.current is not None:
            self.bar.update(
                self.current, completed=completed, **({"total": total} if total else {})
            )


class LineProgress(Progress):
    """One line when a phase starts and at each quarter, on stderr."""

    def __init__(self, quiet: bool = False) -> None:
        super().__init__()
        self.quiet = quiet
        self.desc, self.total, self.next_mark, self.t0 = "", 0, 0.25, time.time()

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def task(self, description: str, total: int) -> None:
        self.desc, self.total, self.next_mark, self.t0 = description, total, 0.25, time.time()
        self._say(f"... {description}")

    def update(self, completed: int, total: int | None = None) -> None:
        total = total or self.total
        if total and completed / total >= self.next_mark:
            spent = time.time() - self.t0
            eta = spent / completed * (total - completed) if completed else 0.0
            self._say(f"    {self.desc}: {completed}/{total} ({spent:.1f}s, ETA {eta:.0f}s)")
            while self.next_mark <= completed / total:
                self.next_mark += 0.25


@contextmanager
def cli_progress(quiet: bool) -> Iterator[Progress]:
    if quiet or not sys.stderr.isatty():
        yield LineProgress(quiet=quiet)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bar

    with Bar(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        yield RichProgress(bar)
