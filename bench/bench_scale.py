"""Sweep throughput on SmolLM2 (issue 15), three engines on the same grid in one run:
cells one at a time, cells batched into one generate per layer, and a local Ray cluster
with 2 workers of 1 thread each. Each engine sweeps a fresh copy of one session (same
vectors, same judge, baseline texts already made), so only the cells are timed; Ray's time
includes starting its workers and loading the model in each, which is what a user waits for.

    python bench/run.py scale
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from timing import row

GRID = {
    "emotions": ["joy", "anger"],
    "layers": [15],
    "alphas": [0.15, 0.3, 0.5, 0.75],
    "max_new_tokens": 16,
}


def clock():
    """Progress that notes when the cells phase starts and when the sweep ends."""
    from emolab.progress import Progress

    class Clock(Progress):
        start = end = 0.0

        def task(self, description, total):
            if description.startswith("sweep "):
                self.start = time.perf_counter()

        def done(self):
            self.end = time.perf_counter()

    return Clock()


def main() -> None:
    import torch

    from emolab.data import NEUTRAL_PROMPTS
    from emolab.engine import Batched, RayExecutor, Serial
    from emolab.session import Session
    from emolab.steps import extract, sweep
    from emolab.steps.common import new_session

    root = Path(tempfile.mkdtemp(prefix="emolab-bench-scale-"))
    try:
        base = new_session(root / "base", "smollm2-135m")
        extract.run(base, {"emotions": ["joy", "anger"], "layers": "15", "limit": 16})
        grid = {**GRID, "prompts": list(NEUTRAL_PROMPTS[:8])}
        # judge, baseline texts and their scores once, outside the timed runs
        sweep.run(base, {**grid, "alphas": [0.05], "emotions": ["joy"]})
        threads = torch.get_num_threads()
        print(f"({threads} threads here; grid {2 * 4} cells x 8 prompts x 16 tokens)")
        rates, rows = {}, {}
        engines = {
            "one at a time": Serial(),
            "batched (8 cells per generate)": Batched(max_cells=8),
            "Ray, 2 local workers x 1 thread": RayExecutor(workers=2, threads=1, max_cells=4),
        }
        for name, engine in engines.items():
            path = root / name.split()[0].strip(",")
            shutil.copytree(base.path, path)
            c = clock()
            res = sweep.run(Session.open(path), grid, c, engine=engine)
            minutes = (c.end - c.start) / 60
            rates[name] = res["computed"] / minutes
            rows[name] = res["rows"]
            print(f"  {name:<56} {rates[name]:7.2f}   cells/min ({minutes * 60:.1f} s)", flush=True)
        one, batched, ray = (rates[k] for k in engines)
        same = rows[list(engines)[0]] == rows[list(engines)[1]] == rows[list(engines)[2]]
        row(
            "batched / one at a time (cells per minute)",
            batched / one,
            ">= 2.0",
            batched >= 2 * one,
        )
        row(f"Ray 2x1 thread / one at a time on {threads} threads", ray / one, "report", None)
        print(f"  tables of the three engines equal: {same}")
        print(
            "  Ray: two 1-thread workers each load the model and split the 8 cells, against "
            f"one process using {threads} threads; on a 2-core box they share the same cores, "
            "and worker start-up is counted"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
