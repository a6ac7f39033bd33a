"""`emolab finetune`, `emolab compare`, `emolab crosslingual` and `emolab labels`:
checkpoints of one model, and one model in two languages."""

from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.table import Table

from ..data import EKMAN6
from ..hookspecs import hookimpl
from ..report import share
from .engine_opts import model_options


def _num(x, fmt: str = "+.3f") -> str:
    return "-" if x is None or x != x else format(x, fmt)


def print_finetune(con: Console, result: dict) -> None:
    con.print(
        f"[bold]{result['model']}[/] fine-tuned on {result['dataset']} "
        f"({len(result['labels'])} labels, {result['n_train']} train texts), "
        f"test accuracy on {result['n_test']} texts (chance {share(result['chance'], 1)})"
    )
    if result["resumed_from"]:
        con.print(f"resumed from step {result['resumed_from']}")
    t = Table(box=box.SIMPLE_HEAD)
    for col in ("step", "train loss", "test accuracy", "checkpoint (load as hf:<path>)"):
        t.add_column(col, justify="left" if col.startswith("checkpoint") else "right")
    for h in result["history"]:
        t.add_row(
            str(h["step"]),
            _num(h["loss"], ".3f"),
            share(h["accuracy"], 1),
            h["path"] or "(base model)",
        )
    con.print(t)
    if result["collision_note"]:
        con.print(f"[yellow]note:[/] {result['collision_note']}")


def print_compare(con: Console, result: dict) -> None:
    con.print(
        f"base [bold]{result['base']}[/], steering layer {result['layer']}, alphas "
        f"{', '.join(map(str, result['alphas']))} (relative), {result['n_texts']} neutral texts"
    )
    t = Table(
        title=f"geometry at L{result['layer']} and mean steering sensitivity",
        caption="cos: with the base vector; within: mean cosine inside an emotion (centred); "
        "|between|: mean |cos| between emotion vectors; probe: held-out accuracy vs neutral; "
        "sens: label-logit rise per alpha (own vector / base vector)",
        box=box.SIMPLE_HEAD,
    )
    for col in ("checkpoint", "test acc", "cos", "within", "|between|", "probe", "7-way"):
        t.add_column(col, justify="right")
    t.add_column("sens own", justify="right")
    t.add_column("sens base-v", justify="right")
    for r in result["summary"]:
        t.add_row(
            r["checkpoint"],
            share(r["test_accuracy"], 1),
            _num(r["cos_base"]),
            _num(r["within"]),
            _num(r["between_abs_cos"], ".3f"),
            share(r["probe_acc"], 1),
            share(r["acc7"], 1),
            _num(r["sensitivity_own"]),
            _num(r["sensitivity_base_vector"]),
        )
    con.print(t)
    s = Table(
        title="steering sensitivity per emotion (own vector | base vector)", box=box.SIMPLE_HEAD
    )
    s.add_column("emotion")
    for name in result["checkpoints"]:
        s.add_column(name, justify="right")
    s.add_column("verdict")
    steps = [r["step"] for r in result["summary"]]
    for e in result["emotions"]:
        cells = []
        for st in steps:
            own = next(
                r["slope"]
                for r in result["sensitivity"]
                if r["step"] == st and r["emotion"] == e and r["vector"] == "own"
            )
            base = next(
                r["slope"]
                for r in result["sensitivity"]
                if r["step"] == st and r["emotion"] == e and r["vector"] == "base"
            )
            cells.append(f"{own:+.2f} | {base:+.2f}" if st else f"{own:+.2f}")
        s.add_row(e, *cells, result["verdicts"][e]["verdict"])
    con.print(s)
    by: dict[str, list[str]] = {}
    for e, v in result["verdicts"].items():
        by.setdefault(v["verdict"], []).append(e)
    for verdict in ("falls", "holds", "rises", "no rise at base"):
        if verdict in by:
            con.print(f"sensitivity {verdict}: {', '.join(by[verdict])}")
    for name, note in result["collisions"].items():
        con.print(f"[yellow]note ({name}):[/] {note}")
    con.print(f"artifacts: {', '.join(result['artifacts'])}")


