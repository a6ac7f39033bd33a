"""The seven screens and the help and new-extraction dialogs.

Screens read what the steps wrote (session manifest, log, artifacts) and start steps through
`app.start_work`; they hold no experiment logic of their own.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from .. import results
from ..errors import EmolabError
from ..session import Session
from .widgets import CosineMatrix, Heatmap, LayerChart, WorkStatus

if TYPE_CHECKING:
    from .app import EmolabApp

TABS = (
    ("1", "sessions"),
    ("2", "layers"),
    ("3", "heads"),
    ("4", "steer"),
    ("5", "plugins"),
    ("6", "log"),
    ("7", "compare"),
)


def _f(x: Any, fmt: str = ".2f") -> str:
    return "-" if not isinstance(x, (int, float)) or not math.isfinite(x) else format(x, fmt)


def printable(text: str) -> str:
    """Model output with control and unprintable characters shown as '·' (random models
    emit any byte; a terminal must never receive them raw)."""
    return "".join(c if c.isprintable() or c == "\n" else "·" for c in text)


class NavBar(Static):
    """The screen tabs (keys 1-6) and the open session."""

    DEFAULT_CSS = "NavBar { height: 1; background: $panel; }"

    def show(self, mode: str, session: Session | None) -> None:
        text = Text()
        for key, name in TABS:
            style = "bold reverse" if name == mode else ""
            text.append(f" {key} {name}", style=style)
        text.append(" │ ", style="dim")
        room = max(12, (self.size.width or 80) - len(text.plain) - 1)
        text.append(middle_cut(session.name if session else "no session", room), "bold cyan")
        self.update(text)


def middle_cut(name: str, width: int) -> str:
    """`smollm2-135m-20261201-134136` -> `smollm2…134136`: both ends stay readable."""
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "…" + name[len(name) - (width - 1 - head) :]


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
        self.query_one(NavBar).show(self.MODE, self.lab.session)
        self.query_one(WorkStatus).show(self.lab.work)
        self.refresh_data()

    def refresh_data(self) -> None:
        pass

    def session_emotions(self) -> list[str]:
        """The open session's emotions, in extraction order (none before an extraction)."""
        session = self.lab.session
        if session is None or not session.methods():
            return []
        meta = session.load_vectors()[1]
        return [e for e in meta.get("emotions", "").split(",") if e]

    def need_session(self) -> Session | None:
        if self.lab.session is None:
            self.lab.set_work(
                running=False, message="no session open: press 1 to choose one", level="warning"
            )
        return self.lab.session


