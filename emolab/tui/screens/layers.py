"""The layers screen: held-out accuracy per layer of one emotion and method, its chance
levels as a chart, and the cosine between emotion directions at the cursor layer."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from ... import results
from ...errors import EmolabError
from ..widgets import CosineMatrix, LayerChart, fmt
from .base import RESULT_BINDINGS, LabScreen, read_output


class LayersScreen(LabScreen):
    MODE = "layers"
    BINDINGS = RESULT_BINDINGS

    def __init__(self) -> None:
        super().__init__()
        self.data: dict | None = None
        self.dataset = ""
        self.emotion_i = 0
        self.method_i = 0

    def body(self) -> ComposeResult:
        yield Static(id="layers-title", classes="title")
        with Horizontal(id="layers-main"):
            yield DataTable(id="layer-table", cursor_type="row")
            with Vertical(id="layers-side"):
                yield LayerChart(id="layer-chart")
                yield Static(id="layer-peak")
                yield CosineMatrix(id="cosines")

    def on_mount(self) -> None:
        self.query_one("#layer-table", DataTable).add_columns(
            "L", "acc", "rand", "shuf", "auc", "|v|", "|h|"
        )

    @property
    def emotions(self) -> list[str]:
        return list(dict.fromkeys(r["emotion"] for r in self.data["rows"])) if self.data else []

    @property
    def methods(self) -> list[str]:
        return list(self.data["summary"]) if self.data else []

    def refresh_data(self) -> None:
        session = self.lab.session
        self.data = None
        found = results.latest(session, "layers", suffix=".json") if session else None
        if found is not None:
            try:
                self.data = read_output(session, found)
                self.dataset = found.params.get("dataset") or ""
            except EmolabError as exc:
                self.lab.set_work(running=False, message=str(exc), level="error")
        if self.data is None:
            self.show_empty("no layer analysis yet: press c to compute it")
            return
        self.emotion_i %= len(self.emotions)
        self.method_i %= len(self.methods)
        self.fill()

    def rows(self) -> list[dict]:
        emotion, method = self.emotions[self.emotion_i], self.methods[self.method_i]
        rows = [r for r in self.data["rows"] if r["method"] == method and r["emotion"] == emotion]
        return sorted(rows, key=lambda r: r["layer"])

    def fill(self) -> None:
        emotion, method = self.emotions[self.emotion_i], self.methods[self.method_i]
        summary = self.data["summary"][method]
        self.show_title(
            Text.assemble(
                ("held-out accuracy · ", "bold"),
                ("emotion ", "dim"),
                (emotion, "bold cyan"),
                (" (e) · method ", "dim"),
                (method, "bold cyan"),
                (" (m)", "dim"),
                (f" · on {self.dataset}" if self.dataset else "", "dim"),
            )
        )
        table = self.query_one("#layer-table", DataTable)
        row_before = table.cursor_row
        table.clear()
        rows = self.rows()
        for r in rows:
            style = "bold green" if r["layer"] == summary["peak_layer"] else ""
            cells = (
                str(r["layer"]),
                fmt(r["acc"]),
                fmt(r["acc_random"]),
                fmt(r["acc_shuffled"]),
                fmt(r["auc"]),
                fmt(r["vector_norm"], ".1f"),
                fmt(r["resid_norm"], ".3g"),
            )
            table.add_row(*[Text(c, style=style, justify="right") for c in cells])
        self.query_one(LayerChart).set_data(
            [r["layer"] for r in rows],
            [r["acc"] for r in rows],
            [
                max(r["acc_random"], r["acc_shuffled"])
                if math.isfinite(r["acc_shuffled"])
                else r["acc_random"]
                for r in rows
            ],
        )
        chosen = summary.get("chosen_on", "test")
        self.query_one("#layer-peak", Static).update(
            f"peak L{summary['peak_layer']} ({chosen}) · test {summary['peak_acc']:.2f} · "
            f"7w {summary['peak_acc7']:.2f}"
        )
        if rows:
            table.move_cursor(row=min(max(row_before, 0), len(rows) - 1))
            self.show_layer(min(max(row_before, 0), len(rows) - 1))

    def show_layer(self, index: int) -> None:
        rows = self.rows()
        if not 0 <= index < len(rows):
            return
        layer = rows[index]["layer"]
        method = self.methods[self.method_i]
        self.query_one(LayerChart).cursor = index
        cos = self.data["cosines"].get(method, {}).get(str(layer))
        matrix = self.query_one(CosineMatrix)
        if cos:
            matrix.show(f"cosine between emotions, L{layer}", self.emotions, cos["direction"])
        else:
            matrix.update("")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.data is not None:
            self.show_layer(event.cursor_row)

    def action_emotion(self) -> None:
        if self.data:
            self.emotion_i = (self.emotion_i + 1) % len(self.emotions)
            self.fill()

    def action_method(self) -> None:
        if self.data:
            self.method_i = (self.method_i + 1) % len(self.methods)
            self.fill()

    def action_compute(self) -> None:
        session = self.need_session()
        if session is None:
            return

        def job(progress):
            from ...steps import layers

            return layers.run(session, {}, progress)

        self.lab.start_work("layers", job, lambda _: self.refresh_data())
