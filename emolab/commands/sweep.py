"""`emolab sweep`: the steering grid (and circuit modulation), thin over emolab.steps.sweep."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from types import SimpleNamespace

import click
from rich.console import Console

from ..api import PUSH_POSITIONS, PUSH_SCALES
from ..classifier import JUDGES
from ..data import EKMAN6
from ..errors import BadInput
from ..hookspecs import hookimpl
from ..report import share
from .engine_opts import engine_options, make_engine


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
            col(
                "shift",
                lambda r: (
                    "-"
                    if r["label_logit_shift"] != r["label_logit_shift"]
                    else f"{r['label_logit_shift']:+.2f}"
                ),
            ),
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
            "MiniLM and tf-idf judges' top labels agree; shift: label-logit shift ('-' under "
            "--positions generated: its list prompt is never steered); "
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


@hookimpl
def register_commands(cli):
    from ._common import assignments, assignments_option, float_list, int_list, run_step

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
        type=click.Choice(PUSH_SCALES),
        default="relative",
        show_default=True,
    )
    @click.option(
        "--positions",
        type=click.Choice(PUSH_POSITIONS),
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
            "alphas": float_list(alphas, "alpha"),
            "spans": int_list(spans, "span"),
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
            given["circuits"] = int_list(circuits, "circuit size")
            given["circuit_factors"] = float_list(circuit_factors, "circuit factor")
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