# -- sessions ---------------------------------------------------------------------------
class SessionsScreen(LabScreen):
    MODE = "sessions"
    BINDINGS = [
        Binding("enter", "open", "open"),
        Binding("n", "new", "new extraction"),
        Binding("r", "replay", "replay"),
        Binding("f", "refresh", "refresh"),
    ]

    def body(self) -> ComposeResult:
        yield Static(id="sessions-title", classes="title")
        yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        yield Static(id="session-detail", classes="detail")

    def on_mount(self) -> None:
        table = self.query_one("#sessions", DataTable)
        table.add_columns("session", "model", "steps", "created", "status")

    def paths(self) -> list[Path]:
        root = self.lab.root
        found = sorted(p.parent for p in root.glob("*/manifest.json")) if root.is_dir() else []
        current = self.lab.session
        if current is not None and current.path.resolve() not in {p.resolve() for p in found}:
            found.insert(0, current.path)
        return found

    def refresh_data(self) -> None:
        table = self.query_one("#sessions", DataTable)
        table.clear()
        for path in self.paths():
            try:
                s = Session.open(path)
                steps = [e["kind"] for e in s.steps() if e["status"] == "ok"]
                created = s.manifest.get("created", "")[:16].replace("T", " ")
                row = (s.name, s.model_name, ",".join(steps) or "-", created, s.status())
            except EmolabError as exc:
                row = (path.name, "?", "-", "", Text(f"unreadable: {exc}", style="red"))
            table.add_row(*row, key=str(path))
        self.query_one("#sessions-title", Static).update(
            f"sessions in {self.lab.root}/ ({table.row_count})  enter open · n new · r replay"
            if table.row_count
            else f"no sessions in {self.lab.root}/ yet: press n to start an extraction"
        )

    def selected(self) -> Path | None:
        table = self.query_one("#sessions", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return Path(key.value)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        path = self.selected()
        detail = self.query_one("#session-detail", Static)
        if path is None:
            detail.update("")
            return
        try:
            s = Session.open(path)
            m = s.manifest["model"]
            detail.update(
                f"{s.name}: {m.get('name')} ({m.get('layers', '?')} layers, "
                f"d_model {m.get('d_model', '?')}, {m.get('device', 'cpu')}) · "
                f"methods {', '.join(s.methods()) or '-'}"
                + (" · replay" if s.manifest.get("replay_of") else "")
            )
        except EmolabError as exc:
            detail.update(Text(str(exc), style="red"))

    def action_open(self) -> None:
        path = self.selected()
        if path is not None:
            self.lab.open_session(path)

    def action_refresh(self) -> None:
        self.refresh_data()

    def action_new(self) -> None:
        self.app.push_screen(ExtractForm(self.lab.default_model), self._start_extract)

    def _start_extract(self, form: dict | None) -> None:
        if not form:
            return
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = self.lab.root / f"{form['model'].replace(':', '_').replace('/', '_')}-{stamp}"
        params = {k: form[k] for k in ("dataset", "emotions", "methods", "limit")}
        params["test_limit"] = max(params["limit"] // 2, 5)

        def job(progress):
            from ..steps import extract, layers
            from ..steps.common import new_session

            session = new_session(path, form["model"])
            extract.run(session, params, progress)
            layers.run(session, {}, progress)
            return session.path

        self.lab.start_work(f"extract {form['model']}", job, self.lab.open_session)

    def action_replay(self) -> None:
        path = self.selected()
        if path is None:
            return

        def job(progress):
            from ..steps.replay import replay

            return replay(path, progress=progress)

        def done(result) -> None:
            new, cmp = result
            bad = sum(not r["ok"] for r in cmp.rows)
            self.refresh_data()
            self.lab.set_work(
                message=f"replayed into {new.name}: {len(cmp.rows)} compared, "
                f"{'all match' if not bad else f'{bad} mismatch(es)'}",
                level="info" if not bad else "error",
            )

        self.lab.start_work(f"replay {path.name}", job, done)


class ExtractForm(ModalScreen[dict | None]):
    """Model, dataset, emotions, methods, limit -> the extract step's params."""

    BINDINGS = [Binding("escape", "dismiss_form", "cancel")]

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model

    def compose(self) -> ComposeResult:
        fields = (
            ("model", self.model),
            ("dataset", "goemotions-ekman"),
            ("emotions", "anger,disgust,fear,joy,sadness,surprise"),
            ("methods", "mean_diff"),
            ("limit", "60"),
        )
        with Vertical(id="form"):
            yield Label("new extraction (then layer analysis)", classes="title")
            for name, value in fields:
                with Horizontal(classes="field"):
                    yield Label(f"{name:>9} ")
                    yield Input(value, id=f"f-{name}")
            yield Static(id="form-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("start", variant="primary", id="start")
                yield Button("cancel", id="cancel")

    def value(self, name: str) -> str:
        return self.query_one(f"#f-{name}", Input).value.strip()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.submit()
        else:
            self.dismiss(None)

    def action_dismiss_form(self) -> None:
        self.dismiss(None)

    def submit(self) -> None:
        error = self.query_one("#form-error", Static)
        try:
            limit = int(self.value("limit"))
        except ValueError:
            error.update("limit must be a whole number")
            return
        if limit < 1:
            error.update("limit must be at least 1")
            return
        emotions = [e.strip() for e in self.value("emotions").split(",") if e.strip()]
        methods = [m.strip() for m in self.value("methods").split(",") if m.strip()]
        if not self.value("model") or not emotions or not methods:
            error.update("model, emotions and methods are required")
            return
        self.dismiss(
            {
                "model": self.value("model"),
                "dataset": self.value("dataset"),
                "emotions": emotions,
                "methods": methods,
                "limit": limit,
            }
        )


# -- layers -----------------------------------------------------------------------------
class LayersScreen(LabScreen):
    MODE = "layers"
    BINDINGS = [
        Binding("e", "emotion", "emotion"),
        Binding("m", "method", "method"),
        Binding("c", "compute", "compute"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.data: dict | None = None
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
        found = session and [
            o
            for o in results.outputs(session, "layers", suffix=".json")
            if not o.params.get("dataset") and o.path.is_file()
        ]
        if found:
            try:
                self.data = session.read_json(found[-1].path.name)
            except EmolabError as exc:
                self.lab.set_work(running=False, message=str(exc), level="error")
        self.query_one("#layers-main").display = self.data is not None
        if self.data is None:
            self.query_one("#layers-title", Static).update(
                "no session open: press 1 to choose one"
                if session is None
                else "no layer analysis yet: press c to compute it"
            )
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
        self.query_one("#layers-title", Static).update(
            Text.assemble(
                ("held-out accuracy · ", "bold"),
                ("emotion ", "dim"),
                (emotion, "bold cyan"),
                (" (e) · method ", "dim"),
                (method, "bold cyan"),
                (" (m)", "dim"),
            )
        )
        table = self.query_one("#layer-table", DataTable)
        row_before = table.cursor_row
        table.clear()
        rows = self.rows()
        for r in rows:
            style = "bold green" if r["layer"] == summary["peak_layer"] else ""
            table.add_row(
                *[
                    Text(c, style=style, justify="right")
                    for c in (
                        str(r["layer"]),
                        _f(r["acc"]),
                        _f(r["acc_random"]),
                        _f(r["acc_shuffled"]),
                        _f(r["auc"]),
                        _f(r["vector_norm"], ".1f"),
                        _f(r["resid_norm"], ".3g"),
                    )
                ]
            )
        chart = self.query_one(LayerChart)
        chart.set_data(
            [r["layer"] for r in rows],
            [r["acc"] for r in rows],
            [
                max(r["acc_random"], r["acc_shuffled"])
                if math.isfinite(r["acc_shuffled"])
                else r["acc_random"]
                for r in rows
            ],
        )
        self.query_one("#layer-peak", Static).update(
            f"peak L{summary['peak_layer']} · mean acc {summary['peak_acc']:.2f} · "
            f"7-way {summary['peak_acc7']:.2f}"
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
            from ..steps import layers

            return layers.run(session, {}, progress)

        self.lab.start_work("layers", job, lambda _: self.refresh_data())


# -- heads ------------------------------------------------------------------------------
def _as_matrix(obj: Any) -> np.ndarray | None:
    try:
        m = np.asarray(obj, dtype=float)
    except (TypeError, ValueError):
        return None
    return m if m.ndim == 2 and m.size else None


def find_head_map(session: Session, emotion: str) -> tuple[np.ndarray, dict] | None:
    """The newest layer x head map for `emotion` among the heads step's artifacts: a JSON
    object with a 2-D `matrix` (or `map`/`values`/`scores`), optionally keyed by emotion."""
    files = sorted(session.path.glob("artifacts/head*.json"), key=lambda p: p.stat().st_mtime)
    for path in reversed(files):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(obj, dict) and isinstance(obj.get(emotion), dict):
            obj = obj[emotion]
        elif isinstance(obj, dict) and obj.get("emotion") not in (None, emotion):
            continue
        if not isinstance(obj, dict):
            continue
        maps = obj.get("maps")
        if isinstance(maps, dict):  # the heads step: one matrix per method
            for method in ("ablation", "attribution", *maps):
                m = _as_matrix((maps.get(method) or {}).get("matrix"))
                if m is not None:
                    return m, {**obj, **maps[method], "method": method, "file": path.name}
        for key in ("matrix", "map", "values", "scores"):
            m = _as_matrix(obj.get(key))
            if m is not None:
                return m, {**obj, "file": path.name}
    return None


class HeadsScreen(LabScreen):
    MODE = "heads"
    BINDINGS = [
        Binding("e", "emotion", "emotion"),
        Binding("c", "compute", "compute"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.emotion_i = 0
        self.info: dict = {}

    def body(self) -> ComposeResult:
        yield Static(id="heads-title", classes="title")
        with Horizontal(id="heads-main"):
            yield Heatmap(id="heatmap")
            yield Static(id="head-detail")

    def refresh_data(self) -> None:
        session = self.lab.session
        emotions = self.session_emotions()
        title = self.query_one("#heads-title", Static)
        main = self.query_one("#heads-main")
        if session is None or not emotions:
            main.display = False
            title.update(
                "no session open: press 1 to choose one"
                if session is None
                else "this session has no vectors yet"
            )
            return
        self.emotion_i %= len(emotions)
        emotion = emotions[self.emotion_i]
        found = find_head_map(session, emotion)
        if found is None:
            main.display = False
            title.update(
                Text.assemble(
                    ("head map · emotion ", "dim"),
                    (emotion, "bold cyan"),
                    (" (e)\n", "dim"),
                    f"no head map for {emotion}: press c to compute",
                )
            )
            return
        matrix, self.info = found
        main.display = True
        title.update(
            Text.assemble(
                ("head map · emotion ", "dim"),
                (emotion, "bold cyan"),
                (" (e) · ", "dim"),
                f"{matrix.shape[0]} layers x {matrix.shape[1]} heads · "
                f"{self.info.get('method', '')} {self.info.get('file', '')}",
            )
        )
        self.query_one(Heatmap).set_matrix(matrix)
        self.query_one(Heatmap).focus()

    def on_heatmap_cursor_moved(self, event: Heatmap.CursorMoved) -> None:
        matrix = self.query_one(Heatmap).matrix
        order = np.argsort(-np.abs(np.nan_to_num(matrix)).ravel())
        rank = int(np.where(order == event.layer * matrix.shape[1] + event.head)[0][0]) + 1
        lines = [
            f"L{event.layer} H{event.head}",
            f"effect {event.value:+.4f}",
            f"rank {rank} of {matrix.size} by |effect|",
        ]
        top = self.info.get("top_positions") or self.info.get("attention")
        entry = top.get(f"{event.layer}.{event.head}") if isinstance(top, dict) else None
        if entry:
            lines.append("top attended positions:")
            lines += [f"  {p}" for p in entry[:5]]
        self.query_one("#head-detail", Static).update("\n".join(lines))

    def action_emotion(self) -> None:
        emotions = self.session_emotions()
        if emotions:
            self.emotion_i = (self.emotion_i + 1) % len(emotions)
            self.refresh_data()

    def action_compute(self) -> None:
        session = self.need_session()
        if session is None:
            return
        emotion = self.session_emotions()[self.emotion_i]

        def job(progress):
            from ..steps import heads

            return heads.run(session, {"emotion": emotion}, progress)

        self.lab.start_work(f"heads {emotion}", job, lambda _: self.refresh_data())


# -- steer ------------------------------------------------------------------------------
class PromptInput(Input):
    """The prompt box: enter generates, esc hands the keys back to the screen."""

    BINDINGS = [Binding("escape", "leave", "done editing")]

    def action_leave(self) -> None:
        self.screen.set_focus(None)


class SteerScreen(LabScreen):
    MODE = "steer"
    AUTO_FOCUS = ""  # keys step the parameters; `p` focuses the prompt
    BINDINGS = [
        Binding("p", "prompt", "prompt"),
        Binding("e", "emotion", "emotion"),
        Binding("left_square_bracket", "layer(-1)", "layer", key_display="[ ]"),
        Binding("right_square_bracket", "layer(1)", "layer+", show=False),
        Binding("minus", "alpha(-1)", "alpha", key_display="- +"),
        Binding("equals_sign,plus", "alpha(1)", "alpha+", show=False),
        Binding("g", "generate", "generate"),
    ]
    ALPHA_STEP = 0.05

    def __init__(self) -> None:
        super().__init__()
        self.emotion_i = 0
        self.steer_layer: int | None = None
        self.alpha = 0.3
        self.session_path: Path | None = None

    def body(self) -> ComposeResult:
        yield PromptInput(
            "Write one sentence about your morning.",
            id="prompt",
            placeholder="prompt (p to edit, enter to generate)",
        )
        yield Static(id="steer-params", classes="title")
        with Horizontal(id="steer-out"):
            with VerticalScroll(classes="pane"):
                yield Static("baseline", classes="pane-title")
                yield Static(id="baseline")
            with VerticalScroll(classes="pane"):
                yield Static("steered", classes="pane-title")
                yield Static(id="steered")
        yield Static(id="steer-metrics")

    def refresh_data(self) -> None:
        session = self.lab.session
        if session is not None and session.path != self.session_path:
            from ..steps.steer import default_layer

            self.session_path = session.path
            self.steer_layer = default_layer(session) if session.methods() else None
            emotions = self.session_emotions()
            self.emotion_i = emotions.index("joy") if "joy" in emotions else 0
        self.show_params()

    def show_params(self) -> None:
        session = self.lab.session
        emotions = self.session_emotions()
        params = self.query_one("#steer-params", Static)
        if session is None or not emotions:
            params.update(
                "no session open: press 1 to choose one"
                if session is None
                else "this session has no vectors yet"
            )
            return
        n_layers = session.manifest["model"].get("layers", "?")
        params.update(
            Text.assemble(
                ("emotion ", "dim"),
                (emotions[self.emotion_i], "bold cyan"),
                (" (e) · layer ", "dim"),
                (str(self.steer_layer), "bold cyan"),
                (f"/{n_layers} ([ ]) · alpha ", "dim"),
                (f"{self.alpha:.2f}", "bold cyan"),
                (" (- +) · g generate", "dim"),
            )
        )

    def action_prompt(self) -> None:
        self.query_one("#prompt", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.set_focus(None)
        self.action_generate()

    def action_emotion(self) -> None:
        emotions = self.session_emotions()
        if emotions:
            self.emotion_i = (self.emotion_i + 1) % len(emotions)
            self.show_params()

    def action_layer(self, step: int) -> None:
        session = self.lab.session
        if session is None or self.steer_layer is None:
            return
        n_layers = int(session.manifest["model"]["layers"])
        self.steer_layer = max(0, min(n_layers - 1, self.steer_layer + step))
        self.show_params()

    def action_alpha(self, step: int) -> None:
        self.alpha = round(self.alpha + step * self.ALPHA_STEP, 4)
        self.show_params()

    def action_generate(self) -> None:
        session = self.need_session()
        emotions = self.session_emotions()
        if session is None or not emotions:
            return
        prompt = self.query_one("#prompt", Input).value
        params = {
            "emotion": emotions[self.emotion_i],
            "layer": self.steer_layer,
            "alpha": self.alpha,
            "prompts": [prompt],
            "max_new_tokens": 32,
        }

        def job(progress):
            from ..steps import steer

            return steer.run(session, params, progress)

        self.query_one("#baseline", Static).update(Text("generating...", style="dim"))
        self.query_one("#steered", Static).update(Text("generating...", style="dim"))
        self.lab.start_work(f"steer {params['emotion']}", job, self.show_result)

    def show_text(self, key: str, index: int, text: str) -> None:
        """Tokens as they arrive, with a cursor, until the result replaces them."""
        if index == 0 and key in ("baseline", "steered"):
            self.query_one(f"#{key}", Static).update(Text(printable(text) + "▌"))

    def show_result(self, result: dict) -> None:
        self.query_one("#baseline", Static).update(Text(printable(result["baseline"][0])))
        self.query_one("#steered", Static).update(Text(printable(result["steered"][0])))
        m = result["metrics"]
        text = Text()
        for key in sorted(m):
            if "/" in key:
                continue
            value = m[key]
            text.append(f"{key} ", style="dim")
            text.append(
                f"{value:+.3f}  " if isinstance(value, float) else f"{value}  ", style="bold"
            )
        self.query_one("#steer-metrics", Static).update(text)


# -- plugins ----------------------------------------------------------------------------
class PluginsScreen(LabScreen):
    MODE = "plugins"

    def body(self) -> ComposeResult:
        yield Static(
            "plugins: built-ins, installed packages (entry points) and single files",
            classes="title",
        )
        yield DataTable(id="plugins", cursor_type="row")
        yield Static(id="plugin-detail", classes="detail")

    def on_mount(self) -> None:
        self.query_one("#plugins", DataTable).add_columns(
            "plugin", "version", "source", "components", "status"
        )

    def infos(self) -> list:
        from .. import plugins

        return list(plugins.registry().plugins.values())

    def refresh_data(self) -> None:
        table = self.query_one("#plugins", DataTable)
        table.clear()
        for info in self.infos():
            comps = ", ".join(n for names in info.components.values() for n in names)
            status = Text("broken", style="bold red") if info.error else Text("ok", style="green")
            name = info.name.removeprefix("emolab.")
            table.add_row(name, info.version, info.source, comps[:28] or "-", status)
        self.show(0)

    def show(self, index: int) -> None:
        infos = self.infos()
        detail = self.query_one("#plugin-detail", Static)
        if not 0 <= index < len(infos):
            detail.update("")
            return
        info = infos[index]
        text = Text(
            f"{info.name} {info.version} ({info.source}"
            f"{', package ' + info.package if info.package else ''})\n",
            style="bold",
        )
        for kind, names in info.components.items():
            text.append(f"  {kind}: {', '.join(names)}\n")
        if info.error:
            text.append(f"  broken: {info.error}\n", style="red")
        detail.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show(event.cursor_row)


# -- log --------------------------------------------------------------------------------
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
                _f(ev.get("duration_s"), ".1f"),
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


# -- compare ----------------------------------------------------------------------------
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
        self.data = session.read_json(found.path.name)
        summary = self.data["summary"]
        title.update(
            f"steering sensitivity at L{self.data['layer']} over {len(summary)} checkpoints "
            "(label-logit rise per alpha, own vector)"
        )
        table.add_columns("emotion", *[r["checkpoint"][:9] for r in summary], "verdict")
        for e in self.data["emotions"]:
            cells = [_f(self.slope(e, r["step"], "own"), "+.2f") for r in summary]
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
                text.append(f"{label:<12} {_f(v, '+6.2f'):>6} ")
                text.append("█" * n if v >= 0 else "░" * n, style=style)
                text.append("\n")
        text.append(
            "geometry: "
            + " · ".join(
                f"{r['checkpoint'][:9]} cos {_f(r['cos_base'])} probe {_f(r['probe_acc'])}"
                for r in summary
            ),
            style="dim",
        )
        chart.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show(event.cursor_row)


# -- help -------------------------------------------------------------------------------
HELP = """\
[b]emolab tui[/b] — keys

  [b]1[/b] sessions  [b]2[/b] layers  [b]3[/b] heads  [b]4[/b] steer  [b]5[/b] plugins  [b]6[/b] log
  [b]7[/b] compare (checkpoints: steering sensitivity over training)
  [b]?[/b] this help   [b]esc[/b] cancel the running work   [b]q[/b] quit

  sessions  enter open · n new extraction · r replay · f refresh
  layers    up/down layer (cosines follow) · e emotion · m method · c compute
  heads     arrows move · e emotion · c compute the head map
  steer     p edit prompt · enter/g generate · e emotion · [ ] layer · - + alpha
  plugins   up/down shows components and load errors
  log       up/down shows a step's params and outputs
  compare   up/down picks the emotion whose bars are drawn

Work runs in the background with a progress bar; the keys keep working.
The TUI calls the same steps as the command line and logs into the session.
"""


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(HELP)
            yield Footer()
