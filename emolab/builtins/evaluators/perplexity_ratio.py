"""How much an intervention damages the text: perplexity of the steered continuation under
the unsteered model over the baseline continuation's, plus repetition, and a regime.

Perplexity alone misleads: degenerate repetition ("!!!!!!", "open open open") is very
predictable, so its perplexity is low. The regime therefore checks repetition first:

- repetitive: distinct-2 of the steered text (unique token bigrams / bigrams, averaged over
  prompts) below `min_distinct2`, or below `max_distinct_drop` x the baseline's;
- explosive: otherwise, perplexity ratio above `max_ratio`;
- surgical: neither — the text changed but stayed fluent.

Defaults (ratio 3, distinct-2 0.5 or 60 % of the baseline's) follow the source study's
SmolLM2 reference: joy at alpha 0.3 was fluent at perplexity x1.8, and alpha >= 1
degenerated into repetition at every layer.
"""

from __future__ import annotations

import numpy as np

from ...api import Evaluator, Param, Run
from ...errors import BadInput
from ...runner import chat, continuation_logprobs

REGIMES = ("surgical", "repetitive", "explosive")


def distinct_n(tokens: list[int], n: int) -> float:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def regime(
    ratio: float,
    distinct: float,
    distinct_base: float,
    max_ratio: float,
    min_distinct: float,
    max_drop: float,
) -> str:
    if distinct < min_distinct or distinct < max_drop * distinct_base:
        return "repetitive"
    if not np.isfinite(ratio) or ratio > max_ratio:
        return "explosive"
    return "surgical"


class PerplexityRatio(Evaluator):
    name = "perplexity_ratio"
    description = "Steered/baseline perplexity under the unsteered model, distinct-n, regime"
    params = (
        Param("max_ratio", float, 3.0, "perplexity ratio above which the text is explosive"),
        Param("min_distinct2", float, 0.5, "distinct-2 below which the text is repetitive"),
        Param(
            "max_distinct_drop",
            float,
            0.6,
            "repetitive also when distinct-2 falls below this fraction of the baseline's",
        ),
    )

    def evaluate(self, run: Run) -> dict[str, float]:
        return self.evaluate_runs([run])[0]

    def evaluate_runs(self, runs: list[Run]) -> list[dict[str, float]]:
        """Several runs over the same prompts and baseline texts (the cells of one sweep
        batch): the prompts' contexts and the baseline texts are scored once for all of
        them, each run's steered texts in a forward of their own, so every run's metrics
        equal `evaluate` of that run alone."""
        first = runs[0]
        for run in runs:
            if not run.steered_texts or len(run.steered_texts) != len(run.baseline_texts):
                raise BadInput("perplexity_ratio needs baseline and steered texts")
            if list(run.prompts) != list(first.prompts) or list(run.baseline_texts) != list(
                first.baseline_texts
            ):
                raise BadInput("perplexity_ratio scores runs together only over one baseline")
        model = first.model
        contexts = [chat(model, p) for p in first.prompts]
        lp_b, *lp_runs = continuation_logprobs(
            model, contexts, [first.baseline_texts, *(r.steered_texts for r in runs)]
        )
        return [
            self._metrics(run, np.asarray(lp_s), np.asarray(lp_b))
            for run, lp_s in zip(runs, lp_runs, strict=True)
        ]

    def _metrics(self, run: Run, lp_s: np.ndarray, lp_b: np.ndarray) -> dict[str, float]:
        model = run.model
        ok = np.isfinite(lp_s) & np.isfinite(lp_b)
        if not ok.any():
            raise BadInput("no non-empty continuation to score")
        ppl_s, ppl_b = float(np.exp(-lp_s[ok].mean())), float(np.exp(-lp_b[ok].mean()))
        ratio = ppl_s / ppl_b

        def dist(texts, n):
            toks = [model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
            return float(np.mean([distinct_n(t, n) for t in toks]))

        d2s, d2b = dist(run.steered_texts, 2), dist(run.baseline_texts, 2)
        per_text = [
            regime(
                float(np.exp(lp_b[i] - lp_s[i])),
                dist([s], 2),
                dist([b], 2),
                self.max_ratio,
                self.min_distinct2,
                self.max_distinct_drop,
            )
            if ok[i]
            else "explosive"  # an empty continuation is no surgical text
            for i, (s, b) in enumerate(zip(run.steered_texts, run.baseline_texts, strict=False))
        ]
        per_prompt = [r for r, good in zip(per_text, ok, strict=True) if good]
        # the per-text verdicts, for a success rate (on target AND surgical) per scenario
        run.extra["regimes"] = per_text
        reg = regime(ratio, d2s, d2b, self.max_ratio, self.min_distinct2, self.max_distinct_drop)
        return {
            "perplexity_ratio": ratio,
            "perplexity_steered": ppl_s,
            "perplexity_baseline": ppl_b,
            "distinct1": dist(run.steered_texts, 1),
            "distinct2": d2s,
            "distinct2_baseline": d2b,
            "regime_code": float(REGIMES.index(reg)),
            "surgical_share": float(np.mean([r == "surgical" for r in per_prompt])),
        }
