"""`emolab models`, `datasets` and `plugins`: what is registered, and why a thing cannot load."""

from __future__ import annotations

import click

from ..hookspecs import hookimpl
from ._common import console, out_json


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="machine-readable output")
    def models(as_json):
        """Models emolab can load here, and why not when it can't."""
        from .. import plugins

        reg = plugins.registry()
        rows = []
        for name in reg.names("models"):
            src = reg.get("models", name)
            spec = src.prefix + "<id-or-path>" if src.prefix else name
            ok, why = (True, "") if src.prefix else src.available(name)
            info = src.info(name) if not src.prefix else {}
            rows.append(
                {
                    "name": spec,
                    "description": src.description,
                    "source": src.source,
                    "layers": info.get("layers"),
                    "d_model": info.get("d_model"),
                    "heads": info.get("heads"),
                    "available": ok,
                    "why_not": why,
                    "plugin": reg.plugin_of("models", name).name,
                }
            )
        if as_json:
            return out_json(rows)
        from rich.table import Table

        t = Table("name", "layers", "d_model", "heads", "available", "source")
        for r in rows:
            avail = "yes" if r["available"] else f"no: {r['why_not']}"
            t.add_row(
                r["name"],
                str(r["layers"] or "-"),
                str(r["d_model"] or "-"),
                str(r["heads"] or "-"),
                avail,
                r["source"],
            )
        console().print(t)

    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="machine-readable output")
    def datasets(as_json):
        """Datasets and their labels."""
        from .. import plugins

        reg = plugins.registry()
        rows = []
        for name in reg.names("datasets"):
            src = reg.get("datasets", name)
            labels = [] if src.prefix else src.labels(name)
            rows.append(
                {
                    "name": src.prefix + "<path>" if src.prefix else name,
                    "description": src.description,
                    "labels": labels,
                    "splits": list(src.splits),
                }
            )
        if as_json:
            return out_json(rows)
        from rich.table import Table

        t = Table("name", "labels", "description")
        for r in rows:
            t.add_row(r["name"], ", ".join(r["labels"]) or "(from the file)", r["description"])
        console().print(t)

    @cli.command("plugins")
    @click.option(
        "--check",
        is_flag=True,
        help="exit 2 with one line per problem when a plugin is broken or reuses a taken name",
    )
    @click.option("--json", "as_json", is_flag=True, help="machine-readable output")
    def plugins_cmd(check, as_json):
        """Every plugin: version, hooks, components, its load error if it is broken, and any
        name it tried to register that was already taken."""
        from .. import plugins
        from ..errors import PluginFailed

        reg = plugins.registry()
        rows = [p.as_dict() for p in reg.plugins.values()]
        if check:
            problems = [f"{r['name']}: {c}" for r in rows for c in r["collisions"]]
            problems += [f"{r['name']}: broken: {r['error']}" for r in rows if r["error"]]
            if problems:
                raise PluginFailed("; ".join(problems))
        if as_json:
            return out_json(rows)
        from rich.table import Table

        t = Table("plugin", "version", "source", "components", "status")
        for r in rows:
            comps = "; ".join(f"{k}: {', '.join(v)}" for k, v in r["components"].items())
            t.add_row(
                r["name"],
                r["version"],
                r["source"],
                comps,
                f"[red]broken: {r['error']}[/]"
                if r["error"]
                else "; ".join(f"[yellow]{c}[/]" for c in r["collisions"]) or "ok",
            )
        console().print(t)
