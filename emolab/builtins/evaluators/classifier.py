"""The external judge on generated text: P(target emotion) of steered vs baseline texts.

A different model (MiniLM + heads trained on GoEmotions, see emolab.classifier) reads the
text, so the score does not depend on the steered model's own readout. The judge's test
accuracy is reported beside every verdict. Register another Evaluator to swap the judge.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...api import Evaluator, Param, Run
from ...classifier import JUDGES, combine
from ...errors import BadInput, UnknownName


class Classifier(Evaluator):
    name = "classifier"
    description = "External emotion classifier (MiniLM + tf-idf judges): P(target) steered vs base"
    params = (
        Param(
            "task", str, "ekman", "which head: Ekman-7 or GoEmotions-28", ("ekman", "goemotions")
        ),
        Param("judge", str, "ensemble", "which judge", JUDGES),
        Param("train_limit", int, 16000, "MiniLM head training texts (smaller: faster, worse)"),
    )

    def judge_obj(self):
        """The trained judge, kept on this configured copy: a sweep's copy travels to its
        workers with the judge inside, so no worker trains one."""
        if "_judge" not in self.__dict__:
            from ...classifier import load_judge

            self._judge = load_judge(self.task, train_limit=self.train_limit)
        return self._judge

    def parts(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Both judges' `[n, labels]` probabilities for a set of texts, from one MiniLM
        encode: the chosen judge's probabilities and the two judges' agreement both come
        from it. A set seen before (the baseline, judged once per sweep cell) is kept.
        Sets are never encoded together: padding to another set's longest text moves
        MiniLM's numbers in the 8th digit, and a cell must judge as it does alone."""
        cache = self.__dict__.setdefault("_seen", {})
        key = (self.task, self.train_limit, tuple(texts))
        if key not in cache:
            cache[key] = self.judge_obj().proba_parts(list(texts))
        return cache[key]

    def check_label(self, target: str) -> None:
        labels = self.judge_obj().labels
        if target not in labels:
            raise UnknownName(
                f"the {self.task} judge has no label '{target}' (labels: {', '.join(labels)})"
            )

    def scores(self, texts: Sequence[str], target: str) -> np.ndarray:
        """The chosen judge's `[n, labels]` probabilities of a set of texts (steer's
        success rates read them)."""
        self.check_label(target)
        return combine(self.parts(texts), self.judge)

    def evaluate(self, run: Run) -> dict[str, float]:
        if not run.target:
            raise BadInput("the classifier evaluator needs a target emotion")
        if not run.steered_texts:
            raise BadInput("the classifier evaluator needs generated texts")
        j = self.judge_obj()
        self.check_label(run.target)
        parts = self.parts(run.steered_texts)
        steered = combine(parts, self.judge)
        agree = float((parts["minilm"].argmax(1) == parts["tfidf"].argmax(1)).mean())
        col = j.labels.index(run.target)
        # per text, for success rates (top label = target): the sweep reads these
        run.extra["judge_probs"] = steered
        run.extra["judge_labels"] = list(j.labels)
        out = {
            "p_target": float(steered[:, col].mean()),
            "top_is_target": float((steered.argmax(1) == col).mean()),
            "p_target_minilm": float(parts["minilm"][:, col].mean()),
            "p_target_tfidf": float(parts["tfidf"][:, col].mean()),
            "judge_accuracy": j.accuracy(self.judge),
            "judge_macro_f1": float(j.scores[self.judge]["macro_f1"]),
            "judge_agreement": agree,
        }
        if run.baseline_texts:
            base = combine(self.parts(run.baseline_texts), self.judge)
            out["p_target_baseline"] = float(base[:, col].mean())
            out["p_target_rise"] = out["p_target"] - out["p_target_baseline"]
        return out
