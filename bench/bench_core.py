"""Core speed on SmolLM2, each as a ratio to plain Hugging Face on the same inputs (issue 3).

- capture (all layers' hook_resid_post at `last`) / a bare HF forward of the same batches
- the same capture through the TransformerBridge (the path every non-fast TL name takes),
  and a bridge-only name (`blocks.14.attn.hook_pattern`) / the same bare forward
- single-layer extraction (stops after that block) / a full bare forward
- steered generation (residual_add, greedy; batch 1 and 8) / unsteered HF generate
- second model load time, and peak RSS of a small `emolab demo`
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile

import numpy as np
from timing import best_of, row


def main() -> None:
    import torch

    from emolab import plugins
    from emolab.capture import capture, capture_named
    from emolab.data import NEUTRAL_PROMPTS, read_goemotions
    from emolab.plugins import load_model as load
    from emolab.runner import chat

    model = load("smollm2-135m")
    texts = [e.text for e in read_goemotions("goemotions/ekman", "test")[1][:128]]
    batch = 16
    order = np.argsort([len(model.tokenizer(t)["input_ids"]) for t in texts], kind="stable")
    batches = [[texts[i] for i in order[s : s + batch]] for s in range(0, len(texts), batch)]

    def bare():
        with torch.no_grad():
            for b in batches:
                ids, mask = model.encode(b)
                model.hf(input_ids=ids, attention_mask=mask, use_cache=False)

    def cap_all():
        capture(model, texts, position="last", batch_size=batch)

    def cap_one():
        capture(model, texts, ["blocks.14.hook_resid_post"], position="last", batch_size=batch)

    bare()  # warm up
    t_bare = best_of(bare)
    print(f"bare HF forward of 128 texts: {t_bare:.2f}s ({torch.get_num_threads()} threads)")
    r = best_of(cap_all) / t_bare
    row("capture all layers (last) / bare forward", r, "<= 0.90", r <= 0.90)

    def cap_bridge():
        capture(model, texts, position="last", batch_size=batch, via="bridge")

    def cap_pattern():
        capture_named(model, texts, ["blocks.14.attn.hook_pattern"], batch_size=batch)

    cap_bridge()  # boots the bridge once (a fresh copy of the weights), outside the timing
    r = best_of(cap_bridge) / t_bare
    row("capture all layers through the bridge / bare forward", r, "", None)
    r = best_of(cap_pattern) / t_bare
    row("capture blocks.14.attn.hook_pattern (bridge) / bare forward", r, "", None)
    r = best_of(cap_one) / t_bare
    row("single-layer extraction (layer 14 of 30) / bare forward", r, "<= 0.55", r <= 0.55)

    vec = np.random.default_rng(0).standard_normal((model.n_layers, model.d_model))
    norms = np.full(model.n_layers, 200.0)
    hooks = plugins.get("interventions", "residual_add", layer=16, alpha=0.3).hooks(
        model, vector=vec, norms=norms
    )
    pad = model.tokenizer.pad_token_id
    for bs in (1, 8):
        prompts = [chat(model, p) for p in NEUTRAL_PROMPTS[:bs]]
        ids, mask = model.encode(prompts, "left")

        def gen(with_hooks, ids=ids, mask=mask):
            from emolab.hooks import apply_hooks

            with apply_hooks(model, hooks if with_hooks else []), torch.no_grad():
                model.hf.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=32,
                    min_new_tokens=32,
                    do_sample=False,
                    pad_token_id=pad,
                )

        def plain(ids=ids, mask=mask):
            with torch.no_grad():
                model.hf.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=32,
                    min_new_tokens=32,
                    do_sample=False,
                    pad_token_id=pad,
                )

        plain()
        r = best_of(lambda: gen(True)) / best_of(plain)
        target = 1.02 if bs == 1 else 1.03
        row(f"steered generate / plain HF generate (batch {bs})", r, f"<= {target}", r <= target)

    code = (
        "import time; t=time.time(); from emolab.plugins import load_model;"
        " load_model('smollm2-135m');"
        "print(time.time()-t)"
    )
    secs = float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    print(f"  second model load (cached safetensors, new process): {secs:.2f}s")

    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run(
            [
                sys.executable,
                "-m",
                "emolab.cli",
                "demo",
                "--limit",
                "20",
                "--session",
                os.path.join(tmp, "demo"),
            ],
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(f"  peak RSS of `emolab demo --limit 20`: {max(peak, before) / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
