"""Head maps on SmolLM2 (issues 6 and 14): the two estimates against exact ablation.

- time(exact ablation, every head up to the readout layer, heads batched per layer) /
  time(estimate): target >= 20, for attribution patching (one forward + one backward for
  all heads) and for the checked method (attribution, its patched-side twin and one exact
  head per 60)
- Spearman rank correlation between each estimate and the exact map, over all heads and
  over the heads that matter (top 20 by |exact effect|): target >= 0.7

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
    from emolab.steps import head_maps as hm
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
        ref = setup.reference(hm.HEADS)
        checks = heads.default_checks(setup)
        hm.attribution(setup, hm.HEADS, ref)  # warm-up
        estimates, seconds = {}, {}
        t = time.perf_counter()
        estimates["attribution"] = hm.attribution(setup, hm.HEADS, ref)
        seconds["attribution"] = time.perf_counter() - t
        t = time.perf_counter()
        estimates["checked"] = hm.checked_attribution(setup, ref, clean, checks)[0]
        seconds["checked"] = time.perf_counter() - t
        t = time.perf_counter()
        abl = hm.head_ablation(setup, ref, clean, Progress())
        t_abl = time.perf_counter() - t
        n = int((abl == abl).sum())
        print(
            f"  {emotion}: projection at layer {setup.layer}, {len(setup.texts)} texts, "
            f"{n} heads ({checks} checked); ablation {t_abl:.1f} s, "
            + ", ".join(f"{m} {s:.2f} s" for m, s in seconds.items()),
            flush=True,
        )
        for m, est in estimates.items():
            cmp = hm.compare(est, abl, top)
            speed = t_abl / seconds[m]
            row(f"{emotion}: time(ablation) / time({m})", speed, ">= 20", speed >= 20)
            for key, what in (("spearman_all", f"all {n} heads"), ("spearman_top", f"top {top}")):
                row(f"{emotion}: Spearman {m}, {what}", cmp[key], ">= 0.7", cmp[key] >= 0.7)
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
