"""`emolab replay`: redo a session's log elsewhere and compare every number."""

from __future__ import annotations

import sys

import click

from ..hookspecs import hookimpl
from ..models import DEVICES
from ._common import console, out_json


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.argument("session_path")
    @click.option(
        "--out", default=None, help="new session folder (default: <session>-replay, -replay-2...)"
    )
    @click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)
    @click.option("--rtol", type=float, default=None, help="default: by the session's dtype")
    @click.option("--atol", type=float, default=None, help="default: by the session's dtype")
    @click.option(
        "--strict", is_flag=True, help="a plugin version that differs is a mismatch, not a note"
    )
    @click.option("--json", "as_json", is_flag=True)
    def replay(session_path, out, device, rtol, atol, strict, as_json):
        """Re-run a session's log into a new session; exit 1 if anything differs."""
        from ..progress_cli import cli_progress
        from ..steps.replay import replay as run_replay

        with cli_progress(as_json) as progress:
            new, cmp = run_replay(session_path, out, device, rtol, atol, progress, strict)
        bad = [r for r in cmp.rows if not r["ok"]]
        if as_json:
            out_json(
                {
                    "session": str(new.path),
                    "replay_of": session_path,
                    "ok": cmp.ok,
                    "compared": len(cmp.rows),
                    "mismatches": bad,
                    "rows": cmp.rows,
                }
            )
        else:
            from ..report import print_replay

            print_replay(console(), new, cmp)
        sys.exit(0 if cmp.ok else 1)
