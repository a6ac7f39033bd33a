"""What every screen shares: nav bar, body, work bar and footer, and the open session.

Screens read what the steps wrote (manifest, log, and the artifacts each logged step lists
as its outputs, found through `emolab.results`) and start steps through `app.start_work`;
they hold no experiment logic of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from ... import results
from ...session import Session
from ..widgets import NavBar, WorkStatus

if TYPE_CHECKING:
    from ..app import EmolabApp


# keys of a screen that shows one emotion's result by one method, computed on request
RESULT_BINDINGS = [
    Binding("e", "emotion", "emotion"),
    Binding("m", "method", "method"),
    Binding("c", "compute", "compute"),
]


def session_emotions(session: Session | None) -> list[str]:
    """The session's emotions, in extraction order (none before an extraction)."""
    if session is None or not session.methods():
        return []
    return list(session.load_vectors()[1].emotions)


class LabScreen(Screen):
    """Nav bar, body, work bar, footer; refreshes its data whenever it becomes current."""

    MODE = ""

    @property
    def lab(self) -> EmolabApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield NavBar()
        with Vertical(id="body"):
            yield from self.body()
        yield WorkStatus()
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    def on_screen_resume(self) -> None:
        session = self.lab.session
        self.query_one(NavBar).show(self.MODE, session.name if session else None)
        self.query_one(WorkStatus).show(self.lab.work)
        self.refresh_data()

    def refresh_data(self) -> None:
        """Re-read the session's results; each screen fills its widgets here."""

    def session_emotions(self) -> list[str]:
        return session_emotions(self.lab.session)

    def need_session(self) -> Session | None:
        if self.lab.session is None:
            self.lab.set_work(
                running=False, message="no session open: press 1 to choose one", level="warning"
            )
        return self.lab.session

    def no_session_text(self, what: str) -> str:
        """The title line of a screen with nothing to show yet."""
        return "no session open: press 1 to choose one" if self.lab.session is None else what

    def show_title(self, title: str | Text, main: bool = True) -> None:
        """Set the `#<MODE>-title` line and show or hide the `#<MODE>-main` pane below it:
        a screen whose result is missing shows only a title saying what to do."""
        self.query_one(f"#{self.MODE}-main").display = main
        self.query_one(f"#{self.MODE}-title", Static).update(title)

    def show_empty(self, what: str | Text) -> None:
        """Nothing to show: the pane hidden, the title saying why (no session, or `what`)."""
        self.show_title(self.no_session_text(what) if isinstance(what, str) else what, main=False)


def read_output(session: Session, output: results.Output):
    """The JSON a logged step wrote, as `Session.read_json` reads it (clear errors)."""
    return session.read_json(output.path.relative_to(session.artifact("")).as_posix())
