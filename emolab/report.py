"""Rich renderings of step results for the CLI (the TUI has its own widgets).

Tables must stay readable at 80 columns: emotion headers are abbreviated to the shortest
unique prefix of at least three letters ("ang", "dis", "disa"/"disg" when both occur),
columns are one space apart, and a table with more emotion columns than the terminal holds
is printed in blocks of emotions, never squeezed into one-letter ellipses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich import box
from rich.console import Console
from rich.table import Table


def _norm(x: float) -> str:
    """A norm in as few characters as keep it informative (0.12, 3.4, 57, 1234)."""
    return "-" if x != x else f"{x:.0f}" if abs(x) >= 10 else f"{x:.2g}"


def _pct(x: float) -> str:
    """Accuracy as a whole percentage: keeps a 30-layer table inside 80 columns."""
    return "-" if x != x else f"{100 * x:.0f}"


def share(x, digits: int = 0) -> str:
    """A rate as a percentage with its sign ("75%"); "-" when missing or NaN."""
    return "-" if x is None or x != x else f"{100 * float(x):.{digits}f}%"


def _offdiag_mean(m: list[list[float]]) -> float:
    n = len(m)
    return sum(m[i][j] for i in range(n) for j in range(n) if i != j) / max(n * (n - 1), 1)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v == v]
    return sum(finite) / len(finite) if finite else float("nan")


def abbreviate(names: Sequence[str], least: int = 3) -> dict[str, str]:
    """Each name's shortest prefix of at least `least` letters that no other name starts
    with (a name that is a prefix of another keeps its full length)."""
    out = {}
    for name in names:
        others = [o for o in names if o != name]
        k = min(least, len(name))
        while k < len(name) and any(o.startswith(name[:k]) for o in others):
            k += 1
        out[name] = name[:k]
    return out


def blocks(widths: Sequence[int], room: int) -> list[range]:
    """Consecutive column blocks whose widths (plus one space each) fit into `room`."""
    out, start, used = [], 0, 0
    for i, w in enumerate(widths):
        if i > start and used + w + 1 > room:
            out.append(range(start, i))
            start, used = i, 0
        used += w + 1
    out.append(range(start, len(widths)))
    return out


def tight_table(**kw) -> Table:
    """A table whose columns are one space apart (no cell padding)."""
    return Table(box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False, collapse_padding=True, **kw)


Column = tuple[str, list[str]]  # (header, cells)


def column_of(rows: Sequence) -> Callable[[str, Callable], Column]:
    """`col(header, fmt)`: the `print_wide` column of `fmt(row)` for each of `rows`."""

    def col(header: str, fmt: Callable) -> Column:
        return header, [fmt(r) for r in rows]

    return col


def _width(col: Column) -> int:
    return max(len(col[0]), *(len(c) for c in col[1]))


def print_wide(
    con: Console,
    title: str,
    lead: Column,
    wide: Sequence[Column],
    tail: Sequence[Column] = (),
    caption: str | None = None,
    row_style: Callable[[int], str | None] = lambda i: None,
) -> None:
    """Print `lead`, `wide` and `tail` columns as one table when they fit the console;
    otherwise `wide` in blocks (each with `lead` first), `tail` after the last block (or
    in one of its own). The caption is printed under the last table, wrapped to the
    console's width rather than the table's."""
    room = con.width - _width(lead) - 1
    tail_w = sum(_width(c) + 1 for c in tail)
    widths = [_width(c) for c in wide]
    if sum(w + 1 for w in widths) + tail_w <= room:
        tables = [[*wide, *tail]]
    else:
        tables = [[wide[i] for i in part] for part in blocks(widths, room)]
        if sum(_width(c) + 1 for c in tables[-1]) + tail_w <= room:
            tables[-1] += tail
        elif tail:
            tables.append(list(tail))
    for n, cols in enumerate(tables):
        last = n == len(tables) - 1
        suffix = f" ({n + 1}/{len(tables)})" if len(tables) > 1 else ""
        t = tight_table(title=title + suffix)
        t.add_column(lead[0], no_wrap=True)
        for header, _ in cols:
            t.add_column(header, justify="right", no_wrap=True)
        for i, cell in enumerate(lead[1]):
            t.add_row(cell, *[cells[i] for _, cells in cols], style=row_style(i))
        con.print(t)
        if last and caption:
            con.print(caption, style="dim")


def print_joint_probe(con: Console, result: dict) -> None:
    """The joint 7-way probe's line under the layer table, when the step fitted it."""
    probe = result.get("joint_probe")
    if not probe:
        return
    con.print(
        f"joint {probe['classes']}-way logistic probe (one per layer, C and layer chosen on "
        f"{probe['chosen_on']}): test balanced accuracy {probe['peak_acc7_probe']:.3f} at "
        f"L{probe['peak_layer']} (C {probe['C']:g}; shuffled labels "
        f"{probe['peak_acc7_probe_shuffled']:.3f})"
    )


