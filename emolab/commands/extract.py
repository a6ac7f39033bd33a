"""`emolab extract` (vectors per emotion and layer) and `emolab layers` (the per-layer table)."""

from __future__ import annotations

from pathlib import Path

import click

from ..hookspecs import hookimpl
from ..units import LAYER_SPEC
from ._common import (
    assignments,
    assignments_option,
    console,
    csv_list,
    default_session_path,
    run_step,
)
from .engine_opts import model_options


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.option("--model", "model_name", default="smollm2-135m", show_default=True)
    @click.option("--dataset", default="goemotions-ekman", show_default=True)
    @click.option(
        "--emotions", default=None, help="default: the Ekman six, or the dataset's own labels"
    )
    @click.option("--baseline", default=None, help="default: neutral, or the dataset's last label")
    @click.option(
        "--contrast",
        default="baseline",
        show_default=True,
        type=click.Choice(["baseline", "others", "all"]),
        help="fit each emotion against the baseline, the other emotions, or all classes",
    )
    @click.option(
        "--method",
        "methods",
        default="mean_diff",
        show_default=True,
        help="one or more extractors, comma-separated",
    )
    @click.option("--layers", default="all", show_default=True, help=LAYER_SPEC)
    @click.option(
        "--position",
        default="last",
        show_default=True,
        type=click.Choice(["last", "mean", "commas"]),
    )
    @click.option(
        "--limit", default=100, show_default=True, type=int, help="train examples per label"
    )
    @click.option(
        "--test-limit", default=50, show_default=True, type=int, help="held-out examples per label"
    )
    @click.option(
        "--dev-limit", default=None, type=int, help="dev examples per label (default: --test-limit)"
    )
    @click.option("--batch-size", default=16, show_default=True, type=int)
    @click.option(
        "--source",
        default="comprehension",
        show_default=True,
        type=click.Choice(["comprehension", "generation", "pairs"]),
        help="read labelled text, what the model writes when asked for each emotion, or the "
        "shipped contrastive prompt pairs (same prompt, emotional vs neutral answer)",
    )
    @click.option(
        "--pairs",
        default=None,
        type=int,
        help="prompt pairs per emotion for --source pairs (default: all 60 shipped)",
    )
    @click.option(
        "--tune/--no-tune",
        default=True,
        show_default=True,
        help="choose the extractors' C / shrinkage / components on the dev split",
    )
    @click.option(
        "--hooks",
        "extra_hooks",
        default=None,
        help="also capture these TL hook names (comma-separated; see `emolab hooks`)",
    )
    @assignments_option("--dataset-param", "a parameter of the dataset, e.g. text_column=body")
    @click.option("--session", "session_path", default=None, help="session folder (new)")
    @model_options
    @click.option("--json", "as_json", is_flag=True)
    def extract(
        model_name,
        dataset,
        emotions,
        baseline,
        contrast,
        methods,
        layers,
        position,
        limit,
        test_limit,
        dev_limit,
        batch_size,
        source,
        pairs,
        tune,
        extra_hooks,
        dataset_params,
        session_path,
        device,
        dtype,
        as_json,
    ):
        """Extract one direction per emotion at every chosen layer."""
        from ..steps import extract as step
        from ..steps.common import open_or_create

        if limit < 1 or test_limit < 1 or (dev_limit is not None and dev_limit < 1):
            raise click.BadParameter("limits must be at least 1")
        params = {
            "dataset": dataset,
            "emotions": csv_list(emotions) if emotions else None,
            "baseline": baseline,
            "contrast": contrast,
            "methods": csv_list(methods),
            "layers": layers,
            "position": position,
            "limit": limit,
            "test_limit": test_limit,
            "dev_limit": dev_limit,
            "batch_size": batch_size,
            "source": source,
            "pairs": pairs,
            "tune": tune,
            "hooks": csv_list(extra_hooks) or [],
            "dataset_params": assignments(dataset_params, "--dataset-param"),
        }
        step.check(params)  # a bad parameter fails before the model loads for the session
        path = Path(session_path) if session_path else default_session_path(model_name)
        session = open_or_create(path, model_name, device, dtype)
        result = run_step(step, session, params, as_json, with_session=True)
        if result is None:
            return
        click.echo(f"session: {session.path}")
        click.echo(
            f"extracted {', '.join(result['emotions'])} vs {result['baseline']} with "
            f"{', '.join(params['methods'])} at {len(result['layers'])} layers "
            f"({result['n_train']} train / {result['n_test']} test texts)"
        )
        click.echo(f"next: emolab layers {session.path}")

    @cli.command()
    @click.argument("session_path")
    @click.option(
        "--dataset", default=None, help="score the vectors on another dataset's test split"
    )
    @click.option("--method", default=None, help="show this method (default: the session's first)")
    @click.option(
        "--source",
        default="comprehension",
        show_default=True,
        type=click.Choice(["comprehension", "generation"]),
        help="generation: also fit on the model's own writing and compare (Wilcoxon)",
    )
    @assignments_option("--dataset-param", "a parameter of --dataset, e.g. text_column=body")
    @click.option(
        "--joint-probe/--no-joint-probe",
        default=True,
        show_default=True,
        help="also fit one 7-way logistic probe per layer (C and layer chosen on dev)",
    )
    @click.option("--json", "as_json", is_flag=True)
    def layers(session_path, dataset, method, source, dataset_params, joint_probe, as_json):
        """Per-layer table: held-out accuracy with its baselines, norms, cosines."""
        from ..session import Session
        from ..steps import layers as step

        session = Session.open(session_path)
        params = {"dataset": dataset} if dataset else {}
        if source != "comprehension":
            params["source"] = source
        if dataset_params:
            params["dataset_params"] = assignments(dataset_params, "--dataset-param")
        if not joint_probe:
            params["joint_probe"] = False
        result = run_step(step, session, params, as_json, with_session=True)
        if result is None:
            return
        from ..report import print_joint_probe, print_layers

        print_layers(console(), result, method or session.methods()[0])
        print_joint_probe(console(), result)
