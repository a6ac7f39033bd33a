"""The plugins screen: every plugin (built-in, installed package, single file), the
components each registered, and the load error of a broken one."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from .base import LabScreen


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
        from ... import plugins

        return list(plugins.registry().plugins.values())

    def refresh_data(self) -> None:
        table = self.query_one("#plugins", DataTable)
        table.clear()
        for info in self.infos():
            comps = ", ".join(n for names in info.components.values() for n in names)
            status = Text("broken", style="bold red") if info.error else Text("ok", style="green")
            name = info.name.removeprefix("emolab.")
            room = max(28, (self.size.width or 80) - 52)
            comps = comps if len(comps) <= room else comps[: room - 1] + "…"
            table.add_row(name, info.version, info.source, comps or "-", status)
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
