"""First principal component of emotion-minus-baseline differences (RepE-style).

Differences of random (emotion, baseline) pairs get random signs, so the centred PCA keeps
the class-separating axis instead of centring it away; the sign is fixed afterwards.
"""

import numpy as np

from ...api import Extractor, Param
from .checks import check_classes, orient


class PCA(Extractor):
    name = "pca"
    description = "First principal component of paired emotion-minus-baseline differences"
    params = (
        Param("pairs", int, 200, "difference pairs drawn per layer"),
        Param("seed", int, 0, "pairing and sign-flip seed"),
    )

    def fit_layer(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import PCA as SkPCA

        check_classes(self.name, pos, neg, 1)
        rng = np.random.default_rng(self.seed)
        n = max(self.pairs, 2)
        diffs = pos[rng.integers(len(pos), size=n)] - neg[rng.integers(len(neg), size=n)]
        diffs *= rng.choice([-1.0, 1.0], size=(n, 1))
        pc = (
            SkPCA(n_components=1, svd_solver="randomized", random_state=self.seed)
            .fit(diffs)
            .components_[0]
        )
        return orient(pc, pos, neg).astype(np.float32)
