"""Widgets the screens share: the nav bar, the work bar, a per-layer bar chart, a layer x head
heatmap and a cosine matrix. They only draw what they are given; the data come from the
steps' artifacts, which the screens find through `emolab.results`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Input, Static

EIGHTHS = " ▁▂▃▄▅▆▇█"
TABS = (
    ("1", "sessions"),
    ("2", "layers"),
    ("3", "heads"),
    ("4", "steer"),
    ("5", "plugins"),
    ("6", "log"),
    ("7", "compare"),
)


def fmt(x: Any, spec: str = ".2f") -> str:
    """A number for a table cell; '-' for anything missing or not finite."""
    return "-" if not isinstance(x, (int, float)) or not math.isfinite(x) else format(x, spec)


def printable(text: str) -> str:
    """Model output with control and unprintable characters shown as '·' (random models
    emit any byte; a terminal must never receive them raw)."""
    return "".join(c if c.isprintable() or c == "\n" else "·" for c in text)


def middle_cut(name: str, width: int) -> str:
    """`smollm2-135m-20261201-134136` -> `smollm2…134136`: both ends stay readable."""
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "…" + name[len(name) - (width - 1 - head) :]


class SteadyInput(Input):
    """An input whose cursor does not blink: calmer over a slow SSH link, and a screen
    snapshot never catches it half-way."""

    def on_mount(self) -> None:
        self.cursor_blink = False


class NavBar(Static):
    """The screen tabs (keys 1-7) and the open session's name."""

    DEFAULT_CSS = "NavBar { height: 1; background: $panel; }"

    def show(self, mode: str, session_name: str | None) -> None:
        text = Text()
        for key, name in TABS:
            style = "bold reverse" if name == mode else ""
            text.append(f" {key} {name}", style=style)
        text.append(" │ ", style="dim")
        room = max(12, (self.size.width or 80) - len(text.plain) - 1)
        text.append(middle_cut(session_name or "no session", room), "bold cyan")
        self.update(text)


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
    """A layer x head matrix as coloured cells; arrows move the cursor, page keys scroll a
    page of layers, and the rows follow the cursor, so every layer of a deep model is
    reachable in a short terminal. The cursor is reported with `CursorMoved` so the screen
    can show the value and the head's details."""

    DEFAULT_CSS = "Heatmap { height: 1fr; width: 1fr; }"
    BINDINGS = [
        Binding("up", "move(-1, 0)", "up", show=False),
        Binding("down", "move(1, 0)", "down", show=False),
        Binding("left", "move(0, -1)", "left", show=False),
        Binding("right", "move(0, 1)", "right", show=False),
        Binding("pageup", "page(-1)", "page up", show=False),
        Binding("pagedown", "page(1)", "page down", show=False),
        Binding("home", "move(-1000000, 0)", "first layer", show=False),
        Binding("end", "move(1000000, 0)", "last layer", show=False),
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
        """Show `matrix`; the cursor stays where it was when the shape is the same (another
        map of the same heads), else it goes back to L0 H0."""
        matrix = np.asarray(matrix, dtype=float)
        if matrix.shape != self.matrix.shape:
            self.cursor, self.top = (0, 0), 0
        self.matrix = matrix
        self.refresh()
        self._report()

    @property
    def page_rows(self) -> int:
        """Layer rows on screen: all but the head-number line and the scroll line."""
        return max(1, self.size.height - 2)

    def visible(self) -> range:
        """The layers on screen, scrolled so the cursor's layer is one of them."""
        n_layers = self.matrix.shape[0] if self.matrix.size else 0
        rows, layer = self.page_rows, self.cursor[0]
        if layer < self.top:
            self.top = layer
        elif layer >= self.top + rows:
            self.top = layer - rows + 1
        self.top = max(0, min(self.top, max(0, n_layers - rows)))
        return range(self.top, min(n_layers, self.top + rows))

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

    def action_page(self, direction: int) -> None:
        self.action_move(direction * self.page_rows, 0)

    def render(self) -> Text:
        if not self.matrix.size:
            return Text("no data", style="dim")
        n_layers, n_heads = self.matrix.shape
        cell = 3 if 4 + 3 * n_heads <= self.size.width else 2
        layer, head = self.cursor
        shown = self.visible()
        finite = self.matrix[np.isfinite(self.matrix)]
        scale = float(np.abs(finite).max()) if finite.size else 0.0
        out = Text("    ", style="dim")
        out.append(
            "".join(f"{h:>{cell}}" for h in range(n_heads))[: self.size.width - 4], style="dim"
        )
        for li in shown:
            out.append(f"\nL{li:<3}", style="bold" if li == layer else "dim")
            for hi in range(n_heads):
                v = float(self.matrix[li, hi])
                here = (li, hi) == (layer, head)
                style = Style(bgcolor=_diverging(v, scale), color="white", bold=True)
                out.append("[]".center(cell) if here else " " * cell, style=style)
        if len(shown) < n_layers:
            more = f"L{shown.start}-{shown.stop - 1} of {n_layers}"
            arrows = ("↑" if shown.start else " ") + ("↓" if shown.stop < n_layers else " ")
            out.append(f"\n{arrows} {more} · pgup pgdn", style="dim")
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
