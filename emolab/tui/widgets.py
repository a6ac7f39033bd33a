"""Widgets that draw step results: a per-layer bar chart, a layer x head heatmap, a cosine
matrix and the work bar. They only draw what they are given; the data come from the steps'
artifacts, read by the screens."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

EIGHTHS = " ▁▂▃▄▅▆▇█"


def _diverging(value: float, scale: float) -> Color:
    """Blue for negative, red for positive, dark grey near zero (readable on dark themes).
    Twenty steps a side: the last float digit of a value never changes a colour."""
    if not math.isfinite(value) or scale <= 0:
        return Color.from_rgb(40, 40, 40)
    t = round(max(-1.0, min(1.0, value / scale)) * 20) / 20
    base = 40
    if t >= 0:
        return Color.from_rgb(int(base + (220 - base) * t), base, base)
    return Color.from_rgb(base, base + int(60 * -t), int(base + (220 - base) * -t))


class LayerChart(Widget):
    """Vertical bars of one value per layer, with a baseline tick per layer and the cursor
    layer highlighted. Fits 30 layers in 40 columns, so it works at 80x24."""

    DEFAULT_CSS = "LayerChart { height: 9; }"

    cursor: reactive[int] = reactive(0)

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.layer_ids: list[int] = []
        self.chart_values: list[float] = []
        self.chart_baselines: list[float] = []

    def set_data(
        self, layers: Sequence[int], values: Sequence[float], baselines: Sequence[float]
    ) -> None:
        self.layer_ids, self.chart_values, self.chart_baselines = (
            list(layers),
            list(values),
            list(baselines),
        )
        self.refresh()

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        if not self.layer_ids or width < 8 or height < 3:
            return Text("no data", style="dim")
        finite = [v for v in self.chart_values + self.chart_baselines if math.isfinite(v)]
        lo = math.floor(min(finite + [0.5]) * 10) / 10
        hi = 1.0
        rows = height - 1
        n = len(self.layer_ids)
        col = max(1, min(3, (width - 5) // n))
        out = Text()
        for r in range(rows - 1, -1, -1):
            label = f"{hi:.1f} " if r == rows - 1 else f"{lo:.1f} " if r == 0 else "    "
            out.append(label, style="dim")
            for i in range(n):
                v, b = self.chart_values[i], self.chart_baselines[i]
                level = (v - lo) / (hi - lo) * rows if math.isfinite(v) else 0.0
                fill = max(0.0, min(1.0, level - r))
                base_row = int((b - lo) / (hi - lo) * rows) if math.isfinite(b) else -1
                good = math.isfinite(v) and math.isfinite(b) and v > b + 0.05
                colour = "green" if good else "grey62"
                if i == self.cursor:
                    colour = "bold yellow"
                ch = EIGHTHS[round(fill * 8)]
                if base_row == r and fill < 1.0:
                    out.append("─" * col, style="magenta")
                else:
                    out.append(ch * col, style=colour)
            out.append("\n")
        ticks = [" "] * (col * n)
        step = max(1, math.ceil(3 / col))
        for i, layer in enumerate(self.layer_ids):
            if i % step == 0:
                s = str(layer)
                if i * col + len(s) <= len(ticks):
                    ticks[i * col : i * col + len(s)] = list(s)
        out.append("    " + "".join(ticks), style="dim")
        return out


def _short(v: float) -> str:
    """+0.12 -> ' +.12': five columns a cell, so a 6x6 matrix fits beside a table at 80."""
    if not math.isfinite(v):
        return "    -"
    return (f"{v:+.1f}" if abs(v) >= 0.995 else f"{v:+.2f}".replace("0.", ".", 1)).rjust(5)


class CosineMatrix(Static):
    """An emotion x emotion cosine matrix with coloured cells."""

    def show(self, title: str, names: Sequence[str], matrix: Sequence[Sequence[float]]) -> None:
        out = Text(title + "\n", style="bold")
        out.append("      " + "".join(f"{n[:4]:>5}" for n in names) + "\n", style="dim")
        for name, row in zip(names, matrix, strict=True):
            out.append(f"{name[:5]:<6}", style="dim")
            for v in row:
                out.append(_short(v), style=Style(bgcolor=_diverging(v, 1.0)))
            out.append("\n")
        self.update(out)


class Heatmap(Widget, can_focus=True):
    """A layer x head matrix as coloured cells; arrows move the cursor, which is reported
    with `CursorMoved` so the screen can show the value and the head's details."""

    DEFAULT_CSS = "Heatmap { height: 1fr; width: 1fr; }"
    BINDINGS = [
        Binding("up", "move(-1, 0)", "up", show=False),
        Binding("down", "move(1, 0)", "down", show=False),
        Binding("left", "move(0, -1)", "left", show=False),
        Binding("right", "move(0, 1)", "right", show=False),
    ]

    class CursorMoved(Message):
        def __init__(self, layer: int, head: int, value: float) -> None:
            super().__init__()
            self.layer, self.head, self.value = layer, head, value

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.matrix = np.zeros((0, 0))
        self.cursor = (0, 0)
        self.top = 0

    def set_matrix(self, matrix: np.ndarray) -> None:
        self.matrix = np.asarray(matrix, dtype=float)
        self.cursor, self.top = (0, 0), 0
        self.refresh()
        self._report()

    def _report(self) -> None:
        if self.matrix.size:
            layer, head = self.cursor
            self.post_message(self.CursorMoved(layer, head, float(self.matrix[layer, head])))

    def action_move(self, dl: int, dh: int) -> None:
        if not self.matrix.size:
            return
        n_layers, n_heads = self.matrix.shape
        layer = max(0, min(n_layers - 1, self.cursor[0] + dl))
        head = max(0, min(n_heads - 1, self.cursor[1] + dh))
        self.cursor = (layer, head)
        self.refresh()
        self._report()

    def render(self) -> Text:
        if not self.matrix.size:
            return Text("no data", style="dim")
        n_layers, n_heads = self.matrix.shape
        cell = 3 if 4 + 3 * n_heads <= self.size.width else 2
        rows = max(1, self.size.height - 1)
        layer, head = self.cursor
        if layer < self.top:
            self.top = layer
        elif layer >= self.top + rows:
            self.top = layer - rows + 1
        finite = self.matrix[np.isfinite(self.matrix)]
        scale = float(np.abs(finite).max()) if finite.size else 0.0
        out = Text("    ", style="dim")
        out.append(
            "".join(f"{h:>{cell}}" for h in range(n_heads))[: self.size.width - 4], style="dim"
        )
        for li in range(self.top, min(n_layers, self.top + rows)):
            out.append(f"\nL{li:<3}", style="bold" if li == layer else "dim")
            for hi in range(n_heads):
                v = float(self.matrix[li, hi])
                here = (li, hi) == (layer, head)
                style = Style(bgcolor=_diverging(v, scale), color="white", bold=True)
                out.append("[]".center(cell) if here else " " * cell, style=style)
        return out


class WorkStatus(Static):
    """One line: the running work with a text bar and `esc cancel`, or the last outcome."""

    DEFAULT_CSS = "WorkStatus { height: 1; }"

    def show(self, state: dict) -> None:
        text = Text()
        if state.get("running"):
            done, total = state.get("completed", 0), state.get("total", 0)
            text.append("▶ ", style="bold yellow")
            text.append(state.get("title", ""), style="bold")
            text.append(f" · {state.get('phase', '')} ")
            if total:
                width = 10
                filled = int(width * min(done, total) / total)
                text.append("█" * filled + "░" * (width - filled), style="yellow")
                text.append(f" {done}/{total}")
            text.append("  esc cancel", style="dim")
        elif state.get("message"):
            style = {"error": "bold red", "warning": "yellow"}.get(state.get("level", ""), "green")
            text.append(state["message"], style=style)
        else:
            text.append("idle", style="dim")
        self.update(text)
