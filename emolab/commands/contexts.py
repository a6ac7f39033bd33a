"""`emolab contexts SESSION`: one direction per prompt template, how consistent they are, and
the context-agnostic direction they share (saved as the vector set `context_agnostic`)."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..hookspecs import hookimpl


def print_contexts(con: Console, result: dict) -> None:
    con.print(
        f"{len(result['templates'])} templates, {result['n_train']} train / {result['n_test']} "
        f"test texts each, position {result['position']}, vs {result['baseline']}"
    )
    for i, t in enumerate(result["templates"]):
        con.print(f"  t{i}: {t}")
    t = Table(
        title="cosine between the templates' directions; held-out balanced accuracy of each "
        "template's own direction and of the shared one (threshold from train)"
    )
    for col in ("emotion", "layer", "mean cos", "min cos", "acc own", "acc shared"):
        t.add_column(col, justify="right" if col != "emotion" else "left")
    for emo in result["emotions"]:
        for layer in result["layers"]:
            s = result["consistency"][f"{emo}/{layer}"]
            rows = [r for r in result["rows"] if r["emotion"] == emo and r["layer"] == layer]
            own = sum(r["test_acc_own"] for r in rows) / len(rows)
            shared = sum(r["test_acc_shared"] for r in rows) / len(rows)
            t.add_row(
                emo,
                str(layer),
                f"{s['mean_pairwise_cosine']:.3f}",
                f"{s['min_pairwise_cosine']:.3f}",
                f"{own:.3f}",
                f"{shared:.3f}",
            )
    con.print(t)
    con.print(f"saved as vector set '{result['method']}' (steer/sweep --method {result['method']})")


@hookimpl
def register_commands(cli):
    from ._common import console, csv_list, run_step

    @cli.command()
    @click.argument("session_path")
    @click.option(
        "--template",
        "templates",
        multiple=True,
        help="a prompt template holding {text}; repeat for each (default: four built-in frames)",
    )
    @click.option("--emotions", default=None, help="comma-separated (default: the session's)")
    @click.option("--layers", default=None, help="5, 2,5,8 or 10-20 (default: steering layer)")
    @click.option("--extractor", default="mean_diff", show_default=True)
    @click.option("--limit", type=int, default=40, show_default=True, help="train texts per label")
    @click.option("--test-limit", type=int, default=20, show_default=True)
    @click.option("--json", "as_json", is_flag=True)
    def contexts(session_path, templates, emotions, layers, extractor, limit, test_limit, as_json):
        """Context-agnostic emotion directions: consistency across prompt templates."""
        from ..session import Session
        from ..steps import contexts as step

        session = Session.open(session_path)
        params = {
            "emotions": csv_list(emotions),
            "layers": layers,
            "extractor": extractor,
            "limit": limit,
            "test_limit": test_limit,
        }
        if templates:
            params["templates"] = list(templates)
        result = run_step(step, session, params, as_json)
        if result is not None:
            print_contexts(console(), result)
