"""Sessions for the figure, report and vector-file tests, made by running the real steps on
the tiny random models (no hand-written artifacts): one session with every single-model
analysis, and the cross-lingual one."""

from __future__ import annotations

from pathlib import Path

from emolab.steps import align, crosslingual, extract, heads, layers, steer
from emolab.steps.common import new_session

EXTRACT = {"limit": 12, "test_limit": 6}


def analysed(root: Path) -> Path:
    """tiny-llama: extract (mean_diff + logistic), layers, heads for joy, align with
    tiny-gpt2 on the same texts, one steer."""
    s = new_session(root / "analysed", "tiny-llama")
    extract.run(s, {**EXTRACT, "methods": ["mean_diff", "logistic"]})
    layers.run(s, {})
    heads.run(s, {"emotion": "joy", "n_texts": 4})
    b = new_session(root / "gpt2", "tiny-gpt2")
    extract.run(b, EXTRACT)
    align.run(s, {"session_b": str(b.path), "draws": 10})
    steer.run(s, {"emotion": "joy", "layer": 2, "max_new_tokens": 4})
    return s.path


def multilingual(root: Path) -> Path:
    s = new_session(root / "crosslingual", "tiny-llama")
    crosslingual.run(s, {"layers": "2", "n_prompts": 2, "random_draws": 2})
    return s.path
