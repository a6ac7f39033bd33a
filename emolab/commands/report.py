"""`emolab report SESSION`: the whole session as one self-contained HTML page."""

from __future__ import annotations

import json

import click

from ..hookspecs import hookimpl


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.argument("session_path")
    @click.option("--out", default=None, help="HTML file to write (default: SESSION/report.html)")
    @click.option("--json", "as_json", is_flag=True, help="machine-readable output")
    def report(session_path, out, as_json):
        """Every step of SESSION in log order (parameters, figures, tables, replay status) in
        one HTML file with nothing to fetch: open it in any browser, offline."""
        from .. import html_report
        from ..session import Session

        session = Session.open(session_path)
        path = html_report.write(session, out)
        if as_json:
            click.echo(json.dumps({"session": str(session.path), "report": str(path)}))
        else:
            click.echo(str(path))
