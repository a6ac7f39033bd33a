"""How one direction reads held-out texts: project, threshold at the midpoint of the train
class means, score. Shared by the layer table (which reports it per layer) and by the
extract step's dev choice of hyper-parameters (which must choose on the same measure)."""

from __future__ import annotations

from sklearn.metrics import balanced_accuracy_score, roc_auc_score


def binary_scores(u, x_tr, pos_tr, x_te, pos_te) -> tuple[float, float, float]:
    """Project on unit u, threshold at the midpoint of the train class means; score on test.
    Returns (balanced accuracy, AUC, threshold)."""
    p_tr, p_te = x_tr @ u, x_te @ u
    thr = (p_tr[pos_tr].mean() + p_tr[~pos_tr].mean()) / 2
    acc = balanced_accuracy_score(pos_te, p_te > thr)
    auc = roc_auc_score(pos_te, p_te) if 0 < pos_te.sum() < len(pos_te) else float("nan")
    return float(acc), float(auc), float(thr)
