"""L2-regularised logistic probe: its weight vector, mapped back to the raw residual basis.

Features are standardised first (the residual stream has a few huge dimensions), so one C
means the same on every layer. `emolab extract` chooses C among `CS` on the dev split (the
`tune` values of the declaration); `cv` > 1 picks it by cross-validation on train instead.
"""

import numpy as np

from ...api import Extractor, Param
from .checks import check_classes

CS = (0.001, 0.01, 0.1, 1.0)


class Logistic(Extractor):
    name = "logistic"
    description = "L2 logistic-regression probe weights (standardised features)"
    params = (
        Param("C", float, 0.01, "inverse L2 strength, on standardised features", tune=CS),
        Param("cv", int, 0, "folds to choose C by cross-validation (0: use C)"),
        Param("max_iter", int, 200),
    )

    def fit_layer(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
        from sklearn.preprocessing import StandardScaler

        check_classes(self.name, pos, neg, max(self.cv, 1))
        x = np.concatenate([pos, neg]).astype(np.float64)
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        scaler = StandardScaler().fit(x)
        if self.cv > 1:
            clf = LogisticRegressionCV(Cs=list(CS), cv=self.cv, max_iter=self.max_iter)
        else:
            clf = LogisticRegression(C=self.C, max_iter=self.max_iter)
        clf.fit(scaler.transform(x), y)
        return (clf.coef_[0] / scaler.scale_).astype(np.float32)
