"""Experiment steps: pure functions of (session, params, progress) -> result, no UI code.

`STEPS` maps a log event's kind to the function that re-runs it, which is all replay needs.
"""

from __future__ import annotations

from collections.abc import Callable

from . import ablate, align, compare, crosslingual, extract, finetune, heads, layers, steer, sweep

STEPS: dict[str, Callable] = {
    "extract": extract.run,
    "layers": layers.run,
    "steer": steer.run,
    "heads": heads.run,
    "align": align.run,
    "sweep": sweep.run,
    "ablate": ablate.run,
    "finetune": finetune.run,
    "compare": compare.run,
    "crosslingual": crosslingual.run,
}
