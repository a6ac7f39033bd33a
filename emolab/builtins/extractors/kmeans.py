"""Two-cluster k-means on emotion + baseline activations, labels unseen: centroid difference.

Unsupervised, so the clusters may follow something other than emotion (length, topic); the
layer table shows whether they do. The sign is fixed toward the emotion afterwards.
"""

import numpy as np

from ...api import Extractor, Param
from .checks import check_classes, orient


class KMeans(Extractor):
    name = "kmeans"
    description = "2-cluster k-means centroid difference (unsupervised), sign toward the emotion"
    params = (Param("n_init", int, 1, "k-means restarts"), Param("seed", int, 0))

    def fit_layer(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        from sklearn.cluster import KMeans as SkKMeans

        check_classes(self.name, pos, neg, 1)
        x = np.concatenate([pos, neg]).astype(np.float64)
        km = SkKMeans(n_clusters=2, n_init=self.n_init, max_iter=100, random_state=self.seed).fit(x)
        c = km.cluster_centers_
        return orient(c[1] - c[0], pos, neg).astype(np.float32)
