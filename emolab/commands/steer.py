"""`emolab steer`: generate with h + alpha*v beside the unsteered text."""

from __future__ import annotations

import click

from ..api import PUSH_POSITIONS, PUSH_SCALES
from ..hookspecs import hookimpl
from ._common import assignments, assignments_option, console, csv_list, run_step


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.argument("session_path")
    @click.option("--emotion", required=True)
    @click.option(
        "--layer",
        type=int,
        default=None,
        help="default: the sweep's or layer analysis's dev choice",
    )
    @click.option(
        "--alpha", type=float, default=None, help="default: the sweep's dev choice, or 0.3"
    )
    @click.option(
        "--span",
        type=int,
        default=None,
        help="steer layers L..L+span-1, alpha split over them (default: the sweep's dev "
        "choice, or 1 when --layer is given)",
    )
    @click.option(
        "--success",
        is_flag=True,
        help="judge the texts: success rate beside the unsteered text and a random direction",
    )
    @click.option("--judge-train-limit", type=int, default=16000, show_default=True)
    @click.option(
        "--scale",
        type=click.Choice(PUSH_SCALES),
        default="relative",
        show_default=True,
        help="relative: alpha x the layer's mean residual norm",
    )
    @click.option(
        "--positions",
        type=click.Choice(PUSH_POSITIONS),
        default="all",
        show_default=True,
    )
    @click.option(
        "--prompt", "prompts", multiple=True, help="prompt(s); default: 4 neutral prompts"
    )
    @click.option("--method", default=None, help="which vector set of the session")
    @click.option("--vectors", "vector_file", default=None, help="a published vector file instead")
    @click.option("--max-new-tokens", type=int, default=24, show_default=True)
    @click.option(
        "--evaluators",
        default="label_logit_shift",
        show_default=True,
        help="registered evaluators, comma-separated (see `emolab plugins`)",
    )
    @click.option(
        "--intervention",
        default=None,
        help="a registered intervention (default: residual_add, or enhance with --circuit)",
    )
    @assignments_option("--param", "a parameter of the intervention, e.g. --param angle=30")
    @click.option("--json", "as_json", is_flag=True)
    @click.option(
        "--circuit",
        type=int,
        default=None,
        help="enhance the emotion's top-k heads (from `emolab heads`) instead of adding v",
    )
    @click.option(
        "--circuit-kind",
        type=click.Choice(["heads", "neurons"]),
        default="heads",
        show_default=True,
        help="which units --circuit scales (neurons: from `emolab heads --neurons`)",
    )
    @click.option(
        "--factor",
        "circuit_factor",
        type=float,
        default=2.0,
        show_default=True,
        help="multiplier for the --circuit units",
    )
    def steer(
        session_path,
        emotion,
        layer,
        alpha,
        span,
        scale,
        positions,
        prompts,
        method,
        vector_file,
        max_new_tokens,
        evaluators,
        intervention,
        params,
        as_json,
        success=False,
        judge_train_limit=16000,
        circuit=None,
        circuit_factor=2.0,
        circuit_kind="heads",
    ):
        """Generate with h + alpha*v and compare with the unsteered text."""
        from ..session import Session
        from ..steps import steer as step

        session = Session.open(session_path)
        given = {
            "emotion": emotion,
            "layer": layer,
            "alpha": alpha,
            "span": span,
            "scale": scale,
            "positions": positions,
            "method": method,
            "vector_file": vector_file,
            "max_new_tokens": max_new_tokens,
            "evaluators": csv_list(evaluators),
            "circuit": circuit,
            "circuit_factor": circuit_factor,
            "circuit_kind": circuit_kind,
            "intervention": intervention,
            "intervention_params": assignments(params, "--param"),
            "success": success,
            "judge_train_limit": judge_train_limit,
        }
        if prompts:
            given["prompts"] = list(prompts)
        result = run_step(step, session, given, as_json)
        if result is None:
            return
        from ..report import print_steer

        print_steer(console(), result)
