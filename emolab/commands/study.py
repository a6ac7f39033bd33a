"""`emolab study`: models x emotions x layers -> per model extract, layer curve, sweep;
one combined table. Thin over emolab.steps.study."""

from __future__ import annotations

import click

from ..hookspecs import hookimpl
from .engine_opts import engine_options, make_engine, model_options


def print_study(con, res: dict) -> None:
    from ..report import column_of, print_wide

    p, rows = res["params"], res["rows"]

    col = column_of(rows)

    print_wide(
        con,
        f"study: {len(p['models'])} models x {len(p['emotions'])} emotions",
        ("model", [r["model"] for r in rows]),
        [
            col("peak L", lambda r: f"{r['peak_layer']}/{r['layers']} ({r['peak_chosen_on']})"),
            col("depth", lambda r: f"{r['peak_depth']:.2f}"),
            col("acc", lambda r: f"{r['peak_acc']:.3f}"),
            col("random", lambda r: f"{r['acc_random']:.3f}"),
            col("shuffled", lambda r: f"{r['acc_shuffled']:.3f}"),
            col("generation", lambda r: f"{r['acc_generation']:.3f}"),
            col(
                "success",
                lambda r: (
                    f"{r['success_test']:.2f} ({r['success_baseline_test']:.2f}/"
                    f"{r['success_random_test']:.2f})"
                ),
            ),
            col("P rise", lambda r: f"{r['best_p_target_rise']:+.3f}"),
            col(
                "surg/rep/expl/failed",
                lambda r: f"{r['surgical']}/{r['repetitive']}/{r['explosive']}/{r['failed']}",
            ),
        ],
        caption="peak: layer of the best mean accuracy on the split it names (depth = layer / "
        "last layer); accuracies are the test split's, "
        "beside random and shuffled-label directions and the generation-based directions at "
        "that layer; success: share of test-prompt scenarios whose steered text the judge "
        "labels as the target and that stayed surgical, at each emotion's dev-chosen alpha "
        "(sweep at the peak layer), with (unsteered/random direction); regimes: cells per "
        "regime",
    )
    con.print(f"csv: {res['csv']}")
    for r in res["rows"]:
        con.print(f"  {r['model']}: emolab replay {r['session']}")


@hookimpl
def register_commands(cli):
    from ._common import console, csv_list, out_json

    @cli.command()
    @click.option("--models", required=True, help="shipped names and hf:<id>, comma-separated")
    @click.option(
        "--emotions",
        default=None,
        help="default: the 20 GoEmotions labels with the most single-label texts",
    )
    @click.option("--layers", default="all", show_default=True, help="layers to extract")
    @click.option("--alphas", default="0.15,0.3,0.5", show_default=True)
    @click.option("--limit", default=100, show_default=True, type=int, help="train texts/label")
    @click.option("--test-limit", default=50, show_default=True, type=int)
    @click.option(
        "--samples",
        default=20,
        show_default=True,
        type=int,
        help="texts the model writes per label (generation-based directions)",
    )
    @click.option("--gen-tokens", default=24, show_default=True, type=int)
    @click.option(
        "--prompts",
        "n_prompts",
        default=20,
        show_default=True,
        type=int,
        help="neutral prompts per sweep cell",
    )
    @click.option("--max-new-tokens", default=24, show_default=True, type=int)
    @click.option("--judge-train-limit", default=16000, show_default=True, type=int)
    @click.option("--out", "out", required=True, help="study folder; rerun to continue")
    @model_options
    @engine_options
    @click.option("--json", "as_json", is_flag=True)
    def study(
        models,
        emotions,
        layers,
        alphas,
        limit,
        test_limit,
        samples,
        gen_tokens,
        n_prompts,
        max_new_tokens,
        judge_train_limit,
        out,
        device,
        dtype,
        ray_address,
        workers,
        batch_cells,
        as_json,
    ):
        """Models x emotions x layers: per model extract, layer curve, sweep; one table."""
        from ..progress_cli import cli_progress
        from ..steps import study as step
        from ._common import float_list

        params = {
            "models": csv_list(models),
            "emotions": csv_list(emotions) if emotions else None,
            "layers": layers,
            "alphas": float_list(alphas, "alpha"),
            "limit": limit,
            "test_limit": test_limit,
            "samples": samples,
            "gen_tokens": gen_tokens,
            "prompts": n_prompts,
            "max_new_tokens": max_new_tokens,
            "judge_train_limit": judge_train_limit,
            "device": device,
            "dtype": dtype,
        }
        engine = make_engine(ray_address, workers, batch_cells, device)
        with cli_progress(as_json) as progress:
            res = step.run(out, params, progress, engine=engine)
        if as_json:
            return out_json(res)
        print_study(console(), res)
