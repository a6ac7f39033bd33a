"""Extraction cost on SmolLM2 (issue 4): 6 emotions + neutral x 200 texts, capture once,
fit many. Printed as ratios measured in one run:

- capture throughput (tokens/s, all 30 layers, mean pooling) / a bare HF forward of the
  same batches (target >= 0.85)
- fit time of mean_diff, pca, kmeans, logistic, lda (6 emotions x 30 layers) / capture time
  (target: small, <= 0.25)
- DAS, which re-runs the model's last token per gradient step, timed on 3 layers and
  reported per layer against the capture time (no target: it is the expensive method)
"""

from __future__ import annotations

import time

import numpy as np
from timing import row

LABELS = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")
FAST = ("mean_diff", "pca", "kmeans", "logistic", "lda")


def main() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    from emolab import plugins
    from emolab.capture import capture, resid_hooks
    from emolab.data import by_label, read_goemotions
    from emolab.plugins import load_model as load

    model = load("smollm2-135m")
    groups = by_label(read_goemotions("goemotions/ekman", "train")[1])
    texts, y = [], []
    for label in LABELS:
        texts += [e.text for e in groups[label][:200]]
        y += [label] * 200
    y = np.array(y)
    batch = 16
    lengths = [len(ids) for ids in model.tokenizer(texts, add_special_tokens=False)["input_ids"]]
    n_tokens = sum(lengths)
    order = np.argsort(lengths, kind="stable")
    batches = [[texts[i] for i in order[s : s + batch]] for s in range(0, len(texts), batch)]

    def bare() -> None:
        with torch.no_grad():
            for b in batches:
                ids, mask = model.encode(b, "right")
                model.hf(input_ids=ids, attention_mask=mask, use_cache=False)

    hooks = resid_hooks(model)
    bare()  # warm up
    t0 = time.perf_counter()
    bare()
    t_bare = time.perf_counter() - t0
    t0 = time.perf_counter()
    x = capture(model, texts, hooks, "mean", batch)
    t_cap = time.perf_counter() - t0
    print(
        f"{len(texts)} texts, {n_tokens} tokens, {torch.get_num_threads()} threads: "
        f"bare forward {n_tokens / t_bare:.0f} tok/s, capture {n_tokens / t_cap:.0f} tok/s"
    )
    r = t_bare / t_cap
    row("capture tokens/s / bare forward tokens/s", r, ">= 0.85", r >= 0.85)

    neg = x[y == "neutral"]
    # one-time cost per process (importing scikit-learn / scipy), shown apart from the fits
    t0 = time.perf_counter()
    for method in FAST:
        plugins.get("extractors", method).fit(x[y == "joy"][:8, :1], neg[:8, :1])
    print(
        f"first use of the extractors (imports, once per process): {time.perf_counter() - t0:.1f}s"
    )
    t0 = time.perf_counter()
    with threadpool_limits(1, user_api="blas"):
        for method in FAST:
            ext = plugins.get("extractors", method)
            for label in LABELS[:-1]:
                ext.fit(x[y == label], neg)
    t_fit = time.perf_counter() - t0
    r = t_fit / t_cap
    print(f"fit {', '.join(FAST)}: {t_fit:.1f}s for 6 emotions x {len(hooks)} layers")
    row("fit time (5 methods) / capture time", r, "<= 0.25", r <= 0.25)

    das = plugins.get("extractors", "das")
    few = [5, 15, 25]
    pos_texts = [t for t, lab in zip(texts, y, strict=True) if lab == "joy"]
    neg_texts = [t for t, lab in zip(texts, y, strict=True) if lab == "neutral"]
    ctx = {
        "model": model,
        "hooks": [hooks[i] for i in few],
        "labels": list(LABELS),
        "emotion": "joy",
        "baseline": "neutral",
        "pos_texts": pos_texts,
        "neg_texts": neg_texts,
    }
    t0 = time.perf_counter()
    das.fit_in_context(x[y == "joy"][:, few], neg[:, few], ctx)
    per_layer = (time.perf_counter() - t0) / len(few)
    print(f"das: {per_layer:.2f}s per layer and emotion ({das.steps} steps, {das.pairs} pairs)")
    row("das, one emotion x one layer / capture time", per_layer / t_cap, "-", None)


if __name__ == "__main__":
    main()
