"""An example third-party aligner: a ridge-regression map from model A's residual to B's.

Procrustes allows only a rotation between the two bases (after PCA); a ridge map allows
any linear map, shrunk toward zero by `alpha`: W = argmin |A W - B|^2 + alpha |W|^2 on
centred train rows, in closed form through A's SVD (A = U S V^T, W = V diag(s / (s^2 +
alpha)) U^T B), so no solver and no scikit-learn. It lands in B's own (centred) space, so
`map_direction` carries an emotion vector of A straight into B's basis (v -> v W) and
`emolab align --transfer --transfer-aligner ridge` can steer B with it.

It needs only `emolab.api` and `emolab.hookspecs`: the contract a built-in uses.
"""

from __future__ import annotations

import numpy as np

from emolab.api import Aligner, Param, paired_rows
from emolab.hookspecs import hookimpl

__version__ = "0.1.0"


class RidgeMap(Aligner):
    name = "ridge"
    description = "Ridge-regression map B ~ A W (closed form); score = mean cosine and R^2"
    params = (
        Param("alpha", float, 1.0, "L2 penalty on W (0: least squares, minimum norm)", min=0.0),
    )
    maps_directions = True

    def fit(self, a, b):
        a, b = paired_rows(a, b)
        self.mean_a_, self.mean_b_ = a.mean(0), b.mean(0)
        self.svd_ = np.linalg.svd(a - self.mean_a_, full_matrices=False)
        self.weights_ = self._solve(b)
        return self

    def fit_permuted(self, a, b, perm):
        """A's SVD and B's mean do not depend on the pairing: only W is solved again."""
        if len(a) != len(self.svd_[0]):
            raise ValueError("fit_permuted needs the rows this aligner was fitted on")
        clone = self.with_params()
        clone.mean_a_, clone.mean_b_, clone.svd_ = self.mean_a_, self.mean_b_, self.svd_
        clone.weights_ = clone._solve(np.asarray(b, np.float64)[perm])
        return clone

    def _solve(self, b: np.ndarray) -> np.ndarray:
        """W `[d_a, d_b]` for targets b, from the stored SVD of the centred A rows."""
        u, s, vt = self.svd_
        if self.alpha > 0:
            shrink = s / (s**2 + self.alpha)
        else:  # the pseudo-inverse: directions with no variance in A get no weight
            tol = (s.max() if s.size else 0.0) * max(u.shape[0], vt.shape[1]) * np.finfo(float).eps
            shrink = np.divide(1.0, s, out=np.zeros_like(s), where=s > tol)
        return vt.T @ (shrink[:, None] * (u.T @ (b - self.mean_b_)))

    def transform_a(self, a):
        """A rows -> B's centred space (the prediction of B)."""
        return (np.asarray(a, np.float64) - self.mean_a_) @ self.weights_

    def transform_b(self, b):
        """B rows -> B's centred space (where `transform_a` lands)."""
        return np.asarray(b, np.float64) - self.mean_b_

    def map_direction(self, v):
        """A direction of A (`[d_a]`, no centring: a direction is not a point) -> B's basis."""
        return np.asarray(v, np.float64) @ self.weights_

    def score(self, a, b) -> dict[str, float]:
        """Mean cosine of each predicted B row with the real one, and R^2 (share of the rows'
        variance around their own mean that the prediction explains; < 0 is worse than
        predicting that mean)."""
        x, y = self.transform_a(a), self.transform_b(b)
        cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1) + 1e-12)
        spread = ((y - y.mean(0)) ** 2).sum()
        r2 = 1.0 - ((y - x) ** 2).sum() / spread if spread > 0 else 0.0
        return {"mean_cos": float(cos.mean()), "r2": float(r2)}


@hookimpl
def register_aligners(register):
    register(RidgeMap())
