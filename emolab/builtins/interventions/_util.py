"""What several interventions share: position masks that respect padding, layer and head
specs parsed with one-line errors, unit vectors per layer."""

from __future__ import annotations

import numpy as np

from ...api import HookContext
from ...errors import BadInput


def position_mask(act, ctx: HookContext, mode: str = "all"):
    """Bool `[batch, seq]` of the positions to touch: real tokens only (padding never), on
    the prompt pass, while generating, or both. None when nothing is touched."""
    import torch

    b, seq = act.shape[0], act.shape[1]
    generating = ctx.new_tokens > 0
    if (mode == "prompt" and generating) or (mode == "generated" and not generating):
        return None
    mask = ctx.attention_mask
    if generating or mask is None or mask.shape[-1] != seq:
        return torch.ones(b, seq, dtype=torch.bool, device=act.device)
    return mask.to(act.device).bool()


def unit_rows(
    vector, layers: list[int], d_model: int, what: str = "vector"
) -> dict[int, np.ndarray]:
    """Unit direction per layer from a `[d]` or `[layers, d]` vector; zero/NaN is an error."""
    from ...session import check_width

    if vector is None:
        raise BadInput(f"this intervention needs a {what}")
    vector = np.asarray(vector, dtype=np.float32)
    check_width(vector, d_model, what)
    out = {}
    for layer in layers:
        v = vector[layer] if vector.ndim == 2 else vector
        n = float(np.linalg.norm(v))
        if not np.isfinite(n) or n == 0:
            raise BadInput(f"the {what} at layer {layer} is zero or missing")
        out[layer] = v / n
    return out
