"""The heads screen: the layer x head map the heads step wrote for one emotion, and for the
head under the cursor what the step measured about it.

The map and everything in the detail pane come from the JSON the latest `heads` step for
the emotion lists in its log event (`results.latest`): one matrix per method (`maps`),
the exact check of the top heads (`verify`), and where each head's last-token attention
goes (`attention`: its share on the comma and clause-end positions, and that share over
uniform attention).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from ... import results
from ..widgets import Heatmap
from .base import RESULT_BINDINGS, LabScreen, read_output

SUMMARY_MARKS = ", . ; : ! ?"


# effects that differ by less than this share a rank: the pane prints 4 decimals, and two
# heads that tie there can swap order on another machine's float rounding
RANK_TOL = 5e-5


def rank_of(matrix: np.ndarray, layer: int, head: int) -> tuple[int, int]:
    """(rank by |effect|, heads ranked): NaN heads (above the readout) are not ranked;
    heads tied within RANK_TOL share the best rank among them."""
    flat = np.abs(matrix).ravel()
    finite = np.isfinite(flat)
    value = flat[layer * matrix.shape[1] + head]
    if not np.isfinite(value):
        return 0, int(finite.sum())
    return int((flat[finite] > value + RANK_TOL).sum()) + 1, int(finite.sum())


def head_lines(result: dict, method: str, layer: int, head: int) -> Text:
    """What the heads step measured about one head, for the detail pane (28 columns)."""
    out = Text(f"L{layer} H{head}\n", style="bold")
    for name, entry in result.get("maps", {}).items():
        m = np.asarray(entry["matrix"], dtype=float)
        style = "bold" if name == method else ""
        if not np.isfinite(m[layer, head]):
            out.append(f"{name}: above readout\n", style=style)
            continue
        rank, n = rank_of(m, layer, head)
        out.append(f"{name} {m[layer, head]:+.4f}\n", style=style)
        out.append(f"  rank {rank}/{n} by |effect|\n", style="dim")
    check = result.get("verify") or {}
    for i, unit in enumerate(check.get("heads", [])):
        if (unit["layer"], unit["unit"]) == (layer, head):
            out.append(f"exact {check['exact'][i]:+.4f} (verified)\n")
    att: dict[str, Any] = result.get("attention") or {}
    if att.get("texts_with_summary_tokens"):
        mass, ratio = att["mass"][layer][head], att["ratio"][layer][head]
        out.append("last token's attention on\n", style="dim")
        out.append(f"{SUMMARY_MARKS} positions:\n", style="dim")
        out.append(f"  {100 * mass:.0f}% ({ratio:.1f}x uniform)\n")
        if (layer, head) in {(f["layer"], f["head"]) for f in att.get("flagged", [])}:
            out.append("  a summary head (flagged)\n", style="yellow")
        out.append(f"  over {att['texts_with_summary_tokens']} texts", style="dim")
    elif att:
        out.append("no text had comma or\nclause-end tokens", style="dim")
    return out


class HeadsScreen(LabScreen):
    MODE = "heads"
    BINDINGS = RESULT_BINDINGS

    def __init__(self) -> None:
        super().__init__()
        self.emotion_i = 0
        self.method_i = 0
        self.result: dict = {}
        self.step = 0

    def body(self) -> ComposeResult:
        yield Static(id="heads-title", classes="title")
        with Horizontal(id="heads-main"):
            yield Heatmap(id="heatmap")
            yield Static(id="head-detail")

    @property
    def methods(self) -> list[str]:
        """The maps of the shown step, the exact one (ablation) first when both exist."""
        maps = self.result.get("maps", {})
        return sorted(maps, key=lambda m: (m != "ablation", m))

    def refresh_data(self) -> None:
        session = self.lab.session
        emotions = self.session_emotions()
        self.result = {}
        if session is None or not emotions:
            self.show_empty("this session has no vectors yet")
            return
        self.emotion_i %= len(emotions)
        emotion = emotions[self.emotion_i]
        found = results.latest(session, "heads", suffix=".json", emotion=emotion)
        head = Text.assemble(("heads · ", "bold"), (emotion, "bold cyan"), (" (e)", "dim"))
        if found is None:
            self.show_empty(head + Text(f"\nno head map for {emotion}: press c to compute"))
            return
        self.result, self.step = read_output(session, found), found.seq
        self.method_i %= len(self.methods)
        method = self.methods[self.method_i]
        matrix = np.asarray(self.result["maps"][method]["matrix"], dtype=float)
        self.show_title(
            head
            + Text.assemble(
                (" · ", "dim"),
                (method, "bold cyan"),
                (" (m) · ", "dim"),
                f"{matrix.shape[0]}x{matrix.shape[1]} · "
                f"{self.result.get('metric', '')} at L{self.result.get('layer', '?')} · "
                f"step #{self.step}",
            )
        )
        heatmap = self.query_one(Heatmap)
        heatmap.set_matrix(matrix)
        heatmap.focus()

    def on_heatmap_cursor_moved(self, event: Heatmap.CursorMoved) -> None:
        if not self.result:
            return
        detail = head_lines(self.result, self.methods[self.method_i], event.layer, event.head)
        self.query_one("#head-detail", Static).update(detail)

    def action_emotion(self) -> None:
        emotions = self.session_emotions()
        if emotions:
            self.emotion_i = (self.emotion_i + 1) % len(emotions)
            self.refresh_data()

    def action_method(self) -> None:
        if len(self.methods) > 1:
            self.method_i = (self.method_i + 1) % len(self.methods)
            self.refresh_data()

    def action_compute(self) -> None:
        session = self.need_session()
        emotions = self.session_emotions()
        if session is None or not emotions:
            return
        emotion = emotions[self.emotion_i]

        def job(progress):
            from ...steps import heads

            return heads.run(session, {"emotion": emotion}, progress)

        self.lab.start_work(f"heads {emotion}", job, lambda _: self.refresh_data())
