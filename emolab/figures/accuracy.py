"""Readability figures from a `layers` step: the layer curve with its chance levels, and the
cosine matrices between emotions (raw beside mean-centred)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..metadata import FileMeta
from .style import COLUMN_IN, DIVERGING, GREY, WIDE_IN, colour, figure

CHANCE = 0.5  # balanced accuracy of emotion-vs-baseline with no information


def _mean_by_layer(rows: list[dict], method: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    layers = sorted({r["layer"] for r in rows if r["method"] == method})
    vals = [
        np.nanmean([float(r[key]) for r in rows if r["method"] == method and r["layer"] == L])
        for L in layers
    ]
    return np.asarray(layers), np.asarray(vals, dtype=float)


def peak_split(summary: dict) -> str:
    """Which split chose the peak, as the step records it. `layers` steps that record no
    split picked the peak on the held-out test rows they also report: say so."""
    for key in ("peak_split", "chosen_on", "selected_on", "split"):
        if isinstance(summary.get(key), str):
            return summary[key]
    return "test"


def layer_curve(data: dict, title: str = "") -> Figure:
    """Held-out balanced accuracy per layer for each method (mean over emotions), with the
    random-direction band, each method's shuffled-label band, the surface-feature baseline,
    chance, and the peak layer each method's summary records."""
    rows, summary = data["rows"], data["summary"]
    methods = list(summary)
    fig, ax = figure(COLUMN_IN, 2.6)
    with np.errstate(all="ignore"):
        x, rand = _mean_by_layer(rows, methods[0], "acc_random")
        _, rand_sd = _mean_by_layer(rows, methods[0], "acc_random_sd")
        ax.fill_between(x, rand - rand_sd, rand + rand_sd, color=GREY, alpha=0.25, lw=0)
        ax.plot(x, rand, color=GREY, lw=0.8, label="random directions (±1 sd)")
        for i, m in enumerate(methods):
            x, acc = _mean_by_layer(rows, m, "acc")
            ax.plot(x, acc, color=colour(i), marker="o", ms=2.5, label=m)
            x, shuf = _mean_by_layer(rows, m, "acc_shuffled")
            _, shuf_sd = _mean_by_layer(rows, m, "acc_shuffled_sd")
            if np.isfinite(shuf).any():
                ax.fill_between(
                    x, shuf - shuf_sd, shuf + shuf_sd, color=colour(i), alpha=0.15, lw=0
                )
                ax.plot(x, shuf, color=colour(i), lw=0.7, ls=":")
            peak = int(summary[m]["peak_layer"])
            ax.plot(
                [peak],
                [summary[m]["peak_acc"]],
                marker="*",
                ms=9,
                color=colour(i),
                mec="black",
                mew=0.5,
                ls="none",
            )
        surface = np.nanmean([float(r["acc_surface"]) for r in rows])
    if np.isfinite(surface):
        ax.axhline(surface, color="black", lw=0.8, ls="-.", label="surface features")
    ax.axhline(CHANCE, color="black", lw=0.6, ls="--", label="chance (0.5)")
    ax.plot([], [], color=GREY, ls=":", label="shuffled labels (±1 sd, method colour)")
    split = peak_split(summary[methods[0]])
    ax.plot(
        [],
        [],
        marker="*",
        ms=7,
        color="white",
        mec="black",
        ls="none",
        label=f"peak layer (chosen on {split} split)",
    )
    ax.set_xlabel("layer (block output)")
    ax.set_ylabel("held-out balanced accuracy")
    ax.set_ylim(min(0.3, ax.get_ylim()[0]), 1.0)
    ax.set_title(title or "Emotion vs baseline, mean over emotions")
    ax.legend(loc="upper left", ncols=2, handlelength=1.6, columnspacing=0.8)
    return fig


def cosine_layer(data: dict) -> tuple[str, str]:
    """(method, layer) shown in the cosine figure: the first method at its peak layer."""
    method = next(iter(data["summary"]))
    return method, str(data["summary"][method]["peak_layer"])


