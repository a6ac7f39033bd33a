"""An example third-party evaluator: how many of the generated words are emotion words.

No model reads the text: each text's words are looked up in a small emotion lexicon (the
built-in Ekman list below, or a JSON file `{emotion: [words]}`), so the score is cheap,
transparent, and blind to anything but vocabulary — a sanity check beside the classifier.
It reports `p_target`/`p_target_baseline`/`p_target_rise`/`top_is_target` like the built-in
classifier, so `emolab sweep --judge lexicon` fills the same columns.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from emolab.api import Evaluator, Param, Run
from emolab.errors import BadInput, UnknownName
from emolab.hookspecs import hookimpl

__version__ = "0.1.0"

EKMAN = {
    "anger": "angry anger furious rage mad annoyed irritated hate outraged hostile bitter livid",
    "disgust": "disgust disgusting gross revolting nasty vile sick repulsive awful foul yuck",
    "fear": "afraid fear scared terrified frightened anxious worried nervous panic dread horror",
    "joy": "happy joy glad delighted cheerful wonderful love great smile excited lovely fun",
    "sadness": "sad sadness unhappy sorrow grief cry tears lonely miserable depressed lost hurt",
    "surprise": "surprise surprised amazed astonished shocked unexpected wow sudden stunned",
}
WORD = re.compile(r"[a-z']+")


class Lexicon(Evaluator):
    name = "lexicon"
    description = "Share of emotion words in the generated text (a word list, no model)"
    params = (Param("lexicon", str, None, "JSON file {emotion: [words]} (default: built-in)"),)

    def words(self) -> dict[str, set[str]]:
        if self.lexicon is None:
            return {e: set(ws.split()) for e, ws in EKMAN.items()}
        path = Path(self.lexicon)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadInput(f"lexicon file {path}: {exc}") from None
        if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
            raise BadInput(f"lexicon file {path}: expected {{emotion: [words]}}")
        return {e: {str(w).lower() for w in ws} for e, ws in raw.items()}

    def scores(self, texts, target: str, lex: dict[str, set[str]]) -> tuple[float, float]:
        """Mean smoothed target share and the share of texts whose top emotion is the target."""
        shares, tops = [], []
        for text in texts:
            toks = WORD.findall(text.lower())
            hits = {e: sum(t in ws for t in toks) for e, ws in lex.items()}
            shares.append((hits[target] + 1) / (sum(hits.values()) + len(hits)))
            best = max(hits.values())
            tops.append(best > 0 and hits[target] == best)
        return sum(shares) / len(shares), sum(tops) / len(tops)

    def evaluate(self, run: Run) -> dict[str, float]:
        if not run.target:
            raise BadInput("the lexicon evaluator needs a target emotion")
        if not run.steered_texts:
            raise BadInput("the lexicon evaluator needs generated texts")
        lex = self.words()
        if run.target not in lex:
            raise UnknownName(
                f"the lexicon has no '{run.target}' words (has: {', '.join(sorted(lex))})"
            )
        p, top = self.scores(run.steered_texts, run.target, lex)
        every = set().union(*lex.values())
        hits = [sum(t in every for t in WORD.findall(x.lower())) for x in run.steered_texts]
        out = {"p_target": p, "top_is_target": top, "lexicon_hits": sum(hits) / len(hits)}
        if run.baseline_texts:
            out["p_target_baseline"] = self.scores(run.baseline_texts, run.target, lex)[0]
            out["p_target_rise"] = out["p_target"] - out["p_target_baseline"]
        return out


@hookimpl
def register_evaluators(register):
    register(Lexicon())
