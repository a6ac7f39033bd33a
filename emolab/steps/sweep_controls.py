"""The sweep's controls and circuit rows: which units each circuit row scales (from the
session's latest head map) and the random controls the cells to compute need, each judged
once and shared by every emotion and source it can serve (sweep_table.control_key)."""

from __future__ import annotations

from ..progress import Progress
from ..session import Session
from .shared import circuit_name, circuit_units
from .sweep_cells import RANDOM
from .sweep_table import control_key


def circuit_grid(session: Session, p: dict) -> dict[tuple[str, str], str]:
    """(emotion, circuit row name) -> the units it scales, from the session's latest map,
    and (emotion, 'random-' + name) -> its random control's units."""
    out = {}
    if not p["circuits"]:
        return out
    for e in p["emotions"]:
        for kind in p["circuit_kinds"]:
            for k in p["circuits"]:
                spec, info = circuit_units(session, e, k, kind)
                out[(e, circuit_name(kind, k))] = spec
                out[(e, f"random-{circuit_name(kind, k)}")] = info["random"]
    return out


def random_controls(
    work,
    engine,
    todo: list[tuple],
    p: dict,
    progress: Progress,
    residual: str,
    have: dict,
    save=None,
) -> None:
    """Judge probabilities and per-text regimes of every random control the cells to
    compute need (see sweep_table.control_key: a random direction of the same size beside a
    residual cell, a random circuit of the same size and factor beside a circuit cell; each
    serves every emotion and source it can), added to `have`; `save` runs after each, so a
    killed sweep keeps the controls it finished."""
    need: dict[tuple, tuple] = {}
    for c in todo:
        key = control_key(c, residual, p["scale"], work.heads)
        if key in have or key in need:
            continue
        if c[1] == residual:
            need[key] = (c[0] if p["scale"] == "absolute" else p["emotions"][0], RANDOM, *c[2:])
        else:
            need[key] = (c[0], f"random-{c[1]}", *c[2:])
    if not need:
        return
    keys, cells = list(need), list(need.values())
    progress.task(f"random controls ({len(cells)})", len(cells))
    for i, res in engine.map(work, cells, progress.check):
        if res.get("probs") is not None:
            have[keys[i]] = (res["probs"], list(res["labels"]), res["regimes"])
            if save is not None:
                save()
        progress.update(i + 1)
