"""`emolab classify`, `emolab sweep`, `emolab ablate`: the external judge and the causal
experiments, thin over emolab.classifier and emolab.steps."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import click
from rich import box
from rich.console import Console
from rich.table import Table

from ..api import SPLITS
from ..classifier import JUDGES
from ..data import EKMAN6
from ..errors import BadInput
from ..hookspecs import hookimpl
from ..report import abbreviate, share
from .engine_opts import engine_options, make_engine

JUDGE = click.option("--judge", default="ensemble", show_default=True, type=click.Choice(JUDGES))


def _floats(value: str, what: str) -> list[float]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise BadInput(f"{what} list is empty")
    try:
        return [float(v) for v in items]
    except ValueError:
        raise BadInput(f"bad {what} list '{value}' (use numbers, e.g. 0.1,0.3)") from None


def _ints(value: str, what: str) -> list[int]:
    nums = _floats(value, what)
    if any(not n.is_integer() for n in nums):
        raise BadInput(f"bad {what} list '{value}' (use whole numbers, e.g. 1,3)")
    return [int(n) for n in nums]


def _names(value: str | None) -> str | list[str] | None:
    """'a' -> 'a', 'a,b' -> ['a', 'b'] (several sources to compare), None -> None."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        return None
    return names[0] if len(names) == 1 else names


def _prompts_file(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"prompts file not found: {path}")
    try:
        lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text") from None
    prompts = [ln for ln in lines if ln and not ln.startswith("#")]
    if not prompts:
        raise BadInput(f"prompts file {path} is empty")
    return prompts


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


def _layers(r: dict) -> str:
    """A cell's layer, or its layer range when it steers a span."""
    span = int(r.get("span", 1))
    return str(r["layer"]) if span <= 1 else f"{r['layer']}-{r['layer'] + span - 1}"


def circuit_label(r: dict) -> str:
    """'10 heads x2' / '10 neurons x4' for a circuit row."""
    kind = "neurons" if r["intervention"].startswith("neurons-") else "heads"
    return f"{r['intervention'].split('-top')[1]} {kind} x{r['alpha']:g}"


