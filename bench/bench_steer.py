"""Steering-experiment speed on SmolLM2, as ratios measured in one run (issue 5).

- batched sweep generation (20 neutral prompts in one left-padded batch) / one prompt at a
  time: what makes a 72-cell sweep fit on two cores
- each intervention's forward-pass overhead (last-token logits of 64 reviews) / no hooks
- judge throughput: texts per second of the MiniLM + tf-idf ensemble (a sweep cell judges 20)
"""

from __future__ import annotations

import numpy as np
from timing import best_of, row


def main() -> None:
    import torch

    from emolab import plugins
    from emolab.data import NEUTRAL_PROMPTS
    from emolab.plugins import load_model as load
    from emolab.runner import generate, last_logits

    model = load("smollm2-135m")
    print(f"({torch.get_num_threads()} threads)")
    prompts = list(NEUTRAL_PROMPTS)
    vec = np.random.default_rng(0).standard_normal((model.n_layers, model.d_model))
    norms = np.full(model.n_layers, 200.0)
    steer = plugins.get("interventions", "residual_add", layer=20, alpha=0.3).hooks(
        model, vector=vec, norms=norms
    )
    generate(model, prompts[:2], steer, 4)  # warm up
    t_batched = best_of(lambda: generate(model, prompts, steer, 16, batch_size=20), 2)
    t_single = best_of(lambda: generate(model, prompts, steer, 16, batch_size=1), 1)
    r = t_single / t_batched
    row("sweep cell generation: one at a time / batched (speed-up)", r, ">= 2", r >= 2)

    src = plugins.get("datasets", "tigges-reviews")
    texts = [e.text for e in src.load("tigges-reviews", "test")][:64]
    t_plain = best_of(lambda: last_logits(model, texts))
    cases = {
        "residual_add (L20)": steer,
        "directional_ablation (all 30 layers)": plugins.get(
            "interventions", "directional_ablation"
        ).hooks(model, vector=vec),
        "head_ablation (3 heads, zero)": plugins.get(
            "interventions", "head_ablation", heads="10.1,14.3,20.5"
        ).hooks(model),
        "comma_zeroing (all layers)": plugins.get("interventions", "comma_zeroing").hooks(model),
        "enhance (2 heads, 5 neurons)": plugins.get(
            "interventions", "enhance", heads="10.1,14.3", neurons="12.1,12.2,12.3,12.4,12.5"
        ).hooks(model),
    }
    for name, hooks in cases.items():
        r = best_of(lambda hooks=hooks: last_logits(model, texts, hooks)) / t_plain
        row(f"{name} forward / no hooks", r, "<= 1.15", r <= 1.15)

    from emolab.classifier import load_judge

    judge = load_judge("ekman")
    sample = [f"{p} It was a day like any other, nothing special." for p in prompts] * 3
    judge.proba(sample[:4])
    rate = len(sample) / best_of(lambda: judge.proba(sample))
    row("judge (MiniLM + tf-idf ensemble) texts / s", rate, ">= 20", rate >= 20)


if __name__ == "__main__":
    main()
