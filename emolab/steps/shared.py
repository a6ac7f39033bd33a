"""What several steps share: the steering parameters steer and sweep both declare, the
steering layer a session defaults to and the heads or MLP neurons that write an emotion (from
its latest head map) with a random circuit of the same size. Here, not in one step, so no
step imports another for them."""

from __future__ import annotations

import numpy as np

from ..api import PUSH_POSITIONS, PUSH_SCALES
from ..errors import BadInput
from ..params import Param
from ..session import Session

# How a vector is added: the same two parameters in steer and sweep.
PUSH_PARAMS = (
    Param(
        "scale",
        str,
        "relative",
        "relative: alpha x the layer's mean residual norm",
        PUSH_SCALES,
    ),
    Param("positions", str, "all", "which positions", PUSH_POSITIONS),
)
# ... and which one vector set steer reads (sweep takes several, to compare them on dev)
STEERING_PARAMS = (
    *PUSH_PARAMS,
    Param("method", str, None, "which vector set of the session"),
    Param("vector_file", str, None, "a published vector file instead of the session's"),
)


def default_layer(session: Session) -> int:
    """The readout layer other steps default to: the latest layer analysis's peak (chosen on
    the dev texts, as its log event records), else two thirds of the depth."""
    method = (session.methods() or [None])[0]
    for ev in reversed(session.steps()):
        if ev["kind"] == "layers" and ev.get("status") == "ok":
            if (ev.get("params") or {}).get("dataset"):
                continue
            c = (ev.get("choices") or {}).get(f"peak_layer/{method}")
            if c is not None:
                return int(c["value"])
    return int(session.manifest["model"]["layers"] * 2 // 3)


CIRCUIT_KINDS = ("heads", "neurons")


def circuit_name(kind: str, k: int) -> str:
    """A circuit row's intervention: `circuit-top<k>` (heads, the name rows always had) or
    `neurons-top<k>`; its random control is the same name behind `random-`."""
    return f"circuit-top{k}" if kind == "heads" else f"neurons-top{k}"


def circuit_kind(name: str) -> str:
    """The unit kind of a circuit row (or of its random control) from its name."""
    return "neurons" if name.removeprefix("random-").startswith("neurons-") else "heads"


def circuit_order(mat: np.ndarray, k: int) -> list[int]:
    """Flat indices of the k units of an ablation map `[layers, units]` with the largest
    positive effect (those that write the emotion): the circuit, wherever one is picked."""
    flat = np.nan_to_num(mat, nan=-np.inf).ravel()
    return [int(i) for i in np.argsort(-flat, kind="stable") if flat[i] > 0][:k]


def with_exact(mat: np.ndarray, top: list[dict]) -> np.ndarray:
    """A neuron attribution map with the exact values of its checked units in their place."""
    out = mat.astype(float)
    for t in top:
        out[t["layer"], t["unit"]] = t["exact"]
    return out


def _heads_steps(session: Session, emotion: str, neurons: bool) -> list[dict]:
    return [
        s
        for s in session.steps()
        if s["kind"] == "heads"
        and s.get("status") == "ok"
        and s["params"].get("emotion") == emotion
        and (s["params"].get("neurons") or not neurons)
    ]


def _unit_map(session: Session, emotion: str, kind: str) -> tuple[np.ndarray, dict]:
    """The latest map of `kind` units for `emotion`: `[layers, units]` ablation effects
    (positive: the unit writes the emotion; NaN: not mapped) and where it came from. Heads:
    the exact map when there is one, else the checked one, else attribution. Neurons: the
    attribution map with the exact values of its checked top units in their place."""
    steps = _heads_steps(session, emotion, kind == "neurons")
    if not steps:
        flag = " --neurons" if kind == "neurons" else ""
        raise BadInput(
            f"no {'neuron' if kind == 'neurons' else 'head'} map for '{emotion}' in this "
            f"session (run: emolab heads {session.path} --emotion {emotion}{flag})"
        )
    step = steps[-1]
    name = next(o for o in step["outputs"] if o.endswith(".json")).split("/", 1)[1]
    result = session.read_json(name)
    if kind == "heads":
        maps = result["maps"]
        method = next(m for m in ("ablation", "checked", "attribution") if m in maps)
        mat = np.array(maps[method]["matrix"], dtype=float)
    else:
        method = "attribution, top checked exactly"
        file = next(o for o in step["outputs"] if o.endswith("-neurons.safetensors"))
        mat = session.load_arrays(file.split("/", 1)[1])[0]["attribution"]
        mat = with_exact(mat, result["neurons"]["top"])
    return mat, {"heads_step": step["seq"], "map": method}


def _spec(mat: np.ndarray, flat_indices) -> str:
    units = sorted(np.unravel_index(int(i), mat.shape) for i in flat_indices)
    return ",".join(f"{int(L)}.{int(u)}" for L, u in units)


def circuit_units(session: Session, emotion: str, k: int, kind: str = "heads") -> tuple[str, dict]:
    """The k heads (or MLP neurons) that write `emotion` most (largest positive effect) in
    the session's latest map for it, as an `enhance` spec 'L.U,...', and where it came from
    with a random control: k units drawn (seeded by k alone, so every emotion and factor
    with the same map shape draws the same ones) from all the units the map covers."""
    from .success import RANDOM_SEED

    if k < 1:
        raise BadInput("circuit size must be at least 1")
    if kind not in CIRCUIT_KINDS:
        raise BadInput(f"unknown circuit kind '{kind}' (known: {', '.join(CIRCUIT_KINDS)})")
    mat, info = _unit_map(session, emotion, kind)
    flat = mat.ravel()
    order = circuit_order(mat, k)
    if not order:
        raise BadInput(f"no {kind[:-1]} raises '{emotion}' in the latest {kind[:-1]} map")
    pool = np.flatnonzero(np.isfinite(mat.ravel()))
    rng = np.random.default_rng([RANDOM_SEED, len(order)])
    spec = ",".join(
        f"{int(L)}.{int(u)}" for L, u in (np.unravel_index(i, mat.shape) for i in order)
    )
    return spec, {
        **info,
        "kind": kind,
        "heads" if kind == "heads" else "neurons": spec,
        "effects": [float(flat[i]) for i in order],
        "random": _spec(mat, rng.choice(pool, size=len(order), replace=False)),
    }
