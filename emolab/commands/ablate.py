"""`emolab ablate`: what carries the signal against a matched control, thin over
emolab.steps.ablate."""

from __future__ import annotations

import sys

import click
from rich import box
from rich.console import Console
from rich.table import Table

from ..hookspecs import hookimpl


def print_ablate(con: Console, res: dict) -> None:
    kind = res["params"]["kind"]
    m = res["metrics"]
    if kind == "comma":
        t = Table(
            title=f"comma ablation ({res['params']['mode']}) on tigges-reviews test, "
            f"{res['n_texts']} reviews",
            box=box.SIMPLE_HEAD,
        )
        for col in ("condition", "accuracy", "logit diff (correct sign)"):
            t.add_column(col, justify="right")
        for cond, v in res["conditions"].items():
            t.add_row(cond, f"{v['accuracy']:.3f}", f"{v['logit_diff_correct']:+.3f}")
        con.print(t)
        con.print(
            f"accuracy: none {m['accuracy_none']:.3f}, commas {m['accuracy_commas']:.3f}, "
            f"random positions (mean of seeds) {m['accuracy_random']:.3f}"
        )
    elif kind == "patch":
        t = Table(
            title=f"directional patching, layers {res['layers'][0]}-{res['layers'][-1]}",
            box=box.SIMPLE_HEAD,
        )
        for col in ("direction / patch", "flip rate", "logit diff before", "after"):
            t.add_column(col, justify="right")
        for k, v in res["conditions"].items():
            t.add_row(
                k,
                f"{v['flip_rate']:.3f}",
                f"{v['logit_diff_before']:+.2f}",
                f"{v['logit_diff_after']:+.2f}",
            )
        con.print(t)
        con.print(
            f"flip rate: sentiment direction {m['flip_rate/sentiment']:.3f}, "
            f"random direction {m['flip_rate/random']:.3f}"
        )
    elif kind == "direction":
        t = Table(
            title="label readout after directional ablation (accuracy / label margin)",
            box=box.SIMPLE_HEAD,
        )
        for col in ("emotion", "none", "emotion dir.", "random dir."):
            t.add_column(col, justify="right")
        for emo, row in res["emotions"].items():
            t.add_row(
                emo,
                *[
                    f"{row[c]['accuracy']:.2f} / {row[c]['label_margin']:+.2f}"
                    for c in ("none", "emotion", "random")
                ],
            )
        con.print(t)
    else:
        t = Table(
            title=f"heads {res['heads']} zero-ablated: projection at layer "
            f"{res['layer']} and label logit",
            box=box.SIMPLE_HEAD,
        )
        for col in ("emotion", "proj clean", "ablated", "label logit clean", "ablated"):
            t.add_column(col, justify="right")
        for emo, row in res["emotions"].items():
            t.add_row(
                emo,
                f"{row['projection']['clean']:.2f}",
                f"{row['projection']['ablated']:.2f}",
                f"{row['label_logit']['clean']:.2f}",
                f"{row['label_logit']['ablated']:.2f}",
            )
        con.print(t)


@hookimpl
def register_commands(cli):
    from ._common import assignments, assignments_option, run_step

    @cli.command()
    @click.argument("session_path")
    @click.option(
        "--kind",
        required=True,
        help="comma, patch, direction or head (or the name of its intervention: "
        "comma_zeroing, directional_patch, directional_ablation, head_ablation)",
    )
    @click.option(
        "--intervention",
        default=None,
        help="a registered intervention to run in the kind's protocol instead of its own",
    )
    @assignments_option("--param", "a parameter of the intervention")
    @click.option("--heads", default=None, help="L.H,... for --kind head")
    @click.option(
        "--layers", default="all", show_default=True, help="layers the ablation / patch acts on"
    )
    @click.option(
        "--layer",
        type=int,
        default=None,
        help="--kind head: where the projection is read (default: steering layer)",
    )
    @click.option("--mode", type=click.Choice(["zero", "mean"]), default="zero", show_default=True)
    @click.option("--control-seeds", type=int, default=3, show_default=True)
    @click.option(
        "--limit", type=int, default=30, show_default=True, help="held-out texts per emotion"
    )
    @click.option("--json", "as_json", is_flag=True)
    def ablate(
        session_path,
        kind,
        intervention,
        params,
        heads,
        layers,
        layer,
        mode,
        control_seeds,
        limit,
        as_json,
    ):
        """Comma zeroing vs a random control, directional patching / ablation, head removal."""
        from ..session import Session
        from ..steps import ablate as step

        session = Session.open(session_path)
        given = {
            "kind": kind,
            "intervention": intervention,
            "intervention_params": assignments(params, "--param"),
            "heads": heads,
            "layers": layers,
            "layer": layer,
            "mode": mode,
            "control_seeds": control_seeds,
            "limit": limit,
        }
        res = run_step(step, session, given, as_json)
        if res is None:
            return
        print_ablate(Console(highlight=False), res)
        sys.stdout.flush()
