"""Built-in aligners (cross-model comparison of emotion geometry)."""

from __future__ import annotations

import numpy as np

from ..api import Aligner, Param
from ..hookspecs import hookimpl


def _center(x: np.ndarray) -> np.ndarray:
    return x - x.mean(0, keepdims=True)


class LinearCKA(Aligner):
    name = "cka"
    description = "Linear centred kernel alignment (1 = same geometry up to rotation and scale)"

    def fit(self, a, b):
        return self

    def transform(self, a):
        return a

    def score(self, a, b) -> float:
        a, b = _center(np.asarray(a, np.float64)), _center(np.asarray(b, np.float64))
        cross = np.linalg.norm(a.T @ b, "fro") ** 2
        return float(cross / (np.linalg.norm(a.T @ a, "fro") * np.linalg.norm(b.T @ b, "fro")))


class Procrustes(Aligner):
    name = "procrustes"
    description = "Orthogonal Procrustes after PCA to a common dimension; score = mean cosine"
    params = (Param("dim", int, 32, "PCA dimension shared by both models"),)

    def fit(self, a, b):
        from scipy.linalg import orthogonal_procrustes
        from sklearn.decomposition import PCA

        k = min(self.dim, a.shape[1], b.shape[1], len(a) - 1)
        self.pca_a_ = PCA(k).fit(a)
        self.pca_b_ = PCA(k).fit(b)
        self.rotation_, _ = orthogonal_procrustes(self.pca_a_.transform(a), self.pca_b_.transform(b))
        return self

    def transform(self, a):
        """A rows -> B's PCA space."""
        return self.pca_a_.transform(a) @ self.rotation_

    def score(self, a, b) -> float:
        x, y = self.transform(a), self.pca_b_.transform(b)
        num = (x * y).sum(1)
        den = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1) + 1e-12
        return float((num / den).mean())


@hookimpl
def register_aligners(register):
    register(Procrustes())
    register(LinearCKA())
