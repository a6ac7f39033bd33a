"""Experiment steps: pure functions of (session, params, progress) -> result, no UI code.

`STEPS` maps a log event's kind to the function that re-runs it, which is all replay needs.
"""

from __future__ import annotations

from collections.abc import Callable

from . import extract, layers, steer

STEPS: dict[str, Callable] = {
    "extract": extract.run,
    "layers": layers.run,
    "steer": steer.run,
}
