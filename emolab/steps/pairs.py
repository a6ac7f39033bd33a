"""Contrastive prompt pairs as a vector source (CAA-style, as in contrastive activation
addition): the same user prompt answered once with an emotional and once with a neutral
continuation, the residual read at the answer's tokens.

Pair k of an emotion is `templates[k % T]` answered with that emotion's continuation
`k % C` against the same template answered with the neutral continuation `k % C`; the
shipped file (`datafiles/pairs/pairs.yaml`) tells the same event in continuation i of every
label, so a pair differs in its emotion and not its topic. The neutral texts are shared by
every emotion, so `mean_diff` on these activations is exactly the mean over pairs of the
activation difference. The answer is tokenised apart from the prompt and read in one
teacher-forced pass (`capture.capture_spans`): 'mean' averages the answer's tokens, 'last'
takes its final one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

from ..capture import capture_spans, check_span_position
from ..data import datafile
from ..errors import BadInput
from ..models import LoadedModel
from ..runner import chat


@cache
def shipped() -> dict:
    """The shipped templates and continuations (read once)."""
    import yaml

    return yaml.safe_load(datafile("pairs", "pairs.yaml").read_text(encoding="utf-8"))


def max_pairs() -> int:
    """How many distinct pairs the shipped file makes per emotion."""
    from math import lcm

    data = shipped()
    lengths = {len(v) for v in data["continuations"].values()}
    return lcm(len(data["templates"]), *lengths)


def pair_texts(
    labels: Sequence[str], baseline: str, n: int, position: str = "mean"
) -> list[tuple[str, str, str]]:
    """(label, template, continuation) for the first `n` pairs of every label (the
    baseline's rows are the neutral halves, shared by all emotions); a request the shipped
    pairs cannot serve is one line, before any model loads."""
    check_span_position(position, "--source pairs")
    data = shipped()
    have = data["continuations"]
    if baseline != "neutral":
        raise BadInput(f"--source pairs contrasts with 'neutral', not '{baseline}'")
    missing = [lab for lab in labels if lab not in have]
    if missing:
        raise BadInput(
            f"--source pairs has no continuations for {', '.join(missing)} "
            f"(it has: {', '.join(sorted(have))})"
        )
    if not 2 <= n <= max_pairs():
        raise BadInput(f"--pairs must lie in 2-{max_pairs()} (distinct shipped pairs), not {n}")
    templates = data["templates"]
    return [
        (lab, templates[k % len(templates)], have[lab][k % len(have[lab])])
        for lab in labels
        for k in range(n)
    ]


def pair_activations(
    model: LoadedModel,
    labels: Sequence[str],
    baseline: str,
    hooks: Sequence[str],
    position: str = "mean",
    n: int = 60,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
    check: Callable[[], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """`[len(labels) * n, len(hooks), d]` at the answer tokens, their labels, and the pairs
    as records (label, prompt, continuation)."""
    rows = pair_texts(labels, baseline, n, position)
    tok = model.tokenizer
    sequences, starts = [], []
    for _, template, answer in rows:
        prompt = tok(model.with_bos(chat(model, template)), add_special_tokens=False)["input_ids"]
        said = tok(answer, add_special_tokens=False)["input_ids"]
        sequences.append(list(prompt) + list(said))
        starts.append(len(prompt))
    xs = []
    for b in range(0, len(rows), batch_size):
        xs.append(
            capture_spans(
                model,
                sequences[b : b + batch_size],
                starts[b : b + batch_size],
                hooks,
                position,
                batch_size=batch_size,
                check=check,
            )
        )
        if progress:
            progress(min(b + batch_size, len(rows)), len(rows))
    records = [{"label": lab, "prompt": t, "text": a} for lab, t, a in rows]
    return np.concatenate(xs), np.array([lab for lab, _, _ in rows]), records
