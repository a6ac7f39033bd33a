"""mean(emotion) - mean(baseline): the steering studies' direction, batched over layers."""

import numpy as np

from ...api import Extractor
from .checks import check_classes


class MeanDiff(Extractor):
    name = "mean_diff"
    description = "Difference of class means, emotion minus baseline"

    def fit(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        check_classes(self.name, pos, neg, 1)
        return pos.mean(0) - neg.mean(0)
