"""The list prompt and its label tokens, per language and per tokenizer.

The steering-vs-fine-tuning study scores an emotion by the logit of its label's *first*
token after a prompt that lists the emotions. That only means something when each label's
first token is its own: a byte-level tokenizer may start several Japanese labels with the
same byte (SmolLM2: 嫌悪 and 喜び both begin with 'å'), or start every label with a bare
space token. `resolve` finds each label's first token with a visible character and reports
the labels that share one, so a user sees when a label-logit metric cannot tell them apart.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .data import LIST_PROMPT, datafile, list_prompt
from .errors import BadInput, UnknownName


@dataclass(frozen=True)
class Language:
    """How the list prompt reads in one language and how a label follows 'Answer:'."""

    code: str
    template: str
    sep: str
    label_prefix: str  # what precedes the label after the prompt (' ' in English)
    names: dict[str, str] = field(default_factory=dict)  # English label -> this language's


JA_NAMES = {
    "anger": "怒り",
    "boredom": "退屈",
    "disgust": "嫌悪",
    "fear": "恐怖",
    "guilt": "罪悪感",
    "joy": "喜び",
    "pride": "誇り",
    "relief": "安堵",
    "sadness": "悲しみ",
    "shame": "恥",
    "surprise": "驚き",
    "trust": "信頼",
    "neutral": "中立",
}

LANGUAGES = {
    "en": Language("en", LIST_PROMPT, ", ", " "),
    "ja": Language(
        "ja",
        "次の感情を考えてください：{labels}。この文脈はどの感情を表していますか？"
        "文脈：「{text}」答え：",
        "、",
        "",
        JA_NAMES,
    ),
}


def language(code: str) -> Language:
    if code not in LANGUAGES:
        raise UnknownName(f"unknown language '{code}' (known: {', '.join(LANGUAGES)})")
    return LANGUAGES[code]


def label_name(label: str, lang: str = "en") -> str:
    """A label as written in `lang` (English labels are their own names)."""
    spec = language(lang)
    if lang == "en":
        return label
    if label not in spec.names:
        raise UnknownName(
            f"no {lang} name for label '{label}' (known: {', '.join(sorted(spec.names))})"
        )
    return spec.names[label]


def prompt(text: str, labels: Sequence[str], lang: str = "en") -> str:
    """The list prompt for `text`, labels (given in English) written in `lang`."""
    if lang == "en":
        return list_prompt(text, labels)
    spec = language(lang)
    names = [label_name(label, lang) for label in labels]
    return spec.template.format(labels=spec.sep.join(names), text=text)


def answer(label: str, lang: str = "en") -> str:
    """What follows the prompt when the answer is `label` (' anger', '怒り')."""
    return language(lang).label_prefix + label_name(label, lang)


def _visible(piece: str) -> bool:
    """A decoded token that shows something: not only spaces or zero-width format marks."""
    return any(not (c.isspace() or unicodedata.category(c) == "Cf") for c in piece)


@dataclass
class LabelTokens:
    """Each label's first visible token: id, raw token string, and shared tokens."""

    labels: list[str]
    names: dict[str, str]
    ids: dict[str, int]
    tokens: dict[str, str]
    collisions: list[list[str]]

    def columns(self) -> list[int]:
        return [self.ids[label] for label in self.labels]

    def as_dict(self) -> dict:
        return {
            "labels": self.labels,
            "names": self.names,
            "ids": self.ids,
            "tokens": self.tokens,
            "collisions": self.collisions,
        }

    def collision_note(self) -> str:
        """One line naming the labels that share a first token ('' when none do)."""
        if not self.collisions:
            return ""
        return "labels sharing a first token (their label logits are one number): " + "; ".join(
            " = ".join(f"{lab} ({self.names[lab]})" for lab in group)
            + f" -> {self.tokens[group[0]]!r}"
            for group in self.collisions
        )


def resolve(
    tokenizer, labels: Sequence[str], lang: str = "en", model_name: str = ""
) -> LabelTokens:
    """First visible token of each label's answer text in this tokenizer.

    A leading token that decodes to only whitespace (Gemma's '▁' before a Japanese word) is
    skipped; a label whose tokens show nothing (only spaces, zero-width marks or unknown
    tokens) is an error.
    """
    if not labels:
        raise BadInput("no labels given")
    unk = getattr(tokenizer, "unk_token_id", None)
    ids, tokens, names = {}, {}, {}
    for label in labels:
        names[label] = label_name(label, lang)
        toks = [
            t
            for t in tokenizer(answer(label, lang), add_special_tokens=False)["input_ids"]
            if t != unk
        ]
        first = next((t for t in toks if _visible(tokenizer.decode([t]))), None)
        if first is None or not _visible(tokenizer.decode(toks)):
            raise BadInput(
                f"label {names[label]!r} has no token in {model_name or 'the model'}'s tokenizer"
            )
        ids[label] = int(first)
        tokens[label] = tokenizer.convert_ids_to_tokens(int(first))
    by_id: dict[int, list[str]] = {}
    for label in labels:
        by_id.setdefault(ids[label], []).append(label)
    collisions = [group for group in by_id.values() if len(group) > 1]
    return LabelTokens(list(labels), names, ids, tokens, collisions)


def answer_ids(tokenizer, label: str, lang: str = "en") -> list[int]:
    """Token ids of the whole answer, for a training target after the prompt."""
    return tokenizer(answer(label, lang), add_special_tokens=False)["input_ids"]


def label_logits(model, prompts: Sequence[str], tokens: LabelTokens, hooks=(), check=None):
    """`[n, labels]` logits of each label's first token at the prompts' last position."""
    from .runner import last_logits

    logits = last_logits(model, prompts, hooks, batch_size=8, check=check)
    return logits[:, tokens.columns()]


def accuracy(model, examples, tokens: LabelTokens, lang: str = "en", check=None) -> float:
    """Share of examples whose label has the highest first-token logit under the list prompt."""
    if not examples:
        raise BadInput("no examples to score")
    prompts = [prompt(ex.text, tokens.labels, lang) for ex in examples]
    pred = label_logits(model, prompts, tokens, check=check).argmax(1)
    gold = np.array([tokens.labels.index(ex.label) for ex in examples])
    return float((pred == gold).mean())


@lru_cache(maxsize=1)
def parallel_texts() -> tuple[dict, ...]:
    """The shipped English/Japanese parallel sentences (emotions + neutral, and prompts)."""
    path = datafile("crosslingual", "en_ja.jsonl")
    return tuple(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line)