def print_crosslingual(con: Console, result: dict) -> None:
    con.print(
        f"[bold]{result['model']}[/]: vectors from {result['n_train']} parallel en/ja sentences, "
        f"alpha {result['alpha']} (relative), {result['n_prompts']} neutral prompts per language"
    )
    emotions = result["emotions"]
    for layer in result["layers"]:
        t = Table(
            title=f"L{layer}: target label-logit rise minus the other labels' (list prompt)",
            box=box.SIMPLE_HEAD,
        )
        t.add_column("vector -> prompt")
        for e in emotions:
            t.add_column(e[:5], justify="right")
        t.add_column("mean", justify="right")
        for target in ("en", "ja"):
            for source in ("en", "ja", "random"):
                rows = {
                    r["emotion"]: r["specific"]
                    for r in result["table"]
                    if r["layer"] == layer and r["prompt"] == target and r["vector"] == source
                }
                vals = [rows[e] for e in emotions]
                t.add_row(
                    f"{source} -> {target}",
                    *[f"{v:+.2f}" for v in vals],
                    f"{sum(vals) / len(vals):+.2f}",
                )
        con.print(t)
        for c in result["carry_over"]:
            if c["layer"] == layer:
                con.print(
                    f"  {c['direction']}: foreign {c['foreign']:+.3f} vs own {c['own']:+.3f} "
                    f"(random {c['random']:+.3f}, one random direction ±{c['random_sd']:.2f}) "
                    f"-> carries over {share(c['carry_over'], 1)}"
                )
        con.print(
            "  random rows: mean over draws; a single random direction per emotion swings by "
            "± its sd, so only rises well above that spread say something"
        )
        cos = [c for c in result["cosines"] if c["layer"] == layer]
        other = sum(c["cos_en_other_ja"] for c in cos) / len(cos)
        con.print(
            "  cos(en, ja) per emotion: "
            + ", ".join(f"{c['emotion']} {c['cos_en_ja']:+.2f}" for c in cos)
            + f" (en vs other emotions' ja: {other:+.2f})"
        )
    for lang, note in result["collisions"].items():
        con.print(f"[yellow]note ({lang}):[/] {note}")