def print_sweep(con: Console, res: dict) -> None:
    from ..report import column_of, print_wide

    j = res["judge"]
    rows = res["rows"]
    several = len(res.get("sources", ())) > 1
    number = {src["source"]: i + 1 for i, src in enumerate(res.get("sources") or [])}
    stars = [
        b
        for src in res.get("sources") or [res]
        for best in (src["best"], src["best_circuit"], src.get("best_neurons", {}))
        for b in best.values()
        if b
    ]

    def cell(r: dict) -> str:
        src = f"{number[r['source']]}: " if several else ""
        if r["intervention"] != "residual":
            return f"{src}{r['emotion']} {circuit_label(r)}"
        return f"{src}{r['emotion']} L{_layers(r)} a{r['alpha']:g}"

    col = column_of(rows)

    print_wide(
        con,
        f"steering sweep ({len(rows)} cells, {res['computed']} computed, {res['resumed']} resumed)",
        ("cell", [cell(r) for r in rows]),
        [
            col("succ dev", lambda r: share(r["success_dev"])),
            col("succ test", lambda r: share(r["success_test"])),
            col("rnd test", lambda r: share(r["success_random_test"])),
            col("P base", lambda r: f"{r['p_target_baseline']:.2f}"),
            col("P steer", lambda r: f"{r['p_target']:.2f}"),
            col("rise", lambda r: f"{r['p_target_rise']:+.2f}"),
            col("top", lambda r: f"{r['top_is_target']:.2f}"),
            col("agree", lambda r: f"{r['judge_agreement']:.2f}"),
            col("shift", lambda r: f"{r['label_logit_shift']:+.2f}"),
            col("ppl", lambda r: f"{r['perplexity_ratio']:.2f}"),
            col("d2", lambda r: f"{r['distinct2']:.2f}"),
        ],
        [col("regime", lambda r: r["regime"])],
        caption=(
            "cell: [source number:] emotion, layer L (L a-b: layers a..b, alpha split over "
            "them) and alpha a; circuit rows scale the emotion's top-k heads (or MLP neurons) "
            "x alpha; "
            f"P: the {j['name']} judge's P(target) (its test accuracy "
            f"{j['accuracy']:.3f}, macro-F1 {j['macro_f1']:.3f}); agree: share of texts where the "
            "MiniLM and tf-idf judges' top labels agree; shift: label-logit shift; "
            "top: share of texts whose top label is the target; ppl: perplexity ratio; "
            "d2: distinct-2; succ: share of scenarios whose top label is the target AND whose "
            "text stays surgical, on the dev / test prompt halves; rnd: a random direction of the "
            "same size (circuit rows: as many random units of the kind, same factor); "
            "bold: best per kind and source (listed below), chosen on dev prompts"
        ),
        row_style=lambda i: "bold green" if rows[i] in stars else None,
    )
    halves = res.get("prompt_halves", {})
    for emo, b in res["best"].items():
        if b is None:
            con.print(f"  {emo}: no residual setting in this grid")
        else:
            con.print(
                f"  {emo}: L{_layers(b)} alpha {b['alpha']:g} (chosen on "
                f"{len(halves.get('dev', []))} dev prompts): success on "
                f"{len(halves.get('test', []))} test prompts {share(b['success_test'])} "
                f"(unsteered {share(b['success_baseline_test'])}, random direction "
                f"{share(b['success_random_test'])}); P({emo}) {b['p_target_baseline']:.2f} -> "
                f"{b['p_target']:.2f}, perplexity x{b['perplexity_ratio']:.2f}"
            )
    h = res.get("headline") or {}
    if h:
        con.print(
            f"[bold]success on test prompts, mean of {h['emotions']:.0f} emotions: "
            f"{share(h['success_test'])}[/] (unsteered {share(h['success_baseline_test'])}, "
            f"random direction {share(h['success_random_test'])})"
        )
    circuits = {"heads": res["best_circuit"], "neurons": res.get("best_neurons") or {}}
    for emo in dict.fromkeys([*circuits["heads"], *circuits["neurons"]]):
        r = res["best"].get(emo)
        parts = [
            "residual best "
            + (
                f"success test {share(r['success_test'])} (random "
                f"{share(r['success_random_test'])}), P {r['p_target_rise']:+.2f}"
                if r
                else "none"
            )
        ]
        for kind, best in circuits.items():
            if emo not in best:
                continue
            b = best[emo]
            parts.append(
                f"{kind} circuit best "
                + (
                    f"success test {share(b['success_test'])} (random "
                    f"{share(b['success_random_test'])}), P {b['p_target_rise']:+.2f} "
                    f"({circuit_label(b)})"
                    if b
                    else "none"
                )
            )
        con.print(f"  {emo}: " + " | ".join(parts))
    if several:
        con.print("vector sources (src), each with its best cells chosen on the dev prompts:")
        for src in res["sources"]:
            head = src["headline"] or {}
            con.print(
                f"  {number[src['source']]} {src['source']}: success dev "
                f"{share(src['success_dev'])}, "
                f"test {share(head.get('success_test'))} (random direction "
                f"{share(head.get('success_random_test'))})"
            )
        con.print(
            f"[bold]wins on dev: {res['winner']}[/] (the per-emotion lines and the headline "
            "above are its cells; test is reported, never used to choose)"
        )
    con.print(f"csv: {res['csv']}")


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
    from ..progress_cli import cli_progress
    from ._common import assignments, assignments_option, out_json, run_step

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

    @cli.command()
    @click.argument("session_path")
    @click.option("--emotions", default=",".join(EKMAN6), show_default=True)
    @click.option("--layers", default=None, help="e.g. 10,15,20 (default: 1/3, 1/2, 2/3 depth)")
    @click.option("--alphas", default="0.15,0.3,0.5,0.75", show_default=True)
    @click.option(
        "--spans",
        default="1",
        show_default=True,
        help="layer counts: span s steers L..L+s-1 with alpha split over them, e.g. 1,3",
    )
    @click.option(
        "--scale",
        type=click.Choice(["relative", "absolute"]),
        default="relative",
        show_default=True,
    )
    @click.option(
        "--positions",
        type=click.Choice(["all", "prompt", "generated"]),
        default="all",
        show_default=True,
    )
    @click.option(
        "--prompts",
        "prompts_file",
        default=None,
        help="file with one prompt per line (default: the 20 shipped neutral prompts)",
    )
    @click.option("--max-new-tokens", type=int, default=24, show_default=True)
    @click.option(
        "--method",
        default=None,
        help="the session's vector set; several (a,b) are compared by dev success",
    )
    @click.option(
        "--vector-file",
        default=None,
        help="vector file(s) instead of the session's, e.g. other sessions' "
        "vectors-<method>.safetensors; several (comma-separated) are compared by dev success",
    )
    @click.option(
        "--circuits",
        default=None,
        help="also scale each emotion's top-k heads (from `emolab heads`), e.g. 3,10",
    )
    @click.option("--circuit-factors", default="2,4", show_default=True)
    @click.option(
        "--circuit-kind",
        "circuit_kinds",
        default="heads",
        show_default=True,
        help="which units --circuits scales: heads, neurons (from `emolab heads --neurons`) "
        "or heads,neurons",
    )
    @click.option(
        "--judge",
        default="ensemble",
        show_default=True,
        help="a registered evaluator that judges P(target), or the classifier's own judge: "
        "ensemble, minilm, tfidf",
    )
    @assignments_option("--judge-param", "a parameter of the judge evaluator")
    @click.option(
        "--intervention",
        default="residual_add",
        show_default=True,
        help="the registered intervention of the grid (it takes layer and alpha per cell)",
    )
    @assignments_option("--param", "a fixed parameter of the intervention, e.g. angle=30")
    @click.option(
        "--judge-train-limit",
        type=int,
        default=16000,
        show_default=True,
        help="texts the judge's MiniLM head trains on (cached once per value)",
    )
    @click.option(
        "--max-ratio",
        type=float,
        default=3.0,
        show_default=True,
        help="perplexity ratio above which a cell is explosive",
    )
    @click.option(
        "--min-distinct2",
        type=float,
        default=0.5,
        show_default=True,
        help="distinct-2 below which a cell is repetitive",
    )
    @engine_options
    @click.option("--json", "as_json", is_flag=True)
    def sweep(
        session_path,
        emotions,
        layers,
        alphas,
        spans,
        scale,
        positions,
        prompts_file,
        max_new_tokens,
        method,
        vector_file,
        circuits,
        circuit_factors,
        circuit_kinds,
        judge,
        judge_params,
        intervention,
        params,
        judge_train_limit,
        max_ratio,
        min_distinct2,
        ray_address,
        workers,
        batch_cells,
        as_json,
    ):
        """Steering grid emotions x layers x alphas, judged and resumable; with --circuits
        circuit modulation is judged in the same table."""
        from ..session import Session
        from ..steps import sweep as step

        given = {
            "emotions": [e.strip() for e in emotions.split(",") if e.strip()],
            "alphas": _floats(alphas, "alpha"),
            "spans": _ints(spans, "span"),
            "scale": scale,
            "positions": positions,
            "max_new_tokens": max_new_tokens,
            "method": _names(method),
            "vector_file": _names(vector_file),
            "intervention": intervention,
            "intervention_params": assignments(params, "--param"),
            "judge_params": assignments(judge_params, "--judge-param"),
            "judge_train_limit": judge_train_limit,
            "max_ratio": max_ratio,
            "min_distinct2": min_distinct2,
        }
        if judge in JUDGES:  # the classifier evaluator with that judge
            given["judge"] = judge
        else:
            given["judge_evaluator"] = judge
        if layers:
            given["layers"] = layers
        if circuits:
            given["circuits"] = _ints(circuits, "circuit size")
            given["circuit_factors"] = _floats(circuit_factors, "circuit factor")
            given["circuit_kinds"] = [k.strip() for k in circuit_kinds.split(",") if k.strip()]
        if prompts_file:
            given["prompts"] = _prompts_file(prompts_file)
        session = Session.open(session_path)
        engine = make_engine(ray_address, workers, batch_cells, session.manifest["model"]["device"])
        with_engine = SimpleNamespace(run=partial(step.run, engine=engine))
        res = run_step(with_engine, session, given, as_json)
        if res is None:
            return
        import shutil

        width = max(shutil.get_terminal_size().columns, 110)  # files and pipes get all columns
        print_sweep(Console(highlight=False, width=width), res)

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
