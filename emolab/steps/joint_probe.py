"""The 7-way question asked of the residual stream itself: one multinomial logistic probe per
layer over every class (the emotions and the baseline), beside the nearest-direction 7-way
score of the extracted vectors. The vectors' score says whether the *set of directions*
separates the classes; the joint probe says how much of the labelling any linear readout of
that layer holds, the number probing papers report. Its regularisation and its layer are
chosen on the dev split; the test split is only reported, beside a shuffled-label probe
(the same C, train labels permuted) as its chance level."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from ..progress import Progress

CS = (0.001, 0.003, 0.01, 0.03, 0.1)


def _fit(x: np.ndarray, y: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # standardised: one dimension of SmolLM2's residual holds most of the variance
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=300)).fit(x, y)


def joint_probe(
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    select: tuple[np.ndarray, np.ndarray, str] | None,
    x_te: np.ndarray,
    y_te: np.ndarray,
    layers: list[int],
    progress: Progress,
    cs: tuple[float, ...] = CS,
    seed: int = 0,
) -> dict:
    """`x_*` are `[n, len(layers), d]`. Per layer the C with the best balanced accuracy on
    the choosing split (dev; train for sessions without one), then the layer with the best
    such score. Returns the per-layer rows and the dev-chosen peak."""
    x_se, y_se, chosen_on = select if select is not None else (x_tr, y_tr, "train")
    rng = np.random.default_rng(seed)
    rows = []
    progress.task("joint 7-way probe", len(layers))
    for li, layer in enumerate(layers):
        progress.check()
        xt = x_tr[:, li].astype(np.float64)
        fits = [(_fit(xt, y_tr, c), c) for c in cs]
        scored = [
            (balanced_accuracy_score(y_se, clf.predict(x_se[:, li].astype(np.float64))), c, clf)
            for clf, c in fits
        ]
        sel, c, clf = max(scored, key=lambda s: (s[0], -s[1]))  # ties: the stronger prior
        shuffled = _fit(xt, rng.permutation(y_tr), c)
        xe = x_te[:, li].astype(np.float64)
        rows.append(
            {
                "layer": layer,
                "C": c,
                "acc7_probe": float(balanced_accuracy_score(y_te, clf.predict(xe))),
                "acc7_probe_select": float(sel),
                "acc7_probe_shuffled": float(balanced_accuracy_score(y_te, shuffled.predict(xe))),
            }
        )
        progress.update(li + 1)
    peak = max(rows, key=lambda r: r["acc7_probe_select"])
    return {
        "rows": rows,
        "peak_layer": peak["layer"],
        "peak_acc7_probe": peak["acc7_probe"],
        "peak_acc7_probe_shuffled": peak["acc7_probe_shuffled"],
        "C": peak["C"],
        "chosen_on": chosen_on,
        "classes": int(len(set(y_tr))),
    }
