"""Head maps on SmolLM2 (issue 6): attribution patching against exact ablation.

- time(exact ablation, every head up to the readout layer, heads batched per layer) /
  time(attribution patching, one forward + one backward for all heads): target >= 20
- Spearman rank correlation between the two maps, over all heads and over the heads that
  matter (top 20 by |exact effect|): target >= 0.7

Needs a session with vectors: EMOLAB_BENCH_SESSION=<dir>, else a small extraction (16
texts per label) is made in a temporary folder first. Run under the heavy-job lock.
"""

from __future__ import annotations

import os
import tempfile
import time

from timing import row


def main() -> None:
    from emolab.progress import Progress
    from emolab.session import Session
    from emolab.steps import extract, heads
    from emolab.steps.common import new_session

    path = os.environ.get("EMOLAB_BENCH_SESSION")
    tmp = None
    if path:
        session = Session.open(path)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-heads-")
        session = new_session(os.path.join(tmp.name, "s"), "smollm2-135m")
        extract.run(session, {"limit": 16, "test_limit": 4})
    top = 20
    for emotion in ("joy", "anger"):
        p = {**heads.DEFAULTS, "emotion": emotion, "n_texts": 8}
        setup = heads.prepare(session, p)
        clean = setup.clean()
        ref = setup.reference("attn.hook_z")
        heads.attribution(setup, "attn.hook_z", ref)  # warm-up
        t = time.perf_counter()
        attr = heads.attribution(setup, "attn.hook_z", ref)
        t_attr = time.perf_counter() - t
        t = time.perf_counter()
        abl = heads.head_ablation(setup, ref, clean, Progress())
        t_abl = time.perf_counter() - t
        cmp = heads.compare(attr, abl, top)
        n = cmp["n_heads"]
        print(
            f"  {emotion}: projection at layer {setup.layer}, {len(setup.texts)} texts, "
            f"{n} heads; attribution {t_attr:.2f} s, ablation {t_abl:.2f} s",
            flush=True,
        )
        row(
            f"{emotion}: time(ablation) / time(attribution)",
            t_abl / t_attr,
            ">= 20",
            t_abl / t_attr >= 20,
        )
        row(
            f"{emotion}: Spearman, all {n} heads",
            cmp["spearman_all"],
            ">= 0.7",
            cmp["spearman_all"] >= 0.7,
        )
        row(
            f"{emotion}: Spearman, top {top} heads by |exact|",
            cmp["spearman_top"],
            ">= 0.7",
            cmp["spearman_top"] >= 0.7,
        )
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
