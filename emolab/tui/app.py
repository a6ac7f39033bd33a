"""The emolab Textual app: six screens over one session, long work in thread workers.

Every computation is a call to a core step (`emolab.steps.*`) inside `start_work`, which
runs it in a thread worker with a `UIProgress`; the worker posts progress to the UI thread,
and Esc cancels it between batches through `Progress.cancel()`.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding

from ..errors import Cancelled, EmolabError
from ..progress import Progress
from ..session import Session
from .screens import (
    CompareScreen,
    HeadsScreen,
    HelpScreen,
    LayersScreen,
    LogScreen,
    PluginsScreen,
    SessionsScreen,
    SteerScreen,
)
from .widgets import WorkStatus

MODES = ("sessions", "layers", "heads", "steer", "plugins", "log")


class UIProgress(Progress):
    """Bridges a step's progress to the app: phase and counts go to the work bar, at most
    ten updates a second so a fast loop never floods the UI thread."""

    def __init__(self, app: EmolabApp) -> None:
        super().__init__()
        self.app = app
        self.last = 0.0

    def task(self, description: str, total: int) -> None:
        self.app.call_from_thread(self.app.set_work, phase=description, completed=0, total=total)

    def update(self, completed: int, total: int | None = None) -> None:
        now = time.monotonic()
        if now - self.last < 0.1 and completed != total:
            return
        self.last = now
        fields = {"completed": completed, **({"total": total} if total else {})}
        self.app.call_from_thread(self.app.set_work, **fields)

    def text(self, key: str, index: int, text: str) -> None:
        self.app.call_from_thread(self.app.show_text, key, index, text)


class EmolabApp(App):
    """`emolab tui [SESSION]`: sessions, layers, heads, steering, plugins and the step log."""

    CSS_PATH = "emolab.tcss"
    TITLE = "emolab"
    MODES = {
        "sessions": SessionsScreen,
        "layers": LayersScreen,
        "heads": HeadsScreen,
        "steer": SteerScreen,
        "plugins": PluginsScreen,
        "log": LogScreen,
        "compare": CompareScreen,
    }
    BINDINGS = [
        Binding("1", "switch_mode('sessions')", "sessions", show=False),
        Binding("2", "switch_mode('layers')", "layers", show=False),
        Binding("3", "switch_mode('heads')", "heads", show=False),
        Binding("4", "switch_mode('steer')", "steer", show=False),
        Binding("5", "switch_mode('plugins')", "plugins", show=False),
        Binding("6", "switch_mode('log')", "log", show=False),
        Binding("7", "switch_mode('compare')", "compare", show=False),
        Binding("question_mark", "help", "help"),
        Binding("escape", "cancel_work", "cancel", show=False),
        Binding("q", "quit", "quit"),
    ]

    def __init__(
        self,
        session: str | Path | None = None,
        root: str | Path | None = None,
        model: str = "smollm2-135m",
    ) -> None:
        super().__init__()
        self.root = Path(root or os.environ.get("EMOLAB_SESSIONS", "sessions"))
        self.default_model = model
        self.session: Session | None = Session.open(session) if session else None
        self.progress: UIProgress | None = None
        self.work: dict[str, Any] = {}

    def on_mount(self) -> None:
        self.switch_mode("layers" if self.session else "sessions")

    # -- session -------------------------------------------------------------------
    def open_session(self, path: str | Path, mode: str = "layers") -> None:
        try:
            self.session = Session.open(path)
        except EmolabError as exc:
            self.set_work(running=False, message=f"error: {exc}", level="error")
            return
        self.set_work(running=False, message=f"opened {self.session.name}", level="info")
        self.switch_mode(mode)

    # -- work ----------------------------------------------------------------------
    def show_text(self, key: str, index: int, text: str) -> None:
        """Streamed partial output, for the screen that shows it (UI thread only)."""
        show = getattr(self.screen, "show_text", None)
        if show is not None:
            show(key, index, text)

    def set_work(self, **fields: Any) -> None:
        """Update the work state and every mounted work bar (UI thread only)."""
        self.work.update(fields)
        for bar in self.screen.query(WorkStatus):
            bar.show(self.work)

    def start_work(
        self, title: str, job: Callable[[Progress], Any], done: Callable[[Any], None] | None = None
    ) -> bool:
        """Run `job(progress)` in a thread worker; `done(result)` runs on the UI thread."""
        if self.progress is not None:
            self.set_work(
                message=f"busy with {self.work.get('title')}: esc cancels it", level="warning"
            )
            return False
        self.progress = UIProgress(self)
        self.work = {
            "running": True,
            "title": title,
            "phase": "starting",
            "completed": 0,
            "total": 0,
        }
        self.set_work()
        self._run_job(title, job, done, self.progress)
        return True

    @work(thread=True, group="lab", exit_on_error=False)
    def _run_job(
        self, title: str, job: Callable, done: Callable | None, progress: UIProgress
    ) -> None:
        try:
            result = job(progress)
        except Cancelled:
            self.call_from_thread(self._finish, f"{title}: cancelled", "warning", None, None)
        except EmolabError as exc:
            self.call_from_thread(self._finish, f"{title}: {exc}", "error", None, None)
        except Exception as exc:  # a bug: keep the UI alive, say what happened
            self.log.error(traceback.format_exc())
            msg = f"{title} failed: {type(exc).__name__}: {exc}"
            self.call_from_thread(self._finish, msg, "error", None, None)
        else:
            self.call_from_thread(self._finish, f"{title}: done", "info", done, result)

    def _finish(self, message: str, level: str, done: Callable | None, result: Any) -> None:
        self.progress = None
        self.work = {
            "running": False,
            "title": self.work.get("title"),
            "message": message,
            "level": level,
        }
        if done is not None:
            done(result)
        self.set_work()

    def action_cancel_work(self) -> None:
        if self.progress is not None:
            self.progress.cancel()
            self.set_work(phase="cancelling at the next batch")

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        if self.progress is not None:
            self.progress.cancel()
        self.exit()
