"""Success rate as the source studies measure it, and the dev/test halves of a prompt set.

A scenario is one (emotion, prompt) pair. It succeeds when the external judge's top label
for the steered text is the target emotion *and* the text stayed surgical (its own
perplexity ratio and repetition inside the surgical regime): a text that says "sad" by
breaking into "sad sad sad" is not a success. The 20-emotion study reports 37 of 40
scenarios, the emotion-circuit study 91% for steering; both count exactly this.

Every rate sits beside two controls: the unsteered text (how often the target is already the
top label) and a random direction of the same size at the same layer and alpha (how much any
push of that size "succeeds" by disturbing the text).

Choices (layer, alpha, vector source) are made on the dev half of the prompts; the test half
is only reported, so "prompts not used for any choice" means exactly the test half.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPLITS = ("dev", "test")
RANDOM_SEED = 12345


def prompt_halves(n: int) -> dict[str, list[int]]:
    """Indices of the dev (even positions) and test (odd positions) prompts: interleaved, so
    a prompt file sorted by topic still gives both halves every topic."""
    return {"dev": list(range(0, n, 2)), "test": list(range(1, n, 2))}


def random_like(vec: np.ndarray, seed: int = RANDOM_SEED) -> np.ndarray:
    """`[layers, d]` random Gaussian directions with the norm of `vec`'s row at each layer
    (rows `vec` lacks stay NaN). Seeded: every cell at a layer gets the same direction, so
    with relative alpha the random control is the same text for every emotion."""
    rng = np.random.default_rng(seed)
    r = rng.standard_normal(vec.shape).astype(np.float32)
    r /= np.linalg.norm(r, axis=-1, keepdims=True)
    return r * np.linalg.norm(vec, axis=-1, keepdims=True)


def success_flags(probs: np.ndarray, col: int, regimes: Sequence[str] | None) -> np.ndarray:
    """Per text: top label is the target and (when regimes are given) the text is surgical.
    Unsteered texts pass `None`: they are the reference the regime is measured against."""
    on_target = probs.argmax(1) == col
    if regimes is None:
        return on_target
    return on_target & (np.asarray(regimes) == "surgical")


def rate(flags: np.ndarray, idx: Sequence[int]) -> float:
    """Share of successes among the scenarios `idx`; NaN when there are none."""
    return float(np.mean(flags[list(idx)])) if len(idx) else float("nan")


def surgical_shares(regimes: Sequence[str] | None, halves: dict[str, list[int]]) -> dict:
    """`surgical_dev`, `surgical_test`: the share of each half's texts whose own regime is
    surgical (NaN without per-text regimes). The dev share breaks ties of the dev choice."""
    if regimes is None:
        return {f"surgical_{s}": float("nan") for s in SPLITS}
    ok = np.asarray(regimes) == "surgical"
    return {f"surgical_{s}": round(rate(ok, halves[s]), 5) for s in SPLITS}


def split_rates(flags: np.ndarray, halves: dict[str, list[int]], name: str) -> dict[str, float]:
    """`{name}_dev`, `{name}_test` rates, rounded for the tables."""
    return {f"{name}_{s}": round(rate(flags, halves[s]), 5) for s in SPLITS}


def _num(x) -> float:
    v = float(x)
    return v if np.isfinite(v) else -np.inf


def best_on_dev(cells: list[dict], min_share: float = 0.5) -> dict[str, dict | None]:
    """Per emotion, the cell with the highest dev success. Ties: a cell that kept at least
    `min_share` of its dev texts surgical (the sweep's `min_surgical_share`, the rule that
    makes a cell count as surgical) before one that broke more of them, then the higher dev
    P(target), then the lower pooled perplexity ratio. So a cell that wins the tie on
    P(target) by breaking most of its dev texts loses to one that keeps them fluent, while
    among fluent cells the stronger push still wins. Test columns are never looked at.
    Cells from before `surgical_dev` all read it as missing, so their order is the old one."""
    out: dict[str, dict | None] = {}

    def key(c: dict) -> tuple:
        share = float(c.get("surgical_dev", np.nan))
        return (
            _num(c["success_dev"]),
            bool(np.isnan(share) or share >= min_share),
            _num(c["p_target_dev"]),
            -_num(c["perplexity_ratio"]),
        )

    for c in cells:
        best = out.setdefault(c["emotion"], None)
        if best is None or key(c) > key(best):
            out[c["emotion"]] = c
    return out


def headline(best: dict[str, dict | None]) -> dict[str, float]:
    """Test success of the dev-chosen cells, averaged over emotions, beside both controls."""
    chosen = [b for b in best.values() if b is not None]
    if not chosen:
        return {}

    def mean(key: str) -> float:
        vals = [float(b[key]) for b in chosen if np.isfinite(float(b[key]))]
        return float(np.mean(vals)) if vals else float("nan")

    return {
        "success_test": mean("success_test"),
        "success_baseline_test": mean("success_baseline_test"),
        "success_random_test": mean("success_random_test"),
        "emotions": float(len(chosen)),
    }
