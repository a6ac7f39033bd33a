"""Scoring any registered aligner through the `emolab.api.Aligner` contract alone.

The align step hands every aligner, built-in or plugin, to `score_aligner`: a map is fitted
on train rows and scored on held-out rows; a basis-free comparison is scored on every row.
Each score sits beside a permutation baseline (the same score with the pairing shuffled)
and its p-value. What the contract says an aligner cannot do (map a direction) is reported
as not available, never raised.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import PluginFailed
from .guard import Guarded, checked, who

PAIRS = ("texts", "centroids")


class Scaler:
    """Per-feature z-scoring fitted on one split; directions scale by 1/sd on the way in and
    by sd on the way back, so a steering vector survives the round trip."""

    def __init__(self, x: np.ndarray, on: bool) -> None:
        self.mu = x.mean(0) if on else np.zeros(x.shape[1])
        self.sd = x.std(0) + 1e-6 if on else np.ones(x.shape[1])

    def rows(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mu) / self.sd

    def direction(self, v: np.ndarray) -> np.ndarray:
        return v / self.sd

    def back(self, v: np.ndarray) -> np.ndarray:
        return v * self.sd


@dataclass
class Pairs:
    """Both sessions' rows at the compared layers, in the alignment space (z-scored when
    asked): the same texts in the same order, their labels, and each emotion's vector."""

    a_tr: np.ndarray
    b_tr: np.ndarray
    a_te: np.ndarray
    b_te: np.ndarray
    y_tr: np.ndarray
    y_te: np.ndarray
    labels: list[str]
    emotions: list[str]
    va: dict[str, np.ndarray]
    vb: dict[str, np.ndarray]

    def split(self, pairs: str, which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(A rows, B rows, labels) of `which` (train, test or all), one per text or one
        per label centroid."""
        if which == "all":
            a = np.concatenate([self.a_tr, self.a_te])
            b = np.concatenate([self.b_tr, self.b_te])
            y = np.concatenate([self.y_tr, self.y_te])
        elif which == "train":
            a, b, y = self.a_tr, self.b_tr, self.y_tr
        else:
            a, b, y = self.a_te, self.b_te, self.y_te
        if pairs == "centroids":
            return centroids(a, y, self.labels), centroids(b, y, self.labels), np.array(self.labels)
        return a, b, y


def top_variance_share(x: np.ndarray) -> float:
    """Share of the total variance in the single largest-variance dimension."""
    var = x.var(0)
    return float(var.max() / var.sum()) if var.sum() > 0 else float("nan")


def p_value(observed: float, null: np.ndarray) -> float:
    """One-sided permutation p-value with the +1 correction (never exactly 0)."""
    return float((1 + np.sum(null >= observed)) / (1 + len(null)))


def summary(observed: float, null: np.ndarray) -> dict:
    return {
        "score": float(observed),
        "baseline_mean": float(np.mean(null)),
        "baseline_sd": float(np.std(null)),
        "baseline_p95": float(np.quantile(null, 0.95)),
        "p_value": p_value(observed, null),
        "draws": len(null),
    }


def cos(u: np.ndarray, v: np.ndarray) -> float:
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-12))


def centroids(x: np.ndarray, y: np.ndarray, labels: list[str]) -> np.ndarray:
    """Class means after removing the overall mean (the shared anisotropic offset)."""
    mu = x.mean(0)
    return np.stack([x[y == lab].mean(0) - mu for lab in labels])


def gram_cka_matrix(xa: np.ndarray, xb: np.ndarray, standardize: bool = False) -> np.ndarray:
    """Linear CKA between every layer of A and every layer of B, `[La, Lb]`.

    Works on centred n x n Gram matrices (one per layer, unit Frobenius norm), so all pairs
    come from one matrix product instead of La x Lb feature-space products."""

    def grams(x: np.ndarray) -> np.ndarray:
        out = []
        for i in range(x.shape[1]):
            h = x[:, i].astype(np.float64)
            h = h - h.mean(0)
            if standardize:
                h = h / (h.std(0) + 1e-6)
            k = h @ h.T
            out.append((k / np.linalg.norm(k)).astype(np.float32).ravel())
        return np.stack(out)

    return (grams(xa) @ grams(xb).T).astype(np.float64)


def nn_accuracy(fitted, a_te, b_te, labels) -> tuple[float, float]:
    """Map A's held-out rows into the shared space; is the nearest B row (cosine) the same
    text / the same label?"""
    x, y = fitted.transform_a(a_te), fitted.transform_b(b_te)
    if x.shape[1] != y.shape[1]:
        raise PluginFailed(
            f"{who('aligners', fitted)} maps A rows to width {x.shape[1]} and B rows to width "
            f"{y.shape[1]}: transform_a and transform_b must land in one space"
        )
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    y = y / (np.linalg.norm(y, axis=1, keepdims=True) + 1e-12)
    nearest = (x @ y.T).argmax(1)
    return (float(np.mean(nearest == np.arange(len(x)))), float(np.mean(labels[nearest] == labels)))


def reach(fitted, d_a: int, d_b: int, vb: dict[str, np.ndarray]) -> dict[str, float]:
    """For each of B's vectors, the share of its length inside the image of the aligner's
    direction map (the most a mapped vector's cosine with it can be): the map is probed with
    A's basis vectors, its image is the row space of what comes back."""
    image = np.stack([mapped(fitted, row, d_b) for row in np.eye(d_a)])
    _, s, vt = np.linalg.svd(image, full_matrices=False)
    tol = (s.max() if s.size else 0.0) * max(image.shape) * np.finfo(np.float64).eps
    basis = vt[s > tol]
    return {
        e: float(np.linalg.norm(basis @ v) / (np.linalg.norm(v) + 1e-12)) for e, v in vb.items()
    }


def mapped(fitted, v: np.ndarray, d_b: int) -> np.ndarray:
    """`fitted.map_direction(v)`, checked to be a finite `[d_b]` direction of B."""
    return checked("aligners", fitted, fitted.map_direction(v), (d_b,), "map_direction")


def _scores(aligner, value) -> dict[str, float]:
    """What `score` returned, as {metric: finite float}, or a PluginFailed naming it."""
    if not isinstance(value, dict) or not value or not all(isinstance(k, str) for k in value):
        raise PluginFailed(
            f"{who('aligners', aligner)} returned {type(value).__name__} from score, "
            "not {metric: value}"
        )
    values = checked("aligners", aligner, list(value.values()), (len(value),), "score")
    return {k: float(v) for k, v in zip(value, values, strict=True)}


def _measures(fitted, a, b, y, data: Pairs, retrieval: bool, maps: bool) -> dict[str, float]:
    """Every held-out measure of one fitted map: its own scores, retrieval of the same text
    and label, and the mapped emotion vectors' mean cosine with B's own."""
    out = _scores(fitted, fitted.score(a, b))
    if retrieval:
        out["nn_pair_accuracy"], out["nn_label_accuracy"] = nn_accuracy(fitted, a, b, y)
    if maps:
        d_b = data.b_tr.shape[1]
        out["mapped_vector_cos"] = float(
            np.mean([cos(mapped(fitted, data.va[e], d_b), data.vb[e]) for e in data.emotions])
        )
    return out


def rng_for(seed: int, name: str) -> np.random.Generator:
    """A stream per aligner, so one aligner's baseline does not depend on which others ran."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def score_aligner(aligner, data: Pairs, draws: int, seed: int) -> dict:
    """One aligner's scores, each beside its permutation baseline, through the contract."""
    name = aligner.name
    if aligner.pairs not in PAIRS:
        raise PluginFailed(
            f"{who('aligners', aligner)} declares pairs={aligner.pairs!r}; the align step pairs "
            + " or ".join(PAIRS)
        )
    rng = rng_for(seed, name)
    unit = "texts" if aligner.pairs == "texts" else "label centroids"
    al = Guarded("aligners", aligner)
    out: dict = {"params": aligner.get_params()}
    suffix = "" if aligner.pairs == "texts" else "_centroids"
    if aligner.learns_map:
        a_fit, b_fit, _ = data.split(aligner.pairs, "train")
        a_ev, b_ev, y_ev = data.split(aligner.pairs, "test")
        fitted = al.fit(a_fit, b_fit)
        retrieval, maps = aligner.pairs == "texts", bool(aligner.maps_directions)
        observed = _measures(fitted, a_ev, b_ev, y_ev, data, retrieval, maps)
        null: dict[str, list[float]] = {k: [] for k in observed}
        for _ in range(draws):
            pt, pe = rng.permutation(len(b_fit)), rng.permutation(len(b_ev))
            shuffled = fitted.fit_permuted(a_fit, b_fit, pt)
            got = _measures(shuffled, a_ev, b_ev[pe], y_ev, data, retrieval, maps)
            _same_metrics(aligner, observed, got)
            for k, v in got.items():
                null[k].append(v)
        own = set(observed) - {"nn_pair_accuracy", "nn_label_accuracy", "mapped_vector_cos"}
        for k, v in observed.items():
            key = f"{k}_held_out{suffix}" if k in own else k
            out[key] = summary(v, np.asarray(null[k]))
        out["scored_on"] = f"{len(a_ev)} held-out {unit} (fitted on {len(a_fit)} train {unit})"
        out["dim"] = int(fitted.transform_a(a_ev).shape[1])
        if retrieval:
            out["chance_nn_pair"] = 1.0 / len(a_ev)
        if maps:
            d_b = data.b_tr.shape[1]
            out["mapped_vector_cos_by_emotion"] = {
                e: cos(mapped(fitted, data.va[e], d_b), data.vb[e]) for e in data.emotions
            }
            out["mapped_vector_cos_ceiling"] = reach(fitted, data.a_tr.shape[1], d_b, data.vb)
        else:
            out["not_available"] = {"mapped_vector_cos": f"{name} does not map directions"}
    else:
        a_ev, b_ev, _ = data.split(aligner.pairs, "all")
        fitted = al.fit(a_ev, b_ev)
        observed = _scores(fitted, fitted.score(a_ev, b_ev))
        nulls = al.permutation_baseline(a_ev, b_ev, draws, int(rng.integers(1 << 31)))
        _same_metrics(aligner, observed, nulls if isinstance(nulls, dict) else {})
        for k, v in observed.items():
            null_k = checked("aligners", aligner, nulls[k], (draws,), "permutation_baseline")
            out[f"{k}{suffix}"] = summary(v, null_k)
        out["scored_on"] = f"all {len(a_ev)} {unit} (nothing is fitted)"
        out["not_available"] = {"mapped_vector_cos": f"{name} learns no map between the bases"}
    details = fitted.details(a_ev, b_ev)
    try:
        json.dumps(details)
    except (TypeError, ValueError):
        raise PluginFailed(
            f"{who('aligners', aligner)} returned details that are not JSON"
        ) from None
    if details:
        out["details"] = details
    if aligner.pairs == "centroids":
        out["labels"] = list(data.labels)
    return out


def _same_metrics(aligner, observed: dict, got: dict) -> None:
    if set(got) != set(observed):
        raise PluginFailed(
            f"{who('aligners', aligner)} scored {sorted(observed)} on the real pairing but "
            f"{sorted(got)} on a shuffled one"
        )
