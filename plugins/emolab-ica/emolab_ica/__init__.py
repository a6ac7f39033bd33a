"""emolab-ica: the FastICA component best aligned with an emotion, as an emolab extractor.

Why ICA: mean-difference mixes every source that differs between the classes; an
independent component can isolate one non-Gaussian source of variation, which is what the
emotion-circuit studies call a context-agnostic direction.
"""

from __future__ import annotations

import warnings

import numpy as np

from emolab.api import Extractor, Param
from emolab.errors import BadInput
from emolab.hookspecs import hookimpl

__version__ = "0.1.0"


class FastICAExtractor(Extractor):
    name = "ica"
    description = "FastICA component that best separates the emotion from the baseline"
    params = (
        Param("n_components", int, 10, "independent components to fit (capped by n texts - 1)"),
        Param("max_iter", int, 400, "FastICA iterations"),
        Param("seed", int, 0, "random state of FastICA"),
    )

    def fit_layer(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import FastICA

        if len(pos) < 2 or len(neg) < 2:
            raise BadInput("ica needs at least 2 texts of the emotion and of the baseline")
        x = np.concatenate([pos, neg]).astype(np.float64)
        k = max(1, min(self.n_components, len(x) - 1, x.shape[1]))
        ica = FastICA(
            n_components=k, max_iter=self.max_iter, random_state=self.seed, whiten="unit-variance"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings on tiny samples
            s = ica.fit_transform(x)
        sp, sn = s[: len(pos)], s[len(pos) :]
        spread = np.sqrt((sp.var(0) + sn.var(0)) / 2) + 1e-12
        effect = (sp.mean(0) - sn.mean(0)) / spread
        j = int(np.argmax(np.abs(effect)))
        w = ica.mixing_[:, j] * np.sign(effect[j])  # the pattern it writes in activation space
        unit = w / (np.linalg.norm(w) or 1.0)
        length = float((pos.mean(0) - neg.mean(0)) @ unit)
        return (unit * abs(length)).astype(np.float32)


@hookimpl
def register_extractors(register):
    register(FastICAExtractor())
