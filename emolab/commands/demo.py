"""`emolab demo`: the main job on the embedded default model (steps/demo.py does the work)."""

from __future__ import annotations

from pathlib import Path

import click

from ..hookspecs import hookimpl
from ._common import console, csv_list, default_session_path


def print_demo(con, res: dict) -> None:
    from ..report import column_of, print_wide, share

    rows = res["summary"]

    col = column_of(rows)

    print_wide(
        con,
        f"steering on {len(res['test_prompts'])} test prompts (not used for any choice)",
        ("emotion", [r["emotion"] for r in rows]),
        [
            col("layer", lambda r: str(r["layer"])),
            col("alpha", lambda r: f"{r['alpha']:g}"),
            col("P unst", lambda r: f"{r['p_target_baseline']:.2f}"),
            col("P steer", lambda r: f"{r['p_target']:.2f}"),
            col("P rand", lambda r: f"{r['p_target_random']:.2f}"),
            col("succ unst", lambda r: share(r["success_baseline"])),
            col("succ steer", lambda r: share(r["success"])),
            col("succ rand", lambda r: share(r["success_random"])),
        ],
        [col("chosen on", lambda r: r["chosen_on"])],
        caption="P: the judge's P(target); succ: success rate; unst: the unsteered text, "
        "steer: steered, rand: a random direction of the same size",
    )
    con.print(res["how_to_read"])


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.option("--model", "model_name", default="smollm2-135m", show_default=True)
    @click.option("--limit", default=60, show_default=True, type=int, help="train texts per label")
    @click.option(
        "--emotions", default="joy,sadness", show_default=True, help="emotions to steer toward"
    )
    @click.option("--judge-train-limit", default=16000, show_default=True, type=int)
    @click.option("--session", "session_path", default=None)
    def demo(model_name, limit, emotions, judge_train_limit, session_path):
        """The main job: extract, choose layer and alpha on dev data, steer, judge on test."""
        from ..progress_cli import cli_progress
        from ..report import print_layers, print_steer
        from ..steps import demo as step
        from ..steps.common import open_or_create
        from .sweep import print_sweep

        con = console()
        path = Path(session_path) if session_path else default_session_path(model_name)
        con.rule(f"emolab demo on {model_name}")
        session = open_or_create(path, model_name)
        with cli_progress(False) as progress:
            res = step.run(
                session,
                {
                    "limit": limit,
                    "emotions": csv_list(emotions),
                    "judge_train_limit": judge_train_limit,
                },
                progress,
            )
        print_layers(con, res["layers"], session.methods()[0])
        con.rule("quick sweep: the dev prompts choose layer and alpha")
        print_sweep(con, res["sweep"])
        for r in res["steer"].values():
            print_steer(con, r)
        con.rule("result")
        print_demo(con, res)
        con.rule("saved")
        con.print(f"session: {session.path}")
        con.print(f"replay it (anywhere, no terminal needed): emolab replay {session.path}")
