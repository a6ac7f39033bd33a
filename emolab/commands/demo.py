"""`emolab demo`: the main job on the embedded default model."""

from __future__ import annotations

from pathlib import Path

import click

from ..hookspecs import hookimpl
from ._common import console, default_session_path


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.option("--model", "model_name", default="smollm2-135m", show_default=True)
    @click.option("--limit", default=60, show_default=True, type=int)
    @click.option("--session", "session_path", default=None)
    def demo(model_name, limit, session_path):
        """The main job: extract Ekman-6 vs neutral, analyse layers, steer toward joy and anger."""
        from ..progress_cli import cli_progress
        from ..report import print_layers, print_steer
        from ..steps import extract, layers, steer
        from ..steps.common import open_or_create

        con = console()
        path = Path(session_path) if session_path else default_session_path(model_name)
        con.rule(f"emolab demo on {model_name}")
        session = open_or_create(path, model_name)
        with cli_progress(False) as progress:
            extract.run(session, {"limit": limit, "test_limit": max(limit // 2, 10)}, progress)
            result = layers.run(session, {}, progress)
        print_layers(con, result, "mean_diff")
        peak = result["summary"]["mean_diff"]["peak_layer"]
        for emotion in ("joy", "anger"):
            with cli_progress(False) as progress:
                res = steer.run(
                    session, {"emotion": emotion, "layer": peak, "alpha": 0.3}, progress
                )
            print_steer(con, res)
        con.rule("saved")
        con.print(f"session: {session.path}")
        con.print(f"replay it (anywhere, no terminal needed): emolab replay {session.path}")