@hookimpl
def register_commands(cli):
    from ._common import console, csv_list, out_json, run_step

    @cli.command()
    @click.option("--model", "model_name", default="smollm2-135m", show_default=True)
    @click.option("--dataset", default="goemotions-ekman", show_default=True)
    @click.option("--labels", default=None, help="comma-separated subset (default: all labels)")
    @click.option("--steps", default=200, show_default=True, type=int)
    @click.option("--save-every", default=50, show_default=True, type=int)
    @click.option("--out", "out", required=True, help="session folder; rerun to resume")
    @click.option("--batch-size", default=8, show_default=True, type=int)
    @click.option("--lr", default=3e-5, show_default=True, type=float)
    @click.option("--limit", default=300, show_default=True, type=int, help="train texts per label")
    @click.option(
        "--test-limit", default=20, show_default=True, type=int, help="test texts per label"
    )
    @click.option("--max-text-tokens", default=48, show_default=True, type=int)
    @click.option(
        "--train-layers", default="all", show_default=True, help="all, or blocks: 20-29, 5,6"
    )
    @click.option("--seed", default=0, show_default=True, type=int)
    @click.option("--device", default="cpu", show_default=True)
    @click.option("--json", "as_json", is_flag=True)
    def finetune(
        model_name,
        dataset,
        labels,
        steps,
        save_every,
        out,
        batch_size,
        lr,
        limit,
        test_limit,
        max_text_tokens,
        train_layers,
        seed,
        device,
        as_json,
    ):
        """Fine-tune a model as an emotion classifier (list prompt), saving checkpoints."""
        from ..errors import BadInput
        from ..session import Session
        from ..steps import finetune as step
        from ..steps.common import new_session

        path = Path(out)
        if (path / "manifest.json").is_file():
            session = Session.open(path)
            if session.model_name != model_name:
                raise BadInput(
                    f"{path}: fine-tune of '{session.model_name}', not '{model_name}' "
                    "(use a new --out)"
                )
        else:
            session = new_session(path, model_name, device, seed)
        params = {
            "dataset": dataset,
            "labels": csv_list(labels) if labels else None,
            "steps": steps,
            "save_every": save_every,
            "batch_size": batch_size,
            "lr": lr,
            "limit": limit,
            "test_limit": test_limit,
            "max_text_tokens": max_text_tokens,
            "train_layers": train_layers,
            "seed": seed,
        }
        result = run_step(step, session, params, as_json, with_session=True)
        if result is None:
            return
        print_finetune(console(), result)
        last = result["history"][-1]["path"]
        click.echo(
            f"next: emolab extract --model hf:{last} --session DIR (one per checkpoint, and the "
            f"base), then emolab compare BASE_SESSION CKPT_SESSION..."
        )

    @cli.command()
    @click.argument("sessions", nargs=-1, required=True)
    @click.option("--layer", type=int, default=None, help="steering layer (default: the base's)")
    @click.option("--alphas", default="0.1,0.2", show_default=True)
    @click.option("--texts", "n_texts", default=8, show_default=True, type=int)
    @click.option("--method", default=None, help="vector set (default: each session's first)")
    @click.option("--json", "as_json", is_flag=True)
    def compare(sessions, layer, alphas, n_texts, method, as_json):
        """Geometry and steering sensitivity across checkpoints: BASE CKPT1 CKPT2 ..."""
        from ..errors import BadInput
        from ..session import Session
        from ..steps import compare as step

        if len(sessions) < 2:
            raise BadInput("compare needs the base session and at least one checkpoint session")
        try:
            alpha_list = [float(a) for a in csv_list(alphas)]
        except ValueError:
            raise BadInput(f"bad --alphas '{alphas}' (use e.g. 0.1,0.2)") from None
        if n_texts < 1:
            raise BadInput("--texts must be at least 1")
        base = Session.open(sessions[0])
        params = {
            "others": [str(Path(s).resolve()) for s in sessions[1:]],
            "layer": layer,
            "alphas": alpha_list,
            "n_texts": n_texts,
            "method": method,
        }
        result = run_step(step, base, params, as_json)
        if result is None:
            return
        con = console()
        print_compare(con, result)
        con.print(result["chart"], markup=False)

    @cli.command()
    @click.option("--model", "model_name", default="gemma3-270m", show_default=True)
    @click.option("--session", "session_path", default=None, help="session folder (new)")
    @click.option("--layers", default=None, help="default: two thirds of the depth")
    @click.option("--alpha", default=0.3, show_default=True, type=float)
    @click.option("--emotions", default=",".join(EKMAN6), show_default=True)
    @click.option("--texts", default=None, help="jsonl of parallel rows: label, en, ja, split")
    @click.option("--prompts", "n_prompts", default=8, show_default=True, type=int)
    @click.option(
        "--position", type=click.Choice(["mean", "last"]), default="mean", show_default=True
    )
    @click.option("--random-draws", default=8, show_default=True, type=int)
    @model_options
    @click.option("--json", "as_json", is_flag=True)
    def crosslingual(
        model_name,
        session_path,
        layers,
        alpha,
        emotions,
        texts,
        n_prompts,
        position,
        random_draws,
        device,
        dtype,
        as_json,
    ):
        """Steer English prompts with Japanese-text vectors and the reverse."""
        from ..errors import BadInput
        from ..steps import crosslingual as step
        from ..steps.common import new_session
        from ._common import default_session_path

        if n_prompts < 1:
            raise BadInput("--prompts must be at least 1")
        if random_draws < 1:
            raise BadInput("--random-draws must be at least 1")
        path = Path(session_path) if session_path else default_session_path(model_name)
        session = new_session(path, model_name, device, dtype=dtype)
        params = {
            "emotions": csv_list(emotions),
            "layers": layers,
            "alpha": alpha,
            "texts": texts,
            "n_prompts": n_prompts,
            "position": position,
            "random_draws": random_draws,
        }
        result = run_step(step, session, params, as_json, with_session=True)
        if result is None:
            return
        click.echo(f"session: {session.path}")
        print_crosslingual(console(), result)

    @cli.command()
    @click.option("--model", "model_name", default="smollm2-135m", show_default=True)
    @click.option("--lang", default="en", show_default=True, type=click.Choice(["en", "ja"]))
    @click.option(
        "--labels",
        default=",".join([*EKMAN6, "neutral"]),
        show_default=True,
        help="English label names (translated for --lang ja)",
    )
    @click.option("--json", "as_json", is_flag=True)
    def labels(model_name, lang, labels, as_json):
        """Each label's first token in a model's tokenizer, and labels that share one."""
        from ..labels import resolve
        from ..plugins import load_model as load

        model = load(model_name)
        tokens = resolve(model.tokenizer, csv_list(labels), lang, model.name)
        if as_json:
            return out_json({"model": model.name, "lang": lang, **tokens.as_dict()})
        t = Table(title=f"{model.name}: first label tokens ({lang})", box=box.SIMPLE_HEAD)
        for col in ("label", "written", "first token", "id"):
            t.add_column(col)
        for label in tokens.labels:
            t.add_row(
                label, tokens.names[label], repr(tokens.tokens[label]), str(tokens.ids[label])
            )
        con = console()
        con.print(t)
        con.print(tokens.collision_note() or "every label has its own first token")
