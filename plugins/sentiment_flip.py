"""A single-file emolab plugin: the `sentiment_flip` evaluator.

Drop this file into a folder named by EMOLAB_PLUGINS_DIR and emolab loads it; no package,
no install. It asks the model itself whether each text reads positive or negative
(logit of ' positive' minus ' negative' after a short question) and reports how often
steering flipped the baseline text's sentiment toward the target emotion's valence.
"""

from __future__ import annotations

import numpy as np

from emolab.api import Evaluator, Param, Run
from emolab.errors import BadInput
from emolab.hookspecs import hookimpl
from emolab.runner import label_token_ids, last_logits

__version__ = "0.1.0"

# +1 positive, -1 negative; emotions not listed have no valence and are refused.
VALENCE = {
    "joy": 1,
    "love": 1,
    "gratitude": 1,
    "admiration": 1,
    "amusement": 1,
    "optimism": 1,
    "surprise": 1,
    "anger": -1,
    "disgust": -1,
    "fear": -1,
    "sadness": -1,
    "grief": -1,
    "annoyance": -1,
    "disappointment": -1,
}

QUESTION = "{text}\nQuestion: is the text above positive or negative? Answer:"


class SentimentFlip(Evaluator):
    name = "sentiment_flip"
    description = "Share of texts whose self-judged sentiment flips toward the target valence"
    params = (Param("margin", float, 0.0, "minimum logit gap that counts as a sentiment"),)

    def sentiment(self, run: Run, texts) -> np.ndarray:
        ids = label_token_ids(run.model, ["positive", "negative"])
        logits = last_logits(run.model, [QUESTION.format(text=t) for t in texts])
        return logits[:, ids["positive"]] - logits[:, ids["negative"]]

    def evaluate(self, run: Run) -> dict[str, float]:
        if run.target not in VALENCE:
            raise BadInput(
                f"sentiment_flip has no valence for '{run.target}' "
                f"(knows: {', '.join(sorted(VALENCE))})"
            )
        if not run.baseline_texts or len(run.baseline_texts) != len(run.steered_texts):
            raise BadInput("sentiment_flip needs baseline and steered texts of equal number")
        sign = VALENCE[run.target]
        base = self.sentiment(run, run.baseline_texts) * sign
        steered = self.sentiment(run, run.steered_texts) * sign
        flipped = (base <= self.margin) & (steered > self.margin)
        return {
            "sentiment_flip": float(flipped.mean()),
            "sentiment_shift": float((steered - base).mean()),
        }


@hookimpl
def register_evaluators(register):
    register(SentimentFlip())
