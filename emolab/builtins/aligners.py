"""Built-in aligners (cross-model comparison of emotion geometry).

Two models' residual bases are unrelated (any rotation of one leaves its function intact),
so coordinates are never compared directly: each aligner either fits a map between the
two spaces (Procrustes, CCA) or compares basis-free geometry (CKA, RSA). Every score has
a permutation baseline: the same score with the pairing of rows shuffled.
"""

from __future__ import annotations

import numpy as np

from ..api import Aligner, Param
from ..errors import BadInput
from ..hookspecs import hookimpl


def _center(x: np.ndarray) -> np.ndarray:
    return x - x.mean(0, keepdims=True)


def _check_pairs(a: np.ndarray, b: np.ndarray, least: int = 3) -> None:
    if a.ndim != 2 or b.ndim != 2:
        raise BadInput(f"aligners take [n, d] arrays, got {a.shape} and {b.shape}")
    if len(a) != len(b):
        raise BadInput(f"paired activations differ in length: {len(a)} vs {len(b)} rows")
    if len(a) < least:
        raise BadInput(f"need at least {least} paired rows to align, got {len(a)}")


def _pca_dim(dim: int, a: np.ndarray, b: np.ndarray) -> int:
    return max(1, min(dim, a.shape[1], b.shape[1], len(a) - 1))


class LinearCKA(Aligner):
    name = "cka"
    description = "Linear centred kernel alignment (1 = same geometry up to rotation and scale)"

    def fit(self, a, b):
        return self

    def transform(self, a):
        return a

    def score(self, a, b) -> float:
        _check_pairs(a, b)
        a, b = _center(np.asarray(a, np.float64)), _center(np.asarray(b, np.float64))
        cross = np.linalg.norm(a.T @ b, "fro") ** 2
        return float(cross / (np.linalg.norm(a.T @ a, "fro") * np.linalg.norm(b.T @ b, "fro")))

    def permutation_baseline(self, a, b, draws: int = 100, seed: int = 0) -> np.ndarray:
        """Same scores as the generic baseline, from centred Gram matrices computed once:
        a shuffled pairing only permutes the rows and columns of B's Gram matrix."""
        _check_pairs(a, b)
        rng = np.random.default_rng(seed)
        a, b = _center(np.asarray(a, np.float64)), _center(np.asarray(b, np.float64))
        ka, kb = a @ a.T, b @ b.T
        den = np.linalg.norm(ka) * np.linalg.norm(kb)
        out = []
        for _ in range(draws):
            perm = rng.permutation(len(b))
            out.append(float((ka * kb[np.ix_(perm, perm)]).sum() / den))
        return np.asarray(out)


class Procrustes(Aligner):
    name = "procrustes"
    description = "Orthogonal Procrustes after PCA to a common dimension; score = mean cosine"
    params = (Param("dim", int, 32, "PCA dimension shared by both models"),)

    def fit(self, a, b):
        from scipy.linalg import orthogonal_procrustes
        from sklearn.decomposition import PCA

        _check_pairs(a, b)
        k = _pca_dim(self.dim, a, b)
        self.pca_a_ = PCA(k).fit(a)
        self.pca_b_ = PCA(k).fit(b)
        self.rotation_, _ = orthogonal_procrustes(
            self.pca_a_.transform(a), self.pca_b_.transform(b)
        )
        return self

    def transform(self, a):
        """A rows -> B's PCA space."""
        return self.pca_a_.transform(a) @ self.rotation_

    def transform_b(self, b):
        """B rows -> B's PCA space (where `transform` lands)."""
        return self.pca_b_.transform(b)

    def map_direction(self, v: np.ndarray) -> np.ndarray:
        """A direction of A's residual (`[d_a]`, not a point: no centring) -> B's residual
        basis, through both PCA bases and the rotation."""
        return (self.pca_a_.components_ @ v) @ self.rotation_ @ self.pca_b_.components_

    def score(self, a, b) -> float:
        x, y = self.transform(a), self.transform_b(b)
        num = (x * y).sum(1)
        den = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1) + 1e-12
        return float((num / den).mean())


class SVCCA(Aligner):
    name = "cca"
    description = "SVCCA: PCA to `dim`, then CCA; score = mean canonical correlation"
    params = (Param("dim", int, 32, "PCA (SVD) dimension kept before CCA"),)

    def fit(self, a, b):
        from scipy.linalg import qr, solve_triangular, svd
        from sklearn.decomposition import PCA

        _check_pairs(a, b)
        k = _pca_dim(self.dim, a, b)
        self.pca_a_ = PCA(k).fit(a)
        self.pca_b_ = PCA(k).fit(b)
        qa, ra = qr(self.pca_a_.transform(a), mode="economic")
        qb, rb = qr(self.pca_b_.transform(b), mode="economic")
        u, s, vt = svd(qa.T @ qb)
        # canonical weights: whitened (QR) coordinates rotated onto the singular vectors
        self.weights_a_ = solve_triangular(ra, u)
        self.weights_b_ = solve_triangular(rb, vt.T)
        self.correlations_ = np.clip(s, 0.0, 1.0)
        return self

    def transform(self, a):
        """A rows -> canonical variates (shared space, ordered by correlation)."""
        return self.pca_a_.transform(a) @ self.weights_a_

    def transform_b(self, b):
        return self.pca_b_.transform(b) @ self.weights_b_

    def correlations(self, a, b) -> np.ndarray:
        """Pearson correlation of each canonical pair on (possibly held-out) rows."""
        x, y = _center(self.transform(a)), _center(self.transform_b(b))
        den = np.linalg.norm(x, axis=0) * np.linalg.norm(y, axis=0) + 1e-12
        return (x * y).sum(0) / den

    def score(self, a, b) -> float:
        return float(self.correlations(a, b).mean())


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

    def fit(self, a, b):
        return self

    def transform(self, a):
        return a

    def rdm(self, x: np.ndarray) -> np.ndarray:
        """Condensed dissimilarity matrix (upper triangle) of the rows of x."""
        from scipy.spatial.distance import pdist

        return pdist(np.asarray(x, np.float64), self.metric)

    def score(self, a, b) -> float:
        from scipy.stats import spearmanr

        _check_pairs(a, b)
        rho = spearmanr(self.rdm(a), self.rdm(b)).statistic
        return float(rho) if np.isfinite(rho) else 0.0


@hookimpl
def register_aligners(register):
    register(Procrustes())
    register(SVCCA())
    register(LinearCKA())
    register(RSA())
