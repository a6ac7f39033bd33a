"""`emolab plot SESSION [WHAT]`: the session's results as publication figures."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..hookspecs import hookimpl


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.argument("session_path")
    @click.argument("what", required=False)
    @click.option("--format", "fmt", default="png", show_default=True, help="png, svg or pdf")
    @click.option("--out", default=None, help="folder for the figures (default: SESSION/figures)")
    @click.option("--json", "as_json", is_flag=True, help="machine-readable output")
    def plot(session_path, what, fmt, out, as_json):
        """Figures of a session's results. WHAT: layers, cosines, heads, sweep, align,
        checkpoints or crosslingual (default: every kind the session has). SESSION may
        also be a published vector file (vectors/*.safetensors)."""
        from .. import figures
        from ..session import Session

        figures.check_format(fmt)
        figures.check_what(what)
        if Path(session_path).is_file():  # a published vector set
            paths = figures.plot_file(Path(session_path), fmt, out)
        else:
            paths = figures.plot(Session.open(session_path), what, fmt, out)
        if as_json:
            click.echo(json.dumps({"session": session_path, "figures": [str(p) for p in paths]}))
            return
        for p in paths:
            click.echo(str(p))
