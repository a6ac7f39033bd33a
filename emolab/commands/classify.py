"""`emolab classify`: the external emotion judge, thin over emolab.classifier."""

from __future__ import annotations

import click
from rich import box
from rich.console import Console
from rich.table import Table

from ..api import SPLITS
from ..classifier import JUDGES
from ..errors import BadInput
from ..hookspecs import hookimpl
from ..report import abbreviate

JUDGE = click.option("--judge", default="ensemble", show_default=True, type=click.Choice(JUDGES))


def print_eval(con: Console, res: dict) -> None:
    skipped = (
        f", {res['skipped']} with labels the judge lacks left out" if res.get("skipped") else ""
    )
    t = Table(
        title=f"judge on {res['dataset']} {res.get('split', 'test')} ({res['n']} texts{skipped})",
        box=box.SIMPLE_HEAD,
    )
    t.add_column("judge")
    t.add_column("acc", justify="right")
    t.add_column("macro-F1", justify="right")
    labels = list(next(iter(res["judges"].values()))["per_class_f1"])
    short = abbreviate(labels)
    for lab in labels:
        t.add_column(short[lab], justify="right")
    for name, s in res["judges"].items():
        t.add_row(
            name,
            f"{s['accuracy']:.3f}",
            f"{s['macro_f1']:.3f}",
            *[f"{s['per_class_f1'][lab]:.2f}" for lab in labels],
        )
    con.print(t)
    con.print(
        f"reference (MiniLM + class-weighted logistic head on 8,000 texts): "
        f"0.505 acc / 0.42 macro-F1; trained on {res['train_n']}"
    )


@hookimpl
def register_commands(cli):
    from ..progress_cli import cli_progress
    from ._common import out_json

    @cli.command()
    @click.option("--text", "texts", multiple=True, help="text(s) to classify")
    @click.option(
        "--eval",
        "eval_dataset",
        default=None,
        help="report the judge's accuracy and per-class F1 on a dataset (any name, also "
        "csv:FILE / jsonl:FILE)",
    )
    @click.option(
        "--split",
        default="test",
        show_default=True,
        type=click.Choice([*SPLITS, "all"]),
        help="which split of --eval's dataset (a file is split 70/10/20; all: every row)",
    )
    @JUDGE
    @click.option(
        "--train-limit",
        type=int,
        default=16000,
        show_default=True,
        help="texts the MiniLM head trains on (the tf-idf judge uses all)",
    )
    @click.option("--json", "as_json", is_flag=True)
    def classify(texts, eval_dataset, split, judge, train_limit, as_json):
        """The external emotion classifier: probabilities, or its accuracy on a test set."""
        from .. import classifier as clf

        if not texts and not eval_dataset:
            raise BadInput("give --text T or --eval goemotions-ekman")
        if train_limit < 50:
            raise BadInput("--train-limit must be at least 50")
        task = "goemotions" if eval_dataset == "goemotions" else "ekman"
        say = (lambda m: None) if as_json else (lambda m: click.echo(f"... {m}", err=True))
        with cli_progress(as_json) as progress:
            progress.task("judge (trained once, then cached)", 0)
            j = clf.load_judge(task, train_limit=train_limit, progress=progress, say=say)
        if eval_dataset in ("goemotions-ekman", "goemotions") and split == "test":
            res = {
                "dataset": eval_dataset,
                "split": "test",
                "n": j.scores[judge]["n"],
                "skipped": 0,
                "train_n": j.scores["train_n"],
                "judges": {k: j.scores[k] for k in clf.JUDGES},
                "accuracy": j.scores[judge]["accuracy"],
                "macro_f1": j.scores[judge]["macro_f1"],
            }
        elif eval_dataset:
            from .. import plugins

            source = plugins.get("datasets", eval_dataset)
            parts = SPLITS if split == "all" else (split,)
            examples = [ex for s in parts for ex in source.load(eval_dataset, s)]
            res = clf.evaluate_examples(examples, f"{eval_dataset} ({split})", task, train_limit)
            res["split"] = split
            res["accuracy"] = res["judges"][judge]["accuracy"]
            res["macro_f1"] = res["judges"][judge]["macro_f1"]
        if eval_dataset:
            if as_json:
                return out_json(res)
            print_eval(Console(highlight=False), res)
        if texts:
            res = clf.classify(list(texts), task, judge, train_limit)
            if as_json:
                return out_json(res)
            con = Console(highlight=False)
            t = Table(
                title=f"{judge} judge (test accuracy {res['judge_accuracy']:.3f}, "
                f"macro-F1 {res['judge_macro_f1']:.3f})",
                box=box.SIMPLE_HEAD,
            )
            t.add_column("text", max_width=40)
            short = abbreviate(res["labels"])
            for lab in res["labels"]:
                t.add_column(short[lab], justify="right")
            for r in res["results"]:
                t.add_row(
                    r["text"],
                    *[
                        (
                            f"[bold]{r['probs'][lab]:.2f}[/]"
                            if lab == r["top"]
                            else f"{r['probs'][lab]:.2f}"
                        )
                        for lab in res["labels"]
                    ],
                )
            con.print(t)
