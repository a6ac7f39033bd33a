"""The log screen: the session's steps as logged, with each step's params and outputs, and
the key that writes the whole log as one HTML page (`emolab report`)."""

from __future__ import annotations

import json

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from ..widgets import fmt
from .base import LabScreen


def metric_line(metrics: dict, room: int) -> str:
    """As many whole `name=value` pairs as fit `room` columns (plain metrics before the
    per-emotion ones), then how many more there are."""
    keys = sorted(metrics, key=lambda k: ("/" in k, k))
    pairs = [f"{k}={metrics[k]:.3g}" for k in keys if isinstance(metrics[k], (int, float))]
    shown: list[str] = []
    for pair in pairs:
        rest = len(metrics) - len(shown) - 1
        tail = f" +{rest}" if rest else ""
        if len(" ".join([*shown, pair]) + tail) > room:
            break
        shown.append(pair)
    more = len(metrics) - len(shown)
    return " ".join(shown) + (f" +{more}" if more else "")


class LogScreen(LabScreen):
    MODE = "log"
    BINDINGS = [Binding("w", "write_report", "write HTML report")]

    def body(self) -> ComposeResult:
        yield Static(id="log-title", classes="title")
        yield DataTable(id="log", cursor_type="row")
        yield Static(id="event-detail", classes="detail")

    def on_mount(self) -> None:
        self.query_one("#log", DataTable).add_columns("seq", "step", "status", "seconds", "metrics")

    def events(self) -> list[dict]:
        session = self.lab.session
        return [e for e in session.events() if e.get("status") != "started"] if session else []

    def refresh_data(self) -> None:
        session = self.lab.session
        table = self.query_one("#log", DataTable)
        table.clear()
        events = self.events()
        self.query_one("#log-title", Static).update(
            "no session open: press 1 to choose one"
            if session is None
            else f"step log of {session.name} · {session.status()} · {len(events)} steps"
        )
        room = max(40, (self.size.width or 80) - 38)
        for ev in events:
            status = Text(ev["status"], style="green" if ev["status"] == "ok" else "red")
            table.add_row(
                str(ev["seq"]),
                ev["kind"],
                status,
                fmt(ev.get("duration_s"), ".1f"),
                metric_line(ev.get("metrics", {}), room),
            )
        self.show(len(events) - 1 if events else 0)
        if events:
            table.move_cursor(row=len(events) - 1)

    def show(self, index: int) -> None:
        events = self.events()
        detail = self.query_one("#event-detail", Static)
        if not 0 <= index < len(events):
            detail.update("")
            return
        ev = events[index]
        params = {k: v for k, v in ev.get("params", {}).items() if v is not None}
        text = Text(f"#{ev['seq']} {ev['kind']}  ", style="bold")
        text.append(json.dumps(params, default=str)[:300] + "\n")
        if ev.get("error"):
            text.append(f"error: {ev['error']}\n", style="red")
        if ev.get("outputs"):
            text.append("outputs: " + ", ".join(map(str, ev["outputs"])), style="dim")
        detail.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show(event.cursor_row)

    def action_write_report(self) -> None:
        """SESSION/report.html, as `emolab report SESSION` writes it (in a worker: the
        figures take a moment)."""
        session = self.need_session()
        if session is None:
            return

        def job(progress):
            from ... import html_report

            progress.task("render the HTML report", 1)
            path = html_report.write(session)
            progress.update(1)
            return path

        def done(path) -> None:
            self.lab.set_work(message=f"wrote {path}", level="info")

        self.lab.start_work("report", job, done)
