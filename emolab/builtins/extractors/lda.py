"""Fisher LDA: the mean difference whitened by the shared within-class covariance.

The pooled within-class covariance is Ledoit-Wolf shrunk (there are fewer examples than
dimensions), which is what makes whitening usable at all here. Ledoit-Wolf runs on the raw
basis, not on standardised features as sklearn's LDA `shrinkage="auto"` does (standardising
first shrinks away exactly the strong correlations whitening should remove), and one pooled
estimate plus one solve is much faster than sklearn's per-class LDA fit, which matters
because the shuffled-label baseline refits it hundreds of times. `emolab extract` chooses
the shrinkage on the dev split among Ledoit-Wolf's and three fixed values.
"""

import numpy as np

from ...api import Extractor, Param
from ...errors import BadInput
from .checks import check_classes


class LDA(Extractor):
    name = "lda"
    description = "Mean difference whitened by the shrunk shared covariance (Fisher LDA)"
    params = (
        Param(
            "shrinkage",
            str,
            "auto",
            "'auto' (Ledoit-Wolf) or a number in [0, 1]",
            tune=("auto", "0.05", "0.3", "0.8"),
        ),
    )

    def fit_layer(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        from scipy.linalg import solve
        from sklearn.covariance import LedoitWolf, shrunk_covariance

        check_classes(self.name, pos, neg, 2)
        xc = np.concatenate([pos - pos.mean(0), neg - neg.mean(0)]).astype(np.float64)
        if self.shrinkage == "auto":
            cov = LedoitWolf(assume_centered=True, store_precision=False).fit(xc).covariance_
        else:
            try:
                shrink = float(self.shrinkage)
            except ValueError:
                raise BadInput(
                    f"lda shrinkage must be 'auto' or a number, not {self.shrinkage!r}"
                ) from None
            if not 0 <= shrink <= 1:
                raise BadInput(f"lda shrinkage must lie in [0, 1], not {self.shrinkage}")
            cov = shrunk_covariance(xc.T @ xc / len(xc), shrink)
        diff = pos.mean(0).astype(np.float64) - neg.mean(0)
        return solve(cov, diff, assume_a="pos").astype(np.float32)
