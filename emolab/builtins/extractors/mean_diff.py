"""mean(emotion) - mean(baseline): the steering studies' direction, batched over layers."""

import numpy as np

from ...api import Extractor


class MeanDiff(Extractor):
    name = "mean_diff"
    description = "Difference of class means, emotion minus baseline"

    def fit(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        return pos.mean(0) - neg.mean(0)
