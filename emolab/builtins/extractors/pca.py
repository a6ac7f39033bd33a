"""Principal components of emotion-minus-baseline differences (RepE-style).

Differences of random (emotion, baseline) pairs get random signs, so the centred PCA keeps
the class-separating axis instead of centring it away. With one component the direction is
that axis (sign fixed toward the emotion); with k it is the mean difference projected on
the top k axes: the mean difference with the low-variance, noisy directions of the pair
differences removed, so k moves from the first component (1) toward mean_diff (large k).
`emolab extract` chooses k on the dev split among the declared `tune` values.
"""

import numpy as np

from ...api import Extractor, Param
from ...errors import BadInput
from .checks import check_classes, orient


class PCA(Extractor):
    name = "pca"
    description = "Mean difference on the top principal components of paired differences"
    params = (
        Param("pairs", int, 200, "difference pairs drawn per layer"),
        Param("seed", int, 0, "pairing and sign-flip seed"),
        Param(
            "n_components",
            int,
            1,
            "principal components kept (1: the first component itself)",
            min=1,
            tune=(1, 2, 4, 8),
        ),
    )

    def fit_layer(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import PCA as SkPCA

        check_classes(self.name, pos, neg, 1)
        rng = np.random.default_rng(self.seed)
        n = max(self.pairs, 2)
        if self.n_components > min(n, pos.shape[-1]):
            raise BadInput(
                f"pca n_components {self.n_components} exceeds the {min(n, pos.shape[-1])} "
                "components the pair differences have"
            )
        diffs = pos[rng.integers(len(pos), size=n)] - neg[rng.integers(len(neg), size=n)]
        diffs *= rng.choice([-1.0, 1.0], size=(n, 1))
        pcs = (
            SkPCA(n_components=self.n_components, svd_solver="randomized", random_state=self.seed)
            .fit(diffs)
            .components_
        )
        if self.n_components == 1:
            return orient(pcs[0], pos, neg).astype(np.float32)
        diff = pos.mean(0) - neg.mean(0)
        kept = pcs.T @ (pcs @ diff)
        return (kept / max(float(np.linalg.norm(kept)), 1e-12)).astype(np.float32)
