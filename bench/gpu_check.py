"""`make gpu-check`: does a session made on the CPU come out the same on a CUDA GPU, and how
fast is the GPU? Run it on a CUDA box (exit 2 without one).

1. makes a small SmolLM2 session on the CPU: extract (3 layers), layers, a 4-cell sweep;
2. replays it on cuda and prints every metric and vector difference against the tolerance;
3. prints the sweep cells' judge probabilities side by side, and the steered greedy texts
   token by token up to the first divergence;
4. measures steered generation (tokens/s) and capture (texts/s) on cuda in float32 and
   bfloat16.

    python bench/gpu_check.py [--keep DIR]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

GRID = {
    "emotions": ["joy", "anger"],
    "layers": [15],
    "alphas": [0.3, 0.75],
    "max_new_tokens": 24,
}
JUDGE_COLUMNS = ("p_target", "p_target_minilm", "p_target_tfidf", "perplexity_ratio")


def first_divergence(tok, a: str, b: str) -> str:
    ta, tb = (
        tok(a, add_special_tokens=False)["input_ids"],
        tok(b, add_special_tokens=False)["input_ids"],
    )
    for i, (x, y) in enumerate(zip(ta, tb)):
        if x != y:
            x4, y4 = tok.decode(ta[i : i + 4]), tok.decode(tb[i : i + 4])
            return f"diverge at token {i}: {x4!r} vs {y4!r}"
    return "same" if len(ta) == len(tb) else f"one is longer from token {min(len(ta), len(tb))}"


def texts_of(session, res_csv: str) -> dict:
    path = Path(res_csv.replace(".csv", "-texts.jsonl"))
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        out[(r["emotion"], r["layer"], r["alpha"])] = r["steered"]
    return out


def throughput(dtype: str) -> tuple[float, float]:
    import numpy as np
    import torch

    from emolab import plugins
    from emolab.capture import capture
    from emolab.data import NEUTRAL_PROMPTS
    from emolab.plugins import load_model as load
    from emolab.runner import generate

    model = load("smollm2-135m", "cuda", dtype)
    vec = np.random.default_rng(0).standard_normal((model.n_layers, model.d_model))
    hooks = plugins.get("interventions", "residual_add", layer=15, alpha=0.3).hooks(
        model, vector=vec, norms=np.full(model.n_layers, 200.0)
    )
    prompts = list(NEUTRAL_PROMPTS)
    generate(model, prompts[:2], hooks, 4)
    torch.cuda.synchronize()
    t = time.perf_counter()
    generate(model, prompts, hooks, 32, batch_size=20)
    torch.cuda.synchronize()
    gen = len(prompts) * 32 / (time.perf_counter() - t)
    texts = [f"{p} It was a day like any other, nothing special at all." for p in prompts] * 8
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(model.n_layers)]
    capture(model, texts[:4], names, "last")
    torch.cuda.synchronize()
    t = time.perf_counter()
    capture(model, texts, names, "last")
    torch.cuda.synchronize()
    return gen, len(texts) / (time.perf_counter() - t)


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print("gpu-check needs a CUDA device; torch sees none here", file=sys.stderr)
        return 2
    from emolab.data import NEUTRAL_PROMPTS
    from emolab.models import tolerance
    from emolab.plugins import load_model as load
    from emolab.steps import extract, layers, sweep
    from emolab.steps.common import new_session
    from emolab.steps.replay import replay

    keep = sys.argv[sys.argv.index("--keep") + 1] if "--keep" in sys.argv else None
    root = Path(keep or tempfile.mkdtemp(prefix="emolab-gpu-check-"))
    try:
        cpu = new_session(root / "cpu", "smollm2-135m")
        extract.run(cpu, {"emotions": ["joy", "anger"], "layers": "10,15,20", "limit": 24})
        layers.run(cpu, {})
        grid = {**GRID, "prompts": list(NEUTRAL_PROMPTS[:6])}
        res_cpu = sweep.run(cpu, grid)
        rtol, atol = tolerance("float32")
        print(
            f"== replay of a CPU session on {torch.cuda.get_device_name(0)} "
            f"(rtol {rtol}, atol {atol})"
        )
        new, cmp = replay(cpu.path, root / "cuda", "cuda")
        for r in cmp.rows:
            verdict = "ok" if r["ok"] else "OVER"
            print(f"  {r['what']:<60} diff {r['diff']:.3g}  {verdict}")
        print(f"  all within tolerance: {cmp.ok}")
        res_gpu = sweep.run(new, grid)  # already computed by the replay: read back
        print("== judge probabilities and perplexity per cell (cpu -> cuda)")
        gpu_rows = {sweep.cell_key(r): r for r in res_gpu["rows"]}
        for r in res_cpu["rows"]:
            g = gpu_rows[sweep.cell_key(r)]
            cells = ", ".join(f"{c} {r[c]:.4f}->{g[c]:.4f}" for c in JUDGE_COLUMNS)
            print(f"  {r['emotion']} L{r['layer']} a{r['alpha']}: {cells}")
        print("== greedy steered texts, token by token")
        tok = load("smollm2-135m").tokenizer
        a, b = texts_of(cpu, res_cpu["csv"]), texts_of(new, res_gpu["csv"])
        for key in sorted(a):
            for i, (x, y) in enumerate(zip(a[key], b[key])):
                print(f"  {key} prompt {i}: {first_divergence(tok, x, y)}")
        print("== throughput on cuda")
        for dtype in ("float32", "bfloat16"):
            gen, cap = throughput(dtype)
            print(f"  {dtype:<9} steered generate {gen:8.1f} tokens/s   capture {cap:8.1f} texts/s")
        return 0 if cmp.ok else 1
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
