"""The sessions screen: every session under the root folder; open, replay, start a new one."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from ...errors import EmolabError
from ...session import Session
from .base import LabScreen
from .forms import AlignForm, ExtractForm


class SessionsScreen(LabScreen):
    MODE = "sessions"
    BINDINGS = [
        Binding("enter", "open", "open"),
        Binding("n", "new", "new extraction"),
        Binding("r", "replay", "replay"),
        Binding("a", "align", "align"),
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
            from ...steps import extract, layers
            from ...steps.common import new_session

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
            from ...steps.replay import replay

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

    def action_align(self) -> None:
        """Align the open session (A) with the highlighted one (B), by any registered
        aligner; the scores beside their permutation baselines land in the log."""
        session_a, path_b = self.need_session(), self.selected()
        if session_a is None or path_b is None:
            return
        if path_b.resolve() == session_a.path.resolve():
            self.lab.set_work(
                message="highlight a second session to align the open one with",
                level="warning",
            )
            return

        def start(form: dict | None) -> None:
            if not form:
                return
            params = {"session_b": str(path_b), **form}

            def job(progress):
                from ...steps import align

                return align.run(session_a, params, progress)

            self.lab.start_work(f"align {session_a.name} ~ {path_b.name}", job, done)

        def done(result: dict) -> None:
            scores = [
                f"{key if key.startswith(method) else f'{method} {key}'} "
                f"{val['score']:.2f} (p {val['p_value']:.2g})"
                for method, out in result["methods"].items()
                for key, val in out.items()
                if isinstance(val, dict) and "score" in val
            ]
            self.lab.set_work(message="aligned: " + ", ".join(scores[:4]), level="info")

        self.app.push_screen(AlignForm(session_a.name, path_b.name), start)
