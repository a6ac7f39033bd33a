"""The compare screen: `emolab compare` results of the open (base) session."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ... import results
from ..widgets import fmt
from .base import LabScreen, read_output


class CompareScreen(LabScreen):
    """`emolab compare` results of the open (base) session: steering sensitivity per
    emotion over training steps as bars, with the geometry beside it."""

    MODE = "compare"
    BAR = 24

    def __init__(self) -> None:
        super().__init__()
        self.data: dict | None = None

    def body(self) -> ComposeResult:
        yield Static(id="compare-title", classes="title")
        yield DataTable(id="compare", cursor_type="row")
        yield Static(id="compare-chart")

    def refresh_data(self) -> None:
        session = self.lab.session
        title = self.query_one("#compare-title", Static)
        table = self.query_one("#compare", DataTable)
        table.clear(columns=True)
        self.data = None
        found = results.latest(session, "compare", suffix=".json") if session else None
        if found is None:
            title.update(
                "no checkpoint comparison in this session: "
                "emolab compare BASE_SESSION CKPT_SESSION... writes one"
            )
            self.query_one("#compare-chart", Static).update("")
            return
        self.data = read_output(session, found)
        summary = self.data["summary"]
        title.update(
            f"steering sensitivity at L{self.data['layer']} over {len(summary)} checkpoints "
            "(label-logit rise per alpha, own vector)"
        )
        table.add_columns("emotion", *[r["checkpoint"][:9] for r in summary], "verdict")
        for e in self.data["emotions"]:
            cells = [fmt(self.slope(e, r["step"], "own"), "+.2f") for r in summary]
            table.add_row(e, *cells, self.data["verdicts"][e]["verdict"])
        self.show(0)

    def slope(self, emotion: str, step: int, vector: str) -> float:
        assert self.data is not None
        return next(
            (
                r["slope"]
                for r in self.data["sensitivity"]
                if r["emotion"] == emotion and r["step"] == step and r["vector"] == vector
            ),
            float("nan"),
        )

    def show(self, index: int) -> None:
        chart = self.query_one("#compare-chart", Static)
        if self.data is None or not 0 <= index < len(self.data["emotions"]):
            chart.update("")
            return
        emotion = self.data["emotions"][index]
        summary = self.data["summary"]
        values = [
            abs(v)
            for r in summary
            for v in (self.slope(emotion, r["step"], "own"), self.slope(emotion, r["step"], "base"))
            if math.isfinite(v)
        ]
        top = max(values, default=0.0) or 1.0
        text = Text(f"{emotion}", style="bold")
        text.append("  own vector ", style="dim")
        text.append("█", style="green")
        text.append("  base vector ", style="dim")
        text.append("█\n", style="cyan")
        for r in summary:
            for vector, style in (("own", "green"), ("base", "cyan")):
                v = self.slope(emotion, r["step"], vector)
                if vector == "base" and not r["step"]:
                    continue  # the base model's own vector is the base vector
                n = round(abs(v) / top * self.BAR) if math.isfinite(v) else 0
                label = r["checkpoint"][:12] if vector == "own" else ""
                text.append(f"{label:<12} {fmt(v, '+6.2f'):>6} ")
                text.append("█" * n if v >= 0 else "░" * n, style=style)
                text.append("\n")
        text.append(
            "geometry: "
            + " · ".join(
                f"{r['checkpoint'][:9]} cos {fmt(r['cos_base'])} probe {fmt(r['probe_acc'])}"
                for r in summary
            ),
            style="dim",
        )
        chart.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show(event.cursor_row)
