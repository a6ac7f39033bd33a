"""Progress and cancellation, one interface for the CLI (rich bar / plain lines) and the TUI."""

from __future__ import annotations

import threading

from .errors import Cancelled


class Progress:
    """Steps call `task` when a phase starts, `update` as it goes, `check` between batches.

    Subclasses render it; `cancel()` (from another thread, e.g. the TUI's Esc) makes the
    next `check` raise Cancelled, so work stops cleanly between batches.
    """

    def __init__(self) -> None:
        self._cancel = threading.Event()

    def task(self, description: str, total: int) -> None:
        pass

    def update(self, completed: int, total: int | None = None) -> None:
        pass

    def done(self) -> None:
        pass

    def text(self, key: str, index: int, text: str) -> None:
        """A partial output as it streams (e.g. key 'steered', prompt index, text so far)."""

    def cancel(self) -> None:
        self._cancel.set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("cancelled")

    def __call__(self, completed: int, total: int) -> None:
        """Capture-style callback: update, then honour a pending cancel."""
        self.update(completed, total)
        self.check()


class RecordingProgress(Progress):
    """Keeps what was reported (tests, and the TUI's log of phases)."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[tuple[str, int]] = []
        self.updates: list[tuple[int, int | None]] = []

    def task(self, description: str, total: int) -> None:
        self.tasks.append((description, total))

    def update(self, completed: int, total: int | None = None) -> None:
        self.updates.append((completed, total))
