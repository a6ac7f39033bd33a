"""Input checks every built-in extractor shares, so bad data fails with one clear line."""

from __future__ import annotations

import numpy as np

from ...errors import BadInput


def check_classes(method: str, pos: np.ndarray, neg: np.ndarray, min_per_class: int = 1) -> None:
    """Both classes present, big enough for the method, and finite."""
    for what, x in (("emotion", pos), ("baseline", neg)):
        if x.ndim < 2 or len(x) == 0:
            raise BadInput(f"{method} needs two classes: the {what} class has no examples")
        if len(x) < min_per_class:
            raise BadInput(
                f"{method} needs at least {min_per_class} examples per class, "
                f"the {what} class has {len(x)}"
            )
        if not np.isfinite(x).all():
            raise BadInput(f"{method}: the {what} activations contain NaN or inf")


def orient(direction: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Flip a direction (sign is arbitrary for PCA / k-means) so it points toward the emotion."""
    return direction if (pos.mean(0) - neg.mean(0)) @ direction >= 0 else -direction
