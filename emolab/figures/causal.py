"""Causal figures: the layer x head map of a `heads` step and the steering grid of a
`sweep` step (success / P(target) per layer and alpha, with the regime of every cell)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .style import COLUMN_IN, DIVERGING, SEQUENTIAL, WIDE_IN, figure

METRIC_UNITS = {
    "projection": "projection on the emotion direction",
    "label_logit": "label-token logit",
}
REGIME_MARK = {"surgical": "", "repetitive": "R", "explosive": "E"}


def head_map(data: dict, label_top: int = 5) -> Figure:
    """Effect of each head (clean minus patched to the neutral mean) on the step's metric,
    diverging colours centred at 0, the `label_top` heads of largest |effect| outlined with
    their rank, and the ranked heads with their effect listed under the axis."""
    maps = data["maps"]
    method = "ablation" if "ablation" in maps else next(iter(maps))
    mat = np.asarray(maps[method]["matrix"], dtype=float)
    n_layers, n_heads = mat.shape
    fig, ax = figure(COLUMN_IN, max(2.2, 0.12 * n_layers + 1.0))
    lim = float(np.nanmax(np.abs(mat))) if np.isfinite(mat).any() else 1.0
    lim = lim or 1.0
    im = ax.imshow(mat, cmap=DIVERGING, vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
    ax.set_ylabel("layer")
    ax.set_xticks(range(0, n_heads, max(1, n_heads // 8)))
    ax.set_yticks(range(0, n_layers, max(1, n_layers // 10)))
    rows = np.flatnonzero(np.isfinite(mat).any(axis=1))
    if rows.size:  # heads after the readout layer cannot move it and are not mapped
        ax.set_ylim(rows[-1] + 0.5, -0.5)
    flat = np.nan_to_num(np.abs(mat), nan=-1.0).ravel()
    order = [int(i) for i in np.argsort(-flat)[:label_top] if flat[i] > 0]
    key = []
    for rank, i in enumerate(order, 1):
        L, h = np.unravel_index(i, mat.shape)
        ax.add_patch(Rectangle((h - 0.5, L - 0.5), 1, 1, fill=False, ec="black", lw=0.8))
        # the rank inside its own cell: labels beside the cell collide for adjacent heads
        ax.text(h, L, str(rank), ha="center", va="center", fontsize=5.5, fontweight="bold",
                color="white" if abs(mat[L, h]) > 0.6 * lim else "black")  # fmt: skip
        key.append(f"{rank}: L{L}H{h} {mat[L, h]:+.2f}")
    lines = [", ".join(key[j : j + 3]) for j in range(0, len(key), 3)]
    ax.set_xlabel("\n".join(["head", *lines]))
    what = METRIC_UNITS.get(data["metric"], data["metric"])
    fig.colorbar(im, ax=ax, label=f"effect on {what}\n(clean − patched; 0 = none)")
    ax.set_title(
        f"Heads writing {data['emotion']} ({method}, readout layer {data['layer']}, "
        f"{data['n_texts']} texts)"
    )
    ax.spines[:].set_visible(False)
    return fig


def sweep_value(rows: list[dict]) -> tuple[str, str]:
    """The column the grid shows: the success rate when the sweep recorded one, else the
    judge's mean P(target)."""
    if rows and "success_rate" in rows[0]:
        return "success_rate", "success rate (share of texts judged the target)"
    return "p_target", "judge's P(target emotion)"


def sweep_grid(
    rows: list[dict],
    judge: str = "",
    chosen: dict[str, tuple[int, int, float]] | None = None,
    source: str | None = None,
) -> Figure:
    """One panel per emotion: layer (or layer range, for spans) x alpha, the colour the
    success rate or P(target), the chance level (the unsteered baseline) in the colour bar,
    non-surgical cells lettered (R repetitive, E explosive). Outlined: the cell the sweep
    chose on its dev prompts (`chosen`: emotion -> (layer, span, alpha)); a sweep logged
    without choices gets its best surgical cell outlined instead. One vector source per
    figure: `source` (the dev winner), else the first."""
    rows = [r for r in rows if r.get("intervention", "residual") == "residual"]
    first = rows[0].get("source", "") if rows else ""
    shown = source if any(r.get("source", "") == source for r in rows) else first
    rows = [r for r in rows if r.get("source", "") == shown]
    key, label = sweep_value(rows)
    emotions = list(dict.fromkeys(r["emotion"] for r in rows))
    ncols = min(3, len(emotions))
    nrows = -(-len(emotions) // ncols)
    # a row per steered layer range: (first layer, span); span 1 is the layer alone
    layers = sorted({(int(r["layer"]), int(r.get("span", 1))) for r in rows})
    alphas = sorted({float(r["alpha"]) for r in rows})
    width = COLUMN_IN if ncols == 1 else WIDE_IN
    fig, axes = figure(
        width, 0.35 * len(layers) * nrows + 1.3 * nrows + 0.4, nrows=nrows, ncols=ncols,
        squeeze=False,
    )  # fmt: skip
    im = None
    for k, emo in enumerate(emotions):
        ax = axes[k // ncols][k % ncols]
        grid = np.full((len(layers), len(alphas)), np.nan)
        marks: dict[tuple[int, int], str] = {}
        best, best_val = None, -np.inf
        base = []
        for r in rows:
            if r["emotion"] != emo:
                continue
            i = layers.index((int(r["layer"]), int(r.get("span", 1))))
            j = alphas.index(float(r["alpha"]))
            grid[i, j] = float(r[key])
            marks[(i, j)] = REGIME_MARK.get(r["regime"], "?")
            base.append(float(r.get(f"{key}_baseline", r["p_target_baseline"])))
            cell = (int(r["layer"]), int(r.get("span", 1)), float(r["alpha"]))
            if chosen is not None:
                if chosen.get(emo) == cell:
                    best = (i, j)
            elif r["regime"] == "surgical" and float(r[key]) > best_val:
                best, best_val = (i, j), float(r[key])
        im = ax.imshow(grid, cmap=SEQUENTIAL, vmin=0, vmax=1, aspect="auto", origin="lower")
        for (i, j), m in marks.items():
            v = grid[i, j]
            ax.text(
                j,
                i,
                f"{v:.2f}" + (f"\n{m}" if m else ""),
                ha="center",
                va="center",
                fontsize=5.5,
                color="black" if v > 0.6 else "white",
            )
        if best is not None:
            i, j = best
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="#E69F00", lw=1.6))
        ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
        ax.set_yticks(
            range(len(layers)), [str(a) if n == 1 else f"{a}-{a + n - 1}" for a, n in layers]
        )
        if k + ncols >= len(emotions):  # the lowest panel of its column
            ax.set_xlabel("alpha (× mean residual norm)")
        if k % ncols == 0:
            ax.set_ylabel("layer")
        chance = float(np.mean(base)) if base else float("nan")
        ax.set_title(f"{emo} (unsteered {chance:.2f})")
        ax.spines[:].set_visible(False)
    for k in range(len(emotions), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    fig.colorbar(im, ax=axes, shrink=0.9, label=label)
    fig.suptitle(
        "Steering sweep"
        + (f" (judge: {judge})" if judge else "")
        + "; R repetitive, E explosive, unmarked surgical; outlined: "
        + ("the cell chosen on dev prompts" if chosen is not None else "best surgical cell"),
        fontsize=7,
    )
    return fig
