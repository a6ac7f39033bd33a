"""How one direction reads held-out texts: project, threshold at the midpoint of the train
class means, score. Shared by the layer table (which reports it per layer), the extract
step's dev choice of hyper-parameters (which must choose on the same measure) and the
steps that compare directions (compare, crosslingual, contexts), so each measure has one
definition."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score


def binary_scores(u, x_tr, pos_tr, x_te, pos_te) -> tuple[float, float, float]:
    """Project on unit u, threshold at the midpoint of the train class means; score on test.
    Returns (balanced accuracy, AUC, threshold)."""
    p_tr, p_te = x_tr @ u, x_te @ u
    thr = (p_tr[pos_tr].mean() + p_tr[~pos_tr].mean()) / 2
    acc = balanced_accuracy_score(pos_te, p_te > thr)
    auc = roc_auc_score(pos_te, p_te) if 0 < pos_te.sum() < len(pos_te) else float("nan")
    return float(acc), float(auc), float(thr)


def unit(v: np.ndarray) -> np.ndarray:
    """`v` scaled to length 1 along its last axis; a zero vector stays zero."""
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n == 0, 1, n)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(unit(a) @ unit(b))


def multiclass_accuracy(units, x_tr, y_tr, x_te, y_te, emotions, baseline) -> float:
    """Nearest-direction assignment among emotions + baseline: each emotion's projection,
    standardised by its train threshold and spread; the baseline wins when none is positive."""
    cols = []
    for e, u in zip(emotions, units, strict=True):
        p_tr = x_tr @ u
        pos = y_tr == e
        thr = (p_tr[pos].mean() + p_tr[y_tr == baseline].mean()) / 2
        cols.append((x_te @ u - thr) / (p_tr.std() + 1e-8))
    scores = np.column_stack([*cols, np.zeros(len(x_te))])
    names = np.array([*emotions, baseline])
    return float(balanced_accuracy_score(y_te, names[scores.argmax(1)]))
