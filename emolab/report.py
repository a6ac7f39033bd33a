"""Rich renderings of step results for the CLI (the TUI has its own widgets)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _pct(x: float) -> str:
    return "-" if x != x else f"{x:.2f}"


def print_layers(con: Console, result: dict, method: str) -> None:
    rows = [r for r in result["rows"] if r["method"] == method]
    emotions = result["emotions"]
    summary = result["summary"][method]
    t = Table(title=f"held-out balanced accuracy, {method} (emotion vs baseline)")
    for col in ["layer", "depth", *[e[:4] for e in emotions], "mean", "random", "shuffled", "7-way", "7-way rnd",
                "|v|", "|h|"]:
        t.add_column(col, justify="right")
    layers = sorted({r["layer"] for r in rows})
    for layer in layers:
        mine = {r["emotion"]: r for r in rows if r["layer"] == layer}
        first = mine[emotions[0]]
        mean = sum(mine[e]["acc"] for e in emotions) / len(emotions)
        cells = [str(layer), f"{first['depth']:.2f}", *[_pct(mine[e]["acc"]) for e in emotions],
                 _pct(mean),
                 _pct(sum(mine[e]["acc_random"] for e in emotions) / len(emotions)),
                 _pct(sum(mine[e]["acc_shuffled"] for e in emotions) / len(emotions)),
                 _pct(first["acc7"]), _pct(first["acc7_random"]),
                 f"{sum(mine[e]['vector_norm'] for e in emotions) / len(emotions):.1f}",
                 f"{first['resid_norm']:.1f}"]
        style = "bold green" if layer == summary["peak_layer"] else None
        t.add_row(*cells, style=style)
    con.print(t)
    con.print(f"peak layer {summary['peak_layer']} (depth {summary['peak_depth']:.2f}): "
              f"mean accuracy {summary['peak_acc']:.3f}, best 7-way {summary['peak_acc7']:.3f}")
    cos = result["cosines"][method][str(summary["peak_layer"])]
    c = Table(title=f"cosine between emotions at layer {summary['peak_layer']} "
                    "(directions | centroids raw | centroids mean-centred)")
    c.add_column("")
    for e in emotions:
        c.add_column(e[:5], justify="right")
    for i, e in enumerate(emotions):
        c.add_row(e, *[f"{cos['direction'][i][j]:+.2f} {cos['centroid_raw'][i][j]:+.2f} "
                       f"{cos['centroid_centred'][i][j]:+.2f}" for j in range(len(emotions))])
    con.print(c)


def print_steer(con: Console, result: dict) -> None:
    p = result["params"]
    t = Table(title=f"steering toward {p['emotion']} at layer {p['layer']}, alpha {p['alpha']} "
                    f"({p['scale']})", show_lines=True)
    t.add_column("prompt", max_width=28)
    t.add_column("baseline")
    t.add_column("steered")
    for q, b, s in zip(result["prompts"], result["baseline"], result["steered"]):
        t.add_row(q, b, s)
    con.print(t)
    for k, v in sorted(result["metrics"].items()):
        if "/" not in k:
            con.print(f"  {k}: {v:+.3f}")
    shifts = {k.split("/", 1)[1]: v for k, v in result["metrics"].items()
              if k.startswith("label_logit_shift/")}
    if shifts:
        con.print("  label-logit shift per emotion: "
                  + ", ".join(f"{k} {v:+.2f}" for k, v in shifts.items()))


def print_replay(con: Console, session, cmp) -> None:
    bad = [r for r in cmp.rows if not r["ok"]]
    metrics = [r for r in cmp.rows if not r["what"].startswith("vector ")]
    vectors = [r for r in cmp.rows if r["what"].startswith("vector ")]
    t = Table(title="replay: metrics (original vs replayed)")
    for col in ("what", "original", "replayed", "|diff|", "ok"):
        t.add_column(col)
    for r in metrics:
        fmt = (lambda x: f"{x:.6g}" if isinstance(x, (int, float)) else str(x))
        t.add_row(r["what"], fmt(r["original"]), fmt(r["replayed"]), f"{r['diff']:.2g}",
                  "yes" if r["ok"] else "[red]NO[/]")
    con.print(t)
    if vectors:
        worst = max(r["diff"] for r in vectors)
        con.print(f"vectors: {len(vectors)} compared, max relative difference {worst:.2g}, "
                  f"{sum(not r['ok'] for r in vectors)} mismatched")
    con.print(f"replayed into {session.path}")
    con.print("[green]replay matches[/]" if not bad else f"[red]{len(bad)} mismatch(es)[/]")
