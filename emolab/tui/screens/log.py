"""The log screen: the session's steps as logged, with each step's params and outputs."""

from __future__ import annotations

import json

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ..widgets import fmt
from .base import LabScreen


class LogScreen(LabScreen):
    MODE = "log"

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
        for ev in events:
            metrics = ev.get("metrics", {})
            first = sorted(metrics, key=lambda k: ("/" in k, k))[:2]
            shown = " ".join(
                f"{k}={metrics[k]:.3g}" for k in first if isinstance(metrics[k], (int, float))
            )
            more = f" +{len(metrics) - 2}" if len(metrics) > 2 else ""
            status = Text(ev["status"], style="green" if ev["status"] == "ok" else "red")
            table.add_row(
                str(ev["seq"]),
                ev["kind"],
                status,
                fmt(ev.get("duration_s"), ".1f"),
                (shown + more)[:40],
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
