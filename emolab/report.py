"""Rich renderings of step results for the CLI (the TUI has its own widgets)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table


def _pct(x: float) -> str:
    """Accuracy as a whole percentage: keeps a 30-layer table inside 80 columns."""
    return "-" if x != x else f"{100 * x:.0f}"


def _offdiag_mean(m: list[list[float]]) -> float:
    n = len(m)
    return sum(m[i][j] for i in range(n) for j in range(n) if i != j) / max(n * (n - 1), 1)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v == v]
    return sum(finite) / len(finite) if finite else float("nan")


def print_layers(con: Console, result: dict, method: str) -> None:
    """Per-layer accuracy (%) per emotion with its chance levels, fitting 80 columns."""
    rows = [r for r in result["rows"] if r["method"] == method]
    emotions = result["emotions"]
    summary = result["summary"][method]
    t = Table(
        title=f"held-out balanced accuracy %, {method}, emotion vs baseline",
        caption="rnd: random directions, shf: shuffled labels, 7w: nearest-direction "
        "among all classes (7wr: random, 7ws: shuffled), |v|: vector norm, |h|: residual norm",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
    )
    chance = ["rnd", "shf", "7w", "7wr", "7ws"]
    for col in ["L", *[e[:3] for e in emotions], "avg", *chance, "|v|", "|h|"]:
        t.add_column(col, justify="right", min_width=4 if col.startswith("|") else None)
    for layer in sorted({r["layer"] for r in rows}):
        mine = {r["emotion"]: r for r in rows if r["layer"] == layer}
        first = mine[emotions[0]]

        def avg(key: str, mine=mine) -> float:
            return sum(mine[e][key] for e in emotions) / len(emotions)

        t.add_row(
            str(layer),
            *[_pct(mine[e]["acc"]) for e in emotions],
            _pct(avg("acc")),
            _pct(avg("acc_random")),
            _pct(avg("acc_shuffled")),
            _pct(first["acc7"]),
            _pct(first["acc7_random"]),
            _pct(first["acc7_shuffled"]),
            f"{avg('vector_norm'):.0f}",
            f"{first['resid_norm']:.0f}",
            style="bold green" if layer == summary["peak_layer"] else None,
        )
    con.print(t)
    surface = [r["acc_surface"] for r in rows if r["layer"] == summary["peak_layer"]]
    chosen = summary.get("chosen_on", "test")
    con.print(
        f"peak layer {summary['peak_layer']} (depth {summary['peak_depth']:.2f}, chosen on "
        f"{chosen}): test accuracy {summary['peak_acc']:.3f}; 7-way {summary['peak_acc7']:.3f} "
        f"at L{summary.get('peak_layer7', summary['peak_layer'])} (chosen on {chosen}); "
        f"surface-feature baseline (length, punctuation, capitals) {_mean(surface):.3f}"
    )
    cos = result["cosines"][method][str(summary["peak_layer"])]
    c = Table(
        title=f"cosine between emotion directions at layer {summary['peak_layer']}",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
    )
    c.add_column("")
    for e in emotions:
        c.add_column(e[:3], justify="right")
    for i, e in enumerate(emotions):
        c.add_row(e, *[f"{v:+.2f}" for v in cos["direction"][i]])
    con.print(c)
    con.print(
        f"class centroids, mean off-diagonal cosine: raw {_offdiag_mean(cos['centroid_raw']):+.2f}"
        f", after mean-centring {_offdiag_mean(cos['centroid_centred']):+.2f} "
        "(the raw value is inflated by anisotropy)"
    )


def print_steer(con: Console, result: dict) -> None:
    p = result["params"]
    t = Table(
        title=f"steering toward {p['emotion']} at layer {p['layer']}, alpha {p['alpha']} "
        f"({p['scale']})",
        show_lines=True,
    )
    t.add_column("prompt", max_width=28)
    t.add_column("baseline")
    t.add_column("steered")
    for q, b, s in zip(result["prompts"], result["baseline"], result["steered"]):
        t.add_row(q, b, s)
    con.print(t)
    m = result["metrics"]
    for k, c in (result.get("choices") or {}).items():
        con.print(f"  {k} {c['value']:g} chosen on: {c['chosen_on']}")
    if "success" in m:
        rnd = m.get("success_random", float("nan"))
        con.print(
            f"  [bold]success {100 * m['success']:.0f}%[/] of {len(result['prompts'])} prompts "
            f"(top label {p['emotion']} and the text surgical); unsteered "
            f"{100 * m['success_baseline']:.0f}%, random direction "
            + ("-" if rnd != rnd else f"{100 * rnd:.0f}%")
        )
    for k, v in sorted(m.items()):
        if "/" not in k:
            con.print(f"  {k}: {v:+.3f}")
    shifts = {
        k.split("/", 1)[1]: v
        for k, v in result["metrics"].items()
        if k.startswith("label_logit_shift/")
    }
    if shifts:
        con.print(
            "  label-logit shift per emotion: "
            + ", ".join(f"{k} {v:+.2f}" for k, v in shifts.items())
        )


def _fmt(x) -> str:
    return f"{x:.6g}" if isinstance(x, (int, float)) else str(x)


def print_replay(con: Console, session, cmp) -> None:
    bad = [r for r in cmp.rows if not r["ok"]]
    metrics = [r for r in cmp.rows if not r["what"].startswith("vector ")]
    vectors = [r for r in cmp.rows if r["what"].startswith("vector ")]
    t = Table(title="replay: metrics (original vs replayed)")
    for col in ("what", "original", "replayed", "|diff|", "ok"):
        t.add_column(col)
    for r in metrics:
        t.add_row(
            r["what"],
            _fmt(r["original"]),
            _fmt(r["replayed"]),
            f"{r['diff']:.2g}",
            "yes" if r["ok"] else "[red]NO[/]",
        )
    con.print(t)
    if vectors:
        worst = max(r["diff"] for r in vectors)
        con.print(
            f"vectors: {len(vectors)} compared, max relative difference {worst:.2g}, "
            f"{sum(not r['ok'] for r in vectors)} mismatched"
        )
    con.print(f"replayed into {session.path}")
    con.print("[green]replay matches[/]" if not bad else f"[red]{len(bad)} mismatch(es)[/]")
