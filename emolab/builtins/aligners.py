"""Built-in aligners (cross-model comparison of emotion geometry).

Two models' residual bases are unrelated (any rotation of one leaves its function intact),
so coordinates are never compared directly: each aligner either fits a map between the
two spaces (Procrustes, CCA) or compares basis-free geometry (CKA, RSA). They use only the
`emolab.api.Aligner` contract; the align step adds the permutation baselines.
"""

from __future__ import annotations

import numpy as np

from ..api import Aligner, Param, paired_rows
from ..hookspecs import hookimpl


def _center(x: np.ndarray) -> np.ndarray:
    return x - x.mean(0, keepdims=True)


def _pca_dim(dim: int, a: np.ndarray, b: np.ndarray) -> int:
    return max(1, min(dim, a.shape[1], b.shape[1], len(a) - 1))


def _pcas(dim: int, a: np.ndarray, b: np.ndarray):
    """Each side's PCA to one common dimension (they do not depend on the pairing)."""
    from sklearn.decomposition import PCA

    a, b = paired_rows(a, b)
    k = _pca_dim(dim, a, b)
    return PCA(k).fit(a), PCA(k).fit(b)


class LinearCKA(Aligner):
    name = "cka"
    description = "Linear centred kernel alignment (1 = same geometry up to rotation and scale)"
    learns_map = False

    def fit(self, a, b):
        return self

    def score(self, a, b) -> dict[str, float]:
        a, b = paired_rows(a, b)
        a, b = _center(a), _center(b)
        cross = np.linalg.norm(a.T @ b, "fro") ** 2
        den = np.linalg.norm(a.T @ a, "fro") * np.linalg.norm(b.T @ b, "fro")
        return {"cka": float(cross / den)}

    def permutation_baseline(self, a, b, draws: int = 100, seed: int = 0):
        """Same scores as the generic baseline, from centred Gram matrices computed once:
        a shuffled pairing only permutes the rows and columns of B's Gram matrix."""
        a, b = paired_rows(a, b)
        rng = np.random.default_rng(seed)
        a, b = _center(a), _center(b)
        ka, kb = a @ a.T, b @ b.T
        den = np.linalg.norm(ka) * np.linalg.norm(kb)
        out = []
        for _ in range(draws):
            perm = rng.permutation(len(b))
            out.append(float((ka * kb[np.ix_(perm, perm)]).sum() / den))
        return {"cka": np.asarray(out)}


class _AfterPCA(Aligner):
    """A map fitted between both sides' PCA coordinates (common dimension `dim`). The PCAs
    do not depend on how rows are paired, so a refit on a shuffled pairing keeps them and
    redoes only `_fit_pair`."""

    def fit(self, a, b):
        self.pca_a_, self.pca_b_ = _pcas(self.dim, a, b)
        return self._fit_pair(self.pca_a_.transform(a), self.pca_b_.transform(b))

    def fit_permuted(self, a, b, perm):
        clone = self.with_params()
        clone.pca_a_, clone.pca_b_ = self.pca_a_, self.pca_b_
        xb = self.pca_b_.transform(np.asarray(b)[perm])
        return clone._fit_pair(self.pca_a_.transform(a), xb)

    def _fit_pair(self, xa: np.ndarray, xb: np.ndarray):
        raise NotImplementedError


class Procrustes(_AfterPCA):
    name = "procrustes"
    description = "Orthogonal Procrustes after PCA to a common dimension; score = mean cosine"
    params = (Param("dim", int, 32, "PCA dimension shared by both models", min=1),)
    maps_directions = True

    def _fit_pair(self, xa, xb):
        from scipy.linalg import orthogonal_procrustes

        self.rotation_, _ = orthogonal_procrustes(xa, xb)
        return self

    def transform_a(self, a):
        """A rows -> B's PCA space."""
        return self.pca_a_.transform(a) @ self.rotation_

    def transform_b(self, b):
        """B rows -> B's PCA space (where `transform_a` lands)."""
        return self.pca_b_.transform(b)

    def map_direction(self, v: np.ndarray) -> np.ndarray:
        """A direction of A's residual (`[d_a]`, not a point: no centring) -> B's residual
        basis, through both PCA bases and the rotation."""
        return (self.pca_a_.components_ @ v) @ self.rotation_ @ self.pca_b_.components_

    def score(self, a, b) -> dict[str, float]:
        x, y = self.transform_a(a), self.transform_b(b)
        num = (x * y).sum(1)
        den = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1) + 1e-12
        return {"mean_cos": float((num / den).mean())}


class SVCCA(_AfterPCA):
    name = "cca"
    description = "SVCCA: PCA to `dim`, then CCA; score = mean canonical correlation"
    params = (Param("dim", int, 32, "PCA (SVD) dimension kept before CCA", min=1),)

    def _fit_pair(self, xa, xb):
        from scipy.linalg import qr, solve_triangular, svd

        qa, ra = qr(xa, mode="economic")
        qb, rb = qr(xb, mode="economic")
        u, s, vt = svd(qa.T @ qb)
        # canonical weights: whitened (QR) coordinates rotated onto the singular vectors
        self.weights_a_ = solve_triangular(ra, u)
        self.weights_b_ = solve_triangular(rb, vt.T)
        self.correlations_ = np.clip(s, 0.0, 1.0)
        return self

    def transform_a(self, a):
        """A rows -> canonical variates (shared space, ordered by correlation)."""
        return self.pca_a_.transform(a) @ self.weights_a_

    def transform_b(self, b):
        return self.pca_b_.transform(b) @ self.weights_b_

    def correlations(self, a, b) -> np.ndarray:
        """Pearson correlation of each canonical pair on (possibly held-out) rows."""
        x, y = _center(self.transform_a(a)), _center(self.transform_b(b))
        den = np.linalg.norm(x, axis=0) * np.linalg.norm(y, axis=0) + 1e-12
        return (x * y).sum(0) / den

    def score(self, a, b) -> dict[str, float]:
        return {"mean_corr": float(self.correlations(a, b).mean())}

    def details(self, a, b) -> dict:
        return {
            "correlations": self.correlations(a, b).tolist(),
            "train_correlations": self.correlations_.tolist(),
        }


class RSA(Aligner):
    name = "rsa"
    description = "Representational similarity: Spearman between the rows' dissimilarity matrices"
    params = (
        Param(
            "metric",
            str,
            "cosine",
            "dissimilarity between rows",
            ("cosine", "correlation", "euclidean"),
        ),
    )
    learns_map = False
    pairs = "centroids"

    def fit(self, a, b):
        return self

    def rdm(self, x: np.ndarray) -> np.ndarray:
        """Condensed dissimilarity matrix (upper triangle) of the rows of x."""
        from scipy.spatial.distance import pdist

        return pdist(np.asarray(x, np.float64), self.metric)

    def score(self, a, b) -> dict[str, float]:
        from scipy.stats import spearmanr

        a, b = paired_rows(a, b)
        rho = spearmanr(self.rdm(a), self.rdm(b)).statistic
        return {"rsa": float(rho) if np.isfinite(rho) else 0.0}

    def details(self, a, b) -> dict:
        return {"rdm_a": self.rdm(a).tolist(), "rdm_b": self.rdm(b).tolist()}


@hookimpl
def register_aligners(register):
    register(Procrustes())
    register(SVCCA())
    register(LinearCKA())
    register(RSA())
