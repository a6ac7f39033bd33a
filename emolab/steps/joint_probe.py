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
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x_se, y_se, chosen_on = select if select is not None else (x_tr, y_tr, "train")
    rng = np.random.default_rng(seed)
    rows = []
    progress.task("joint 7-way probe", len(layers))
    for li, layer in enumerate(layers):
        progress.check()
        # standardised once per layer with train statistics: one dimension of SmolLM2's
        # residual holds most of the variance
        scaler = StandardScaler()
        zt = scaler.fit_transform(x_tr[:, li].astype(np.float64))
        zs, ze = (scaler.transform(x[:, li].astype(np.float64)) for x in (x_se, x_te))
        scored = []
        for c in cs:
            clf = LogisticRegression(C=c, max_iter=300).fit(zt, y_tr)
            scored.append((balanced_accuracy_score(y_se, clf.predict(zs)), c, clf))
        sel, c, clf = max(scored, key=lambda s: (s[0], -s[1]))  # ties: the stronger prior
        shuffled = LogisticRegression(C=c, max_iter=300).fit(zt, rng.permutation(y_tr))
        rows.append(
            {
                "layer": layer,
                "C": c,
                "acc7_probe": float(balanced_accuracy_score(y_te, clf.predict(ze))),
                "acc7_probe_select": float(sel),
                "acc7_probe_shuffled": float(balanced_accuracy_score(y_te, shuffled.predict(ze))),
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
