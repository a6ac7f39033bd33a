"""Mean logit of one token set minus another at the last position (e.g. positive vs negative)."""

from __future__ import annotations

from ...api import Evaluator, Param, Run
from ...runner import last_logits, token_ids


class LogitDiff(Evaluator):
    name = "logit_diff"
    description = "logit(A tokens) - logit(B tokens) at the last position, steered and baseline"
    params = (
        Param("a", str, "good,great,amazing,wonderful,perfect", "comma-separated words (A)"),
        Param("b", str, "bad,terrible,awful,horrible,disgusting", "comma-separated words (B)"),
    )

    def per_prompt(self, run: Run, hooks) -> list[float]:
        a = token_ids(run.model, self.a.split(","))
        b = token_ids(run.model, self.b.split(","))
        logits = last_logits(run.model, run.prompts, hooks)
        return (logits[:, a].mean(1) - logits[:, b].mean(1)).tolist()

    def evaluate(self, run: Run) -> dict[str, float]:
        base = self.per_prompt(run, ())
        steered = self.per_prompt(run, run.hooks)
        mean = sum(steered) / len(steered)
        mean_base = sum(base) / len(base)
        return {
            "logit_diff": mean,
            "logit_diff_baseline": mean_base,
            "logit_diff_change": mean - mean_base,
        }
