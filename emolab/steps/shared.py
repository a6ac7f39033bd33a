"""What several steps share: the steering parameters steer and sweep both declare, the
steering layer a session defaults to and the heads that write an emotion (from its latest
head map). Here, not in one step, so no step imports another for them."""

from __future__ import annotations

import numpy as np

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
        ("relative", "absolute"),
    ),
    Param("positions", str, "all", "which positions", ("all", "prompt", "generated")),
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


def circuit_heads(session: Session, emotion: str, k: int) -> tuple[str, dict]:
    """The k heads that write `emotion` most (largest positive effect) in the session's
    latest head map for it, as an `enhance` spec 'L.H,...' and where it came from. The exact
    (ablation) map is preferred over the attribution estimate when both exist."""
    if k < 1:
        raise BadInput("circuit size must be at least 1")
    steps = [
        s
        for s in session.steps()
        if s["kind"] == "heads"
        and s.get("status") == "ok"
        and s["params"].get("emotion") == emotion
    ]
    if not steps:
        raise BadInput(
            f"no head map for '{emotion}' in this session "
            f"(run: emolab heads {session.path} --emotion {emotion})"
        )
    step = steps[-1]
    name = next(o for o in step["outputs"] if o.endswith(".json")).split("/", 1)[1]
    maps = session.read_json(name)["maps"]
    method = "ablation" if "ablation" in maps else "attribution"
    mat = np.array(maps[method]["matrix"], dtype=float)
    flat = np.nan_to_num(mat, nan=-np.inf).ravel()
    order = [i for i in np.argsort(-flat) if flat[i] > 0][:k]
    if not order:
        raise BadInput(f"no head raises '{emotion}' in the latest head map")
    units = [np.unravel_index(i, mat.shape) for i in order]
    spec = ",".join(f"{int(L)}.{int(h)}" for L, h in units)
    return spec, {
        "heads_step": step["seq"],
        "map": method,
        "heads": spec,
        "effects": [float(flat[i]) for i in order],
    }
