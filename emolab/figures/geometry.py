"""Cross-model and cross-condition figures: the alignment CKA matrix with its layer
correspondence and permutation baselines, sensitivity over fine-tune checkpoints, and the
cross-lingual carry-over bars."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .style import COLUMN_IN, GREY, SEQUENTIAL, WIDE_IN, colour, figure


def monotone_path(m: np.ndarray) -> list[int]:
    """For each row (layer of A) the column (layer of B) on the path of largest summed
    similarity that never goes back in depth: B's layer is non-decreasing in A's layer.
    A dynamic programme over the matrix, O(rows x cols)."""
    rows, cols = m.shape
    score = np.full((rows, cols), -np.inf)
    back = np.zeros((rows, cols), dtype=int)
    score[0] = m[0]
    for i in range(1, rows):
        best = np.maximum.accumulate(score[i - 1])
        arg = np.zeros(cols, dtype=int)
        for j in range(1, cols):
            arg[j] = arg[j - 1] if score[i - 1, arg[j - 1]] >= score[i - 1, j] else j
        score[i] = best + m[i]
        back[i] = arg
    path = [int(np.argmax(score[-1]))]
    for i in range(rows - 1, 0, -1):
        path.append(int(back[i, path[-1]]))
    return path[::-1]


def baselines(methods: dict) -> list[tuple[str, float, float, float, float]]:
    """(method/score, value, baseline mean, baseline sd, p) for every scored entry."""
    out = []
    for m, scores in methods.items():
        for key, v in scores.items():
            if isinstance(v, dict) and "score" in v:
                out.append(
                    (f"{m}: {key}", v["score"], v["baseline_mean"], v["baseline_sd"], v["p_value"])
                )
    return out


def alignment(data: dict) -> Figure:
    """Left: linear CKA between every layer of A and every layer of B, with each A layer's
    best B layer (the step's record) and the best depth-monotone correspondence. Right:
    every alignment score at the compared layer pair beside its permutation baseline."""
    cka = data["cka_layers"]
    m = np.asarray(cka["matrix"], dtype=float)
    la, lb = cka["layers_a"], cka["layers_b"]
    fig, (ax, bx) = figure(WIDE_IN, 3.0, ncols=2, width_ratios=[1, 1.1])
    im = ax.imshow(m, cmap=SEQUENTIAL, vmin=0, vmax=1, aspect="auto", origin="lower")
    best = [lb.index(int(cka["best_b_for_a"][str(a)])) for a in la]
    ax.plot(best, range(len(la)), "o", color="white", mec="black", mew=0.4, ms=3,
            label="best B layer per A layer")  # fmt: skip
    ax.plot(monotone_path(m), range(len(la)), color="#E69F00", lw=1.4,
            label="monotone correspondence")  # fmt: skip
    step = max(1, len(la) // 8)
    ax.set_yticks(range(0, len(la), step), la[::step])
    step = max(1, len(lb) // 8)
    ax.set_xticks(range(0, len(lb), step), lb[::step])
    ax.set_ylabel(f"layer of A ({data['model_a']})")
    ax.set_xlabel(f"layer of B ({data['model_b']})")
    ax.set_title("linear CKA between layers")
    ax.legend(loc="upper left", fontsize=6, frameon=True)
    ax.spines[:].set_visible(False)
    fig.colorbar(im, ax=ax, label="CKA (0 unrelated, 1 same geometry)")

    rows = baselines(data["methods"])
    y = np.arange(len(rows))
    vals = [r[1] for r in rows]
    bx.barh(y, vals, color=colour(0), height=0.6, label="score")
    bx.errorbar([r[2] for r in rows], y, xerr=[r[3] for r in rows], fmt="|", color=GREY,
                ms=8, capsize=2, label="permutation baseline (mean ± sd)")  # fmt: skip
    for yi, r in zip(y, rows, strict=True):
        bx.text(max(r[1], r[2] + r[3]) + 0.02, yi, f"p={r[4]:.2g}", va="center", fontsize=5.5)
    bx.set_yticks(y, [r[0] for r in rows])
    bx.invert_yaxis()
    bx.axvline(0, color="black", lw=0.6)
    bx.set_xlim(min(0.0, min(vals) - 0.05), 1.15)
    bx.set_xlabel("score (cosine, accuracy, correlation or similarity; unitless)")
    bx.set_title(f"A L{data['layer_a']} vs B L{data['layer_b']}, held-out texts")
    bx.legend(loc="upper center", bbox_to_anchor=(0.4, -0.2), ncols=2)
    return fig


def checkpoints(data: dict) -> Figure:
    """Steering sensitivity (slope of the target label's logit rise per unit alpha) of each
    emotion over fine-tune steps: the checkpoint's own vector solid, the base model's
    vector dashed; 0 is no effect."""
    sens = data["sensitivity"]
    emotions = data["emotions"]
    fig, ax = figure(COLUMN_IN, 3.3)
    for i, e in enumerate(emotions):
        for vec, ls in (("own", "-"), ("base", "--")):
            pts = sorted(
                (int(r["step"]), float(r["slope"]))
                for r in sens
                if r["emotion"] == e and r["vector"] == vec
            )
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, ls=ls, marker="o", ms=2.5, color=colour(i),
                        label=e if vec == "own" else None)  # fmt: skip
    ax.axhline(0, color="black", lw=0.6, ls=":", label="no effect")
    ax.plot([], [], color=GREY, ls="-", label="checkpoint's own vector")
    ax.plot([], [], color=GREY, ls="--", label="base model's vector")
    ax.set_xlabel("fine-tune step")
    ax.set_ylabel("sensitivity (label-logit rise / alpha)")
    ax.set_title(f"Steering sensitivity at layer {data['layer']} over fine-tuning")
    # under the axes: inside, nine entries cover the lines whatever the data
    ax.legend(ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    return fig


def crosslingual(data: dict) -> Figure:
    """Per layer and direction of transfer: the target label's specific logit rise with the
    prompt language's own vectors, the other language's, and random directions (± sd)."""
    carry = data["carry_over"]
    groups = [f"L{c['layer']} {c['direction']}" for c in carry]
    x = np.arange(len(carry))
    w = 0.26
    fig, ax = figure(COLUMN_IN, 2.5)
    ax.bar(x - w, [c["own"] for c in carry], w, color=colour(0), label="own-language vectors")
    ax.bar(x, [c["foreign"] for c in carry], w, color=colour(1), label="other language's")
    ax.bar(x + w, [c["random"] for c in carry], w, color=GREY,
           yerr=[c["random_sd"] for c in carry], capsize=2, error_kw={"lw": 0.6},
           label="random directions (± sd)")  # fmt: skip
    for xi, c in zip(x, carry, strict=True):
        if np.isfinite(c["carry_over"]):
            # on the foreign bar it is the ratio of: above the random error bar it floated
            ax.text(xi, max(c["foreign"], 0.0), f"{c['carry_over']:.0%}", ha="center",
                    va="bottom", fontsize=5.5)  # fmt: skip
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(x, groups, rotation=30, ha="right")
    ax.set_ylabel("specific label-logit rise (logits)")
    ax.set_title(f"Cross-lingual carry-over (alpha {data['alpha']:g}); % = foreign / own")
    ax.legend(loc="best")
    return fig
