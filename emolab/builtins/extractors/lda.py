"""Fisher LDA: the mean difference whitened by the shared within-class covariance.

The covariance is Ledoit-Wolf shrunk (there are fewer examples than dimensions), which is
what makes whitening usable at all here. Ledoit-Wolf runs on the raw basis, not on
standardised features as sklearn's `shrinkage="auto"` does: standardising first shrinks
away exactly the strong correlations whitening should remove.
"""

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from ...api import Extractor, Param
from ...errors import BadInput
from .checks import check_classes


class LDA(Extractor):
    name = "lda"
    description = "Mean difference whitened by the shrunk shared covariance (Fisher LDA)"
    params = (Param("shrinkage", str, "auto", "'auto' (Ledoit-Wolf) or a number in [0, 1]"),)

    def fit_layer(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        check_classes(self.name, pos, neg, 2)
        if self.shrinkage == "auto":
            kw = {"covariance_estimator": LedoitWolf(store_precision=False)}
        else:
            try:
                kw = {"shrinkage": float(self.shrinkage)}
            except ValueError:
                raise BadInput(
                    f"lda shrinkage must be 'auto' or a number, not {self.shrinkage!r}"
                ) from None
            if not 0 <= kw["shrinkage"] <= 1:
                raise BadInput(f"lda shrinkage must lie in [0, 1], not {self.shrinkage}")
        x = np.concatenate([pos, neg]).astype(np.float64)
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        lda = LinearDiscriminantAnalysis(solver="lsqr", **kw).fit(x, y)
        return lda.coef_[0].astype(np.float32)
