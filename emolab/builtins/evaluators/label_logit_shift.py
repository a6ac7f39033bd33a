"""Rise of each emotion label's first-token logit under a prompt that lists the emotions."""

from __future__ import annotations

import numpy as np

from ...api import Evaluator, Run
from ...data import list_prompt
from ...errors import BadInput
from ...runner import label_token_ids, last_logits


class LabelLogitShift(Evaluator):
    name = "label_logit_shift"
    description = "Steered minus unsteered logit of each label's first token (list prompt)"

    def evaluate(self, run: Run) -> dict[str, float]:
        if not run.emotions:
            raise BadInput("label_logit_shift needs the list of emotions")
        labels = list(run.emotions)
        ids = label_token_ids(run.model, labels)
        texts = [list_prompt(p, labels) for p in run.prompts]
        base = last_logits(run.model, texts)
        steered = last_logits(run.model, texts, run.hooks)
        if np.array_equal(steered, base):
            # the hooks never act on the readout's pass (e.g. `positions=generated`: the
            # list prompt is read unsteered), so the shift is not measured, not zero
            steered = np.full_like(base, np.nan)
        cols = [ids[label] for label in labels]
        shift = (steered[:, cols] - base[:, cols]).mean(0)
        out = {f"label_logit_shift/{lab}": float(s) for lab, s in zip(labels, shift, strict=True)}
        if run.target:
            out["label_logit_shift"] = out[f"label_logit_shift/{run.target}"]
            others = [s for lab, s in zip(labels, shift, strict=True) if lab != run.target]
            out["label_logit_shift_vs_others"] = out["label_logit_shift"] - float(np.mean(others))
        return out