def cosines(data: dict, emotions: list[str], title: str = "") -> Figure:
    """Cosine similarity between emotions at the peak layer: class centroids raw, the same
    centroids after subtracting the mean activation (anisotropy removed), and the
    extracted directions."""
    method, layer = cosine_layer(data)
    mats = data["cosines"][method][layer]
    panels = [
        ("centroid_raw", "class centroids, raw"),
        ("centroid_centred", "class centroids, mean-centred"),
        ("direction", f"{method} directions"),
    ]
    fig, axes = figure(WIDE_IN, 2.6, ncols=3)
    im = None
    for ax, (key, name) in zip(axes, panels, strict=True):
        m = np.asarray(mats[key], dtype=float)
        im = ax.imshow(m, cmap=DIVERGING, vmin=-1, vmax=1)
        ax.set_xticks(range(len(emotions)), emotions, rotation=45, ha="right")
        ax.set_yticks(range(len(emotions)), emotions if ax is axes[0] else [])
        ax.set_title(name)
        if len(emotions) <= 8:
            for i in range(len(emotions)):
                for j in range(len(emotions)):
                    v = m[i, j]
                    ax.text(
                        j,
                        i,
                        f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize=5.5,
                        color="white" if abs(v) > 0.6 else "black",
                    )
        ax.spines[:].set_visible(False)
    fig.colorbar(im, ax=axes, shrink=0.8, label="cosine similarity")
    fig.suptitle(title or f"Cosines between emotions at layer {layer}")
    return fig


def vector_set(vectors: dict, meta: FileMeta, name: str) -> Figure:
    """A published vector file on its own: the test accuracy by layer its metadata records,
    beside the dev accuracy that chose the peak when the file records it (chance drawn,
    peak marked with the split that chose it) and, at that peak, the cosines between the
    emotion directions raw and after subtracting their mean (the shared component that
    anisotropy puts in every direction)."""
    import json

    def curve(key: str) -> dict[int, float]:
        return {int(k): float(v) for k, v in json.loads(meta.extra[key]).items()}

    by_layer = curve("mean_acc_by_layer")
    peak = int(meta.extra["peak_layer"])
    chosen_on = meta.extra.get("peak_chosen_on", "test")  # sets before the dev split: test
    emotions = list(dict.fromkeys(k.split("/", 1)[0] for k in vectors))
    fig, axes = figure(WIDE_IN, 2.5, ncols=3, width_ratios=[1.3, 1, 1])
    ax = axes[0]
    xs = sorted(by_layer)
    label = meta.method or "direction"
    if "mean_acc_dev_by_layer" in meta.extra:
        dev = curve("mean_acc_dev_by_layer")
        ax.plot(xs, [dev[x] for x in xs], color=colour(0), lw=0.8, ls=":",
                label=f"{label}, dev")  # fmt: skip
        label += ", test"
    ax.plot(xs, [by_layer[x] for x in xs], color=colour(0), marker="o", ms=2.5,
            label=label)  # fmt: skip
    ax.plot([peak], [by_layer[peak]], marker="*", ms=9, color=colour(0), mec="black", mew=0.5,
            ls="none", label=f"peak layer (chosen on {chosen_on})")  # fmt: skip
    ax.axhline(CHANCE, color="black", lw=0.6, ls="--", label="chance (0.5)")
    ax.set_ylim(0.4, 1.0)
    ax.set_xlabel("layer (block output)")
    ax.set_ylabel("balanced accuracy (vs neutral)")
    ax.set_title("accuracy by layer (file metadata)")
    fig.suptitle(name)
    ax.legend(loc="upper left")
    v = np.stack([vectors[f"{e}/blocks.{peak}.hook_resid_post"] for e in emotions]).astype(float)
    im = None
    for bx, mat, title in (
        (axes[1], v, f"directions at layer {peak}, raw"),
        (axes[2], v - v.mean(0), "minus their mean"),
    ):
        u = mat / np.linalg.norm(mat, axis=1, keepdims=True)
        cos = u @ u.T
        im = bx.imshow(cos, cmap=DIVERGING, vmin=-1, vmax=1)
        bx.set_xticks(range(len(emotions)), emotions, rotation=45, ha="right")
        bx.set_yticks(range(len(emotions)), emotions if bx is axes[1] else [])
        bx.set_title(title)
        bx.spines[:].set_visible(False)
        for i in range(len(emotions)):
            for j in range(len(emotions)):
                bx.text(j, i, f"{cos[i, j]:.2f}", ha="center", va="center", fontsize=5.5,
                        color="white" if abs(cos[i, j]) > 0.6 else "black")  # fmt: skip
    fig.colorbar(im, ax=axes[1:], shrink=0.8, label="cosine similarity")
    return fig
