"""Experiment steps: pure functions of (session, params, progress) -> result, no UI code.

`STEPS` maps a log event's kind to the function that re-runs it, which is all replay needs.
"""

from __future__ import annotations

from collections.abc import Callable

from . import (
    ablate,
    align,
    compare,
    contexts,
    crosslingual,
    extract,
    finetune,
    heads,
    layers,
    steer,
    sweep,
)

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
    "contexts": contexts.run,
}
# what each step declares: replay passes a logged step only the parameters its kind declares
# (logs written before the declarations also held derived values)
PARAMS = {
    "extract": extract.PARAMS,
    "layers": layers.PARAMS,
    "steer": steer.PARAMS,
    "heads": heads.PARAMS,
    "align": align.PARAMS,
    "sweep": sweep.PARAMS,
    "ablate": ablate.PARAMS,
    "finetune": finetune.PARAMS,
    "compare": compare.PARAMS,
    "crosslingual": crosslingual.PARAMS,
    "contexts": contexts.PARAMS,
}
