"""`emolab heads` (head / neuron maps) and `emolab align` (cross-model alignment)."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..hookspecs import hookimpl


def _fmt(x) -> str:
    return "-" if x is None or x != x else f"{x:+.3f}"


def print_heads(con: Console, result: dict) -> None:
    con.print(
        f"[bold]{result['emotion']}[/]: metric {result['metric']} "
        f"(layer {result['layer']}), {result['n_texts']} texts, clean value "
        f"{result['clean_metric']:.3f}"
    )
    for method, m in result["maps"].items():
        t = Table(title=f"top heads by {method} (effect = clean - patched to neutral mean)")
        for col in ("rank", "head", "effect"):
            t.add_column(col, justify="right")
        for i, row in enumerate(m["top"], 1):
            t.add_row(str(i), f"L{row['layer']}H{row['unit']}", _fmt(row["effect"]))
        con.print(t)
        line = f"  {method}: {result['seconds'][method]:.2f} s"
        if "checked" in m:
            line += f", {len(m['checked'])} heads checked by exact ablation"
        con.print(line)
    for method, c in result.get("compare", {}).items():
        con.print(
            f"Spearman {method} vs ablation: all {c['n_heads']} heads "
            f"{c['spearman_all']:+.3f}, top {c['top_k']} by |exact| {c['spearman_top']:+.3f} "
            f"(same sign {c['sign_agreement_top']:.0%}); {c['speedup']:.1f}x faster"
        )
    att = result["attention"]
    if att["flagged"]:
        con.print(
            "heads attending from the final position to comma / clause-end tokens: "
            + ", ".join(
                f"L{f['layer']}H{f['head']} ({f['mass']:.2f}, {f['ratio']:.1f}x)"
                for f in att["flagged"][:10]
            )
        )
    else:
        con.print(
            f"no head puts >= {att['mass_min']:.2f} of its final-position attention on "
            f"comma / clause-end tokens ({att['texts_with_summary_tokens']} texts had some)"
        )
    if "verify" in result:
        v = result["verify"]
        t = Table(title=f"top {len(v['heads'])} heads by |attribution|, checked by exact ablation")
        for col in ("head", "attribution", "exact"):
            t.add_column(col, justify="right")
        for u, x, y in zip(v["heads"], v["attribution"], v["exact"], strict=True):
            t.add_row(f"L{u['layer']}H{u['unit']}", _fmt(x), _fmt(y))
        con.print(t)
        con.print(
            f"  Spearman on these heads {v['spearman']:+.3f}, same sign "
            f"{v['sign_agreement']:.0%}, exact check {v['seconds']:.1f} s"
        )
    if "enhance" in result:
        print_enhance(con, result["enhance"], "heads", "H", result)
        print_circuit(con, result["enhance"]["circuit"], result["metric"])
    if "neurons" in result:
        t = Table(title="top MLP neurons by ablation (attribution, exact check)")
        for col in ("neuron", "attribution", "exact"):
            t.add_column(col, justify="right")
        for row in result["neurons"]["top"]:
            t.add_row(f"L{row['layer']}N{row['unit']}", _fmt(row["effect"]), _fmt(row["exact"]))
        con.print(t)
        if "enhance" in result["neurons"]:
            print_enhance(con, result["neurons"]["enhance"], "MLP neurons", "N", result)
            print_circuit(con, result["neurons"]["enhance"]["circuit"], result["metric"])


def print_circuit(con: Console, c: dict, metric: str) -> None:
    """The circuit `steer --circuit` would scale (heads, or neurons), measured on neutral
    texts: each unit's and the whole circuit's readout shift beside the emotion - neutral
    gap it would have to close."""
    kind = c.get("kind", "heads")
    if not c["per_unit"]:
        con.print(f"no {kind[:-1]} raises the readout in the {c['map']} map: no circuit to scale")
        return
    t = Table(
        title=f"circuit: top {len(c['per_unit'])} {kind} of the {c['map']} map "
        f"x{c['factor']:g} on {c['texts']} texts"
    )
    for col in (kind[:-1], f"{metric} shift"):
        t.add_column(col, justify="right")
    letter = "H" if kind == "heads" else "N"
    for row in c["per_unit"]:
        t.add_row(f"L{row['layer']}{letter}{row['unit']}", _fmt(row["exact"]))
    t.add_row("all together", _fmt(c["joint"]))
    con.print(t)
    if c["gap"] > 0:
        con.print(
            f"  the emotion texts read {c['gap']:+.3f} above the neutral ones: the circuit "
            f"closes {c['joint'] / c['gap']:.0%} of that gap"
        )
    else:
        con.print(
            f"  the emotion texts read {c['gap']:+.3f} against the neutral ones: this readout "
            "does not separate them, so it cannot judge a circuit"
        )


def print_enhance(con: Console, e: dict, what: str, letter: str, result: dict) -> None:
    """Units ranked by what scaling them does to the metric: the column that says whether
    circuit modulation can move the readout at all (beside the clean value)."""
    t = Table(
        title=f"top {what} by enhancement x{e['factor']:g} (effect = scaled - clean; "
        f"clean {result['metric']} {result['clean_metric']:.3f})"
    )
    for col in ("unit", "first order", "exact"):
        t.add_column(col, justify="right")
    for row in e["top"]:
        t.add_row(f"L{row['layer']}{letter}{row['unit']}", _fmt(row["effect"]), _fmt(row["exact"]))
    con.print(t)


def print_align(con: Console, result: dict) -> None:
    con.print(
        f"[bold]{result['model_a']}[/] L{result['layer_a']} ({result['d_a']}-d) vs "
        f"[bold]{result['model_b']}[/] L{result['layer_b']} ({result['d_b']}-d); "
        f"{result['n_train']} train / {result['n_test']} held-out texts"
    )
    if result["raw_cosine"] is not None:
        con.print(
            "raw cosine of emotion vectors: "
            + ", ".join(f"{e} {v:+.2f}" for e, v in result["raw_cosine"].items())
        )
    con.print(f"[dim]{result['raw_cosine_note']}[/]")
    share = result["top_dim_variance_share"]
    con.print(
        f"largest single dimension's share of the variance: A {share['a']:.0%}, "
        f"B {share['b']:.0%}; "
        + (result["standardize_note"] if result["standardized"] else "raw features (--raw)")
    )
    t = Table(title="alignment scores vs permutation baselines (shuffled text pairing)")
    for col in ("method", "score", "value", "baseline (mean ± sd)", "p"):
        t.add_column(col, justify="right" if col not in ("method", "score") else "left")
    for method, out in result["methods"].items():
        for key, val in out.items():
            if isinstance(val, dict) and "score" in val:
                t.add_row(
                    method,
                    key,
                    f"{val['score']:.3f}",
                    f"{val['baseline_mean']:.3f} ± {val['baseline_sd']:.3f}",
                    f"{val['p_value']:.3g}",
                )
        for key in out.get("not_available", {}):
            t.add_row(method, key, "n/a", "-", "")
    con.print(t)
    for method, out in result["methods"].items():
        con.print(f"[dim]{method}: scored on {out['scored_on']}[/]")
        for key, why in out.get("not_available", {}).items():
            con.print(f"[dim]{method}: {key} n/a ({why})[/]")
        if "mapped_vector_cos_by_emotion" in out:
            ceiling = out["mapped_vector_cos_ceiling"]
            con.print(
                f"{method}: mapped vector cosine per emotion (ceiling): "
                + ", ".join(
                    f"{e} {v:+.2f} ({ceiling[e]:.2f})"
                    for e, v in out["mapped_vector_cos_by_emotion"].items()
                )
            )
    best = result["cka_layers"]["best_b_for_a"]
    con.print(
        "best-matching B layer (CKA) for each A layer: "
        + " ".join(f"{a}->{b}" for a, b in best.items())
    )
    tr = result.get("transfer")
    if tr:
        t = Table(
            title=f"transfer steering of B at L{tr['layer_b']}, alpha {tr['alpha']} "
            f"(map: {tr['aligner']}, judge: {tr['judge']})"
        )
        keys = sorted({k.split("/", 1)[1] for k in tr["metrics"]})
        t.add_column("vector")
        for k in keys:
            t.add_column(k, justify="right")
        for kind in ("mapped", "own", "random"):
            t.add_row(kind, *[_fmt(tr["metrics"].get(f"{kind}/{k}")) for k in keys])
        con.print(t)


def aligner_params(pairs, method: str) -> dict[str, dict[str, str]]:
    """`--param` values by aligner: `ridge.alpha=10` names its aligner; a bare `alpha=10`
    belongs to the one aligner of `--method` (values stay strings: the aligner's declared
    parameters type and check them)."""
    from ..errors import BadInput
    from ._common import assignments

    names = [m.strip() for m in method.split(",") if m.strip()]
    out: dict[str, dict[str, str]] = {}
    for key, value in assignments(pairs, "--param").items():
        name, dot, param = key.rpartition(".")
        if not dot:
            if len(names) != 1 or names == ["all"]:
                raise BadInput(
                    f"--param {key}: name its aligner (ALIGNER.KEY=VALUE, e.g. ridge.alpha=10) "
                    "when --method is not exactly one aligner"
                )
            name, param = names[0], key
        out.setdefault(name, {})[param] = value
    return out


@hookimpl
def register_commands(cli):
    from ._common import assignments_option, console, run_step

    @cli.command()
    @click.argument("session_path")
    @click.option("--emotion", required=True)
    @click.option(
        "--method",
        type=click.Choice(["attribution", "checked", "ablation"]),
        default="attribution",
        show_default=True,
        help="checked: attribution with its least trustworthy heads re-ablated exactly",
    )
    @click.option(
        "--metric",
        type=click.Choice(["projection", "label_logit"]),
        default="projection",
        show_default=True,
    )
    @click.option(
        "--layer",
        type=int,
        default=None,
        help="readout layer for projection (default: the session's steering layer)",
    )
    @click.option(
        "--compare", is_flag=True, help="run every method and rank-correlate each with ablation"
    )
    @click.option(
        "--checks",
        type=int,
        default=None,
        help="heads the checked method re-ablates exactly (default: 1 per 60 heads)",
    )
    @click.option(
        "--enhance",
        type=float,
        default=None,
        help="also rank heads (and --neurons) by scaling their output by this factor",
    )
    @click.option("--neurons", is_flag=True, help="also map MLP neurons (attribution + check)")
    @click.option("--texts", "n_texts", type=int, default=8, show_default=True)
    @click.option("--top-k", type=int, default=10, show_default=True)
    @click.option(
        "--verify",
        type=int,
        default=0,
        show_default=True,
        help="exact ablation of the top-K heads by |attribution| (a cheap check)",
    )
    @click.option("--batch-size", type=int, default=8, show_default=True)
    @click.option("--json", "as_json", is_flag=True)
    def heads(
        session_path,
        emotion,
        method,
        metric,
        layer,
        compare,
        checks,
        enhance,
        neurons,
        n_texts,
        top_k,
        verify,
        batch_size,
        as_json,
    ):
        """Which attention heads (and MLP neurons) write an emotion."""
        from ..session import Session
        from ..steps import heads as step

        session = Session.open(session_path)
        params = {
            "emotion": emotion,
            "method": method,
            "metric": metric,
            "layer": layer,
            "compare": compare,
            "checks": checks,
            "enhance": enhance,
            "neurons": neurons,
            "n_texts": n_texts,
            "top_k": top_k,
            "verify": verify,
            "batch_size": batch_size,
        }
        result = run_step(step, session, params, as_json)
        if result is not None:
            print_heads(console(), result)

    @cli.command()
    @click.argument("session_a")
    @click.argument("session_b")
    @click.option(
        "--method",
        default="all",
        show_default=True,
        help="registered aligners, comma-separated (see `emolab plugins`), or all",
    )
    @assignments_option(
        "--param",
        "a parameter of an aligner: KEY=VALUE with one --method, else ALIGNER.KEY=VALUE "
        "(e.g. --param ridge.alpha=10)",
    )
    @click.option("--layer-a", type=int, default=None, help="default: A's steering layer")
    @click.option("--layer-b", type=int, default=None, help="default: B's steering layer")
    @click.option(
        "--dim",
        type=int,
        default=32,
        show_default=True,
        help="PCA dimension of the aligners that declare `dim` (procrustes, cca)",
    )
    @click.option(
        "--draws", type=int, default=200, show_default=True, help="permutation draws per baseline"
    )
    @click.option(
        "--standardize/--raw",
        default=True,
        show_default=True,
        help="z-score each feature first (massive-activation dimensions dominate raw scores)",
    )
    @click.option("--transfer", is_flag=True, help="steer B with A's mapped vector (loads model B)")
    @click.option(
        "--transfer-aligner",
        default="procrustes",
        show_default=True,
        help="the aligner whose direction map carries A's vector for --transfer",
    )
    @click.option("--alpha", "transfer_alpha", type=float, default=0.3, show_default=True)
    @click.option(
        "--prompts",
        "transfer_prompts",
        type=int,
        default=4,
        show_default=True,
        help="neutral prompts for --transfer",
    )
    @click.option(
        "--judge",
        "transfer_judge",
        default="auto",
        show_default=True,
        help="evaluator for --transfer (auto: classifier when installed)",
    )
    @click.option("--json", "as_json", is_flag=True)
    def align(
        session_a,
        session_b,
        method,
        params,
        layer_a,
        layer_b,
        dim,
        draws,
        standardize,
        transfer,
        transfer_aligner,
        transfer_alpha,
        transfer_prompts,
        transfer_judge,
        as_json,
    ):
        """Compare two models' emotion geometry on the same texts (logged in SESSION_A)."""
        from ..session import Session
        from ..steps import align as step

        session = Session.open(session_a)
        step_params = {
            "session_b": session_b,
            "method": method,
            "layer_a": layer_a,
            "layer_b": layer_b,
            "dim": dim,
            "draws": draws,
            "standardize": standardize,
            "transfer": transfer,
            "transfer_aligner": transfer_aligner,
            "transfer_alpha": transfer_alpha,
            "transfer_prompts": transfer_prompts,
            "transfer_judge": transfer_judge,
            "aligner_params": aligner_params(params, method),
        }
        result = run_step(step, session, step_params, as_json)
        if result is not None:
            print_align(console(), result)
