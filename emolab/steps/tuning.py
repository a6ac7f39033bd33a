"""Extractor hyper-parameters chosen on the dev split, never on test.

An extractor declares the values worth trying on a parameter (`Param.tune`: logistic's C,
LDA's shrinkage, PCA's number of components). The extract step fits every combination on
train, scores each on the dev texts with the layer table's own measure (balanced accuracy
of the projection, thresholded at the midpoint of the train class means), averaged over the
emotions and the extracted layers, and keeps the best; ties keep the earlier value in the
declared order. The test texts are scored only for the chosen values, as a report.

The mean over layers (not the peak) scores a value: the peak layer is chosen afterwards,
on dev too, by `emolab layers`, and one value per method keeps the choice cheap to log and
stable on a small dev split.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..api import Extractor
from .readout import binary_scores

Vectors = dict[str, np.ndarray]  # emotion -> [layers, d]


def grid(ext: Extractor) -> list[dict]:
    """Every combination of the extractor's declared `tune` values ([] when it declares
    none); the declared default first, so a tie keeps it."""
    tuned = [p for p in ext.params if p.tune]
    if not tuned:
        return []
    axes = [[p.default, *[v for v in p.tune if v != p.default]] for p in tuned]
    return [
        {p.name: v for p, v in zip(tuned, combo, strict=True)} for combo in itertools.product(*axes)
    ]


def label(values: dict) -> str:
    """'C=0.01' / 'a=1,b=2': how a candidate is named in the metrics."""
    return ",".join(f"{k}={v}" for k, v in values.items())


def score(
    vectors: Vectors,
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_ev: np.ndarray,
    y_ev: np.ndarray,
    against: Callable[[np.ndarray, str], np.ndarray],
) -> float:
    """Mean balanced accuracy over emotions and layers of each emotion's direction on the
    evaluation texts `x_ev`, emotion vs the rows `against(y, emotion)` selects."""
    accs = []
    for emo, vec in vectors.items():
        k_tr = (y_tr == emo) | against(y_tr, emo)
        k_ev = (y_ev == emo) | against(y_ev, emo)
        pos_tr, pos_ev = y_tr[k_tr] == emo, y_ev[k_ev] == emo
        if not pos_ev.any() or pos_ev.all():
            continue
        for li in range(vec.shape[0]):
            u = vec[li].astype(np.float64)
            u = u / max(float(np.linalg.norm(u)), 1e-12)
            xt, xe = x_tr[k_tr, li].astype(np.float64), x_ev[k_ev, li].astype(np.float64)
            accs.append(binary_scores(u, xt, pos_tr, xe, pos_ev)[0])
    return float(np.mean(accs)) if accs else float("nan")


@dataclass
class Choice:
    extractor: Extractor  # set to the chosen values
    values: dict  # the chosen values
    vectors: Vectors  # fitted with them
    dev: dict[str, float]  # candidate label -> dev score


def choose(
    ext: Extractor,
    candidates: list[dict],
    fit: Callable[[Extractor], Vectors],
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_dev: np.ndarray,
    y_dev: np.ndarray,
    against: Callable[[np.ndarray, str], np.ndarray],
) -> Choice:
    """Fit every candidate on train, keep the one with the best dev score (a NaN score,
    e.g. a dev split lacking a class, never wins over a number)."""
    dev: dict[str, float] = {}
    fitted = []
    for values in candidates:
        tuned = ext.with_params(**values)
        vectors = fit(tuned)
        dev[label(values)] = score(vectors, x_tr, y_tr, x_dev, y_dev, against)
        fitted.append((tuned, values, vectors))
    scores = [dev[label(v)] for _, v, _ in fitted]
    best = int(np.argmax([s if np.isfinite(s) else -np.inf for s in scores]))
    tuned, values, vectors = fitted[best]
    return Choice(tuned, values, vectors, dev)
