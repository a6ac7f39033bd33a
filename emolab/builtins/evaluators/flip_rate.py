"""Fraction of prompts whose logit-difference sign flips under the intervention: the
directional-patching metric (a patched positive review read as negative counts as a flip)."""

from __future__ import annotations

import numpy as np

from ...api import Run
from .logit_diff import LogitDiff


class FlipRate(LogitDiff):
    name = "flip_rate"
    description = "Share of prompts whose sign of logit(A) - logit(B) flips (and each way)"

    def evaluate(self, run: Run) -> dict[str, float]:
        base = np.asarray(self.per_prompt(run, ()))
        steered = np.asarray(self.per_prompt(run, run.hooks))
        pos, neg = base > 0, base <= 0
        flipped = np.sign(base) != np.sign(steered)
        return {
            "flip_rate": float(flipped.mean()),
            "flip_rate_a_to_b": float(flipped[pos].mean()) if pos.any() else float("nan"),
            "flip_rate_b_to_a": float(flipped[neg].mean()) if neg.any() else float("nan"),
            "accuracy_a_baseline": float((base > 0).mean()),
            "accuracy_a_steered": float((steered > 0).mean()),
        }