def print_layers(con: Console, result: dict, method: str) -> None:
    """Per-layer accuracy (%) per emotion with its chance levels, fitting 80 columns."""
    rows = [r for r in result["rows"] if r["method"] == method]
    emotions = result["emotions"]
    summary = result["summary"][method]
    short = abbreviate(emotions)
    layers = sorted({r["layer"] for r in rows})
    by = {(r["layer"], r["emotion"]): r for r in rows}

    def avg(layer: int, key: str) -> float:
        return sum(by[layer, e][key] for e in emotions) / len(emotions)

    def first(layer: int, key: str) -> float:
        return by[layer, emotions[0]][key]

    col = column_of(layers)
    tail = [
        col("avg", lambda L: _pct(avg(L, "acc"))),
        col("rnd", lambda L: _pct(avg(L, "acc_random"))),
        col("shf", lambda L: _pct(avg(L, "acc_shuffled"))),
        col("7w", lambda L: _pct(first(L, "acc7"))),
        col("7wr", lambda L: _pct(first(L, "acc7_random"))),
        col("7ws", lambda L: _pct(first(L, "acc7_shuffled"))),
        col(" |v|", lambda L: _norm(avg(L, "vector_norm"))),
        col(" |h|", lambda L: _norm(first(L, "resid_norm"))),
    ]
    legend = ", ".join(f"{a}: {e}" for e, a in short.items() if a != e)
    print_wide(
        con,
        f"held-out balanced accuracy %, {method}, emotion vs baseline",
        col("L", str),
        [col(short[e], lambda L, e=e: _pct(by[L, e]["acc"])) for e in emotions],
        tail,
        caption=(legend + "; " if legend else "")
        + "rnd: random directions, shf: shuffled labels, 7w: nearest-direction among all "
        "classes (7wr: random, 7ws: shuffled), |v|: vector norm, |h|: residual norm",
        row_style=lambda i: "bold green" if layers[i] == summary["peak_layer"] else None,
    )
    surface = [r["acc_surface"] for r in rows if r["layer"] == summary["peak_layer"]]
    chosen = summary.get("chosen_on", "test")
    con.print(
        f"peak layer {summary['peak_layer']} (depth {summary['peak_depth']:.2f}, chosen on "
        f"{chosen}): test accuracy {summary['peak_acc']:.3f}; 7-way {summary['peak_acc7']:.3f} "
        f"at L{summary.get('peak_layer7', summary['peak_layer'])} (chosen on {chosen}); "
        f"surface-feature baseline (length, punctuation, capitals) {_mean(surface):.3f}"
    )
    cos = result["cosines"][method][str(summary["peak_layer"])]
    print_wide(
        con,
        f"cosine between emotion directions at layer {summary['peak_layer']}",
        ("", list(emotions)),
        [
            (short[e], [f"{v:+.2f}" for v in (row[j] for row in cos["direction"])])
            for j, e in enumerate(emotions)
        ],
    )
    con.print(
        f"class centroids, mean off-diagonal cosine: raw {_offdiag_mean(cos['centroid_raw']):+.2f}"
        f", after mean-centring {_offdiag_mean(cos['centroid_centred']):+.2f} "
        "(the raw value is inflated by anisotropy)"
    )


def print_steer(con: Console, result: dict) -> None:
    p = result["params"]
    span = int(p.get("span") or 1)
    where = f"layer {p['layer']}" if span == 1 else f"layers {p['layer']}-{p['layer'] + span - 1}"
    circuit = result.get("circuit_units")
    how = (
        f"by scaling its top {p['circuit']} {circuit['kind']} x{p['circuit_factor']:g} "
        f"({circuit.get(circuit['kind'])})"
        if circuit
        else f"at {where}, alpha {p['alpha']} "
        f"({p['scale']}{', split over the layers' if span > 1 else ''})"
    )
    t = Table(title=f"steering toward {p['emotion']} {how}", show_lines=True)
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
            f"  [bold]success {100 * m['success']:.0f}%[/] of "
            f"{len(result['prompts'])} prompts "
            f"(top label {p['emotion']} and the text surgical); unsteered "
            f"{100 * m['success_baseline']:.0f}%, "
            + (f"random circuit ({circuit['random']}) " if circuit else "random direction ")
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
            r["what"] + (f" ({r['note']})" if r.get("note") else ""),
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
