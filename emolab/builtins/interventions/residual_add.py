"""h' = h + alpha * v on the residual stream: activation steering.

With `scale=relative` alpha is a fraction of the layer's mean residual norm (the norms
`extract` records, position 0 excluded), so one alpha means the same push at every layer;
the source studies' useful range is ~0.1-0.75, and from ~1 on text degenerates. Padding
positions are never touched.

Over a layer range (`to_layer`) each layer adds its own row of a `[layers, d]` vector (the
direction extracted at that layer). `spread=split` gives each of the n layers alpha / n:
the pushes add up along the residual stream, so the range pushes as hard in total as one
layer with alpha does, which is what makes a span comparable with a single layer in a sweep.

`norm=preserve` rescales each steered position back to the norm it had before the push, so
the push turns the residual toward v instead of also lengthening it (angular steering): the
layers above see a vector of the size they were trained on, which is the usual reason a
strong push breaks the text. `free` (the default) is the plain addition.
"""

from __future__ import annotations

import numpy as np

from ...api import PUSH_POSITIONS, PUSH_SCALES, HookContext, Intervention, Param
from ...errors import BadInput
from ...session import check_width
from ._util import position_mask


class ResidualAdd(Intervention):
    name = "residual_add"
    description = "Add alpha * v to the residual stream after the chosen block(s)"
    params = (
        Param("layer", int, 0, "first block whose output is steered"),
        Param("to_layer", int, -1, "last block of a range (-1: only `layer`)"),
        Param("alpha", float, 0.3, "strength"),
        Param(
            "scale",
            str,
            "relative",
            "relative: alpha * unit(v) * the layer's mean residual norm; absolute: alpha * v",
            PUSH_SCALES,
        ),
        Param("positions", str, "all", "which positions", PUSH_POSITIONS),
        Param(
            "spread",
            str,
            "each",
            "over a range: each layer gets alpha, or alpha / n (split: one layer's total push)",
            ("each", "split"),
        ),
        Param(
            "norm",
            str,
            "free",
            "free: h + alpha v; preserve: each steered position keeps its own norm",
            ("free", "preserve"),
        ),
    )

    def hooks(self, model, vector=None, norms=None, **_):
        """`vector`: `[d]` or `[layers, d]`; `norms`: mean residual norm per layer."""
        if vector is None:
            raise BadInput("residual_add needs a vector")
        import torch

        last = self.layer if self.to_layer < 0 else self.to_layer
        if not (0 <= self.layer <= last < model.n_layers):
            raise BadInput(f"layer {self.layer}-{last} out of range 0-{model.n_layers - 1}")
        vector = np.asarray(vector, dtype=np.float32)
        check_width(vector, model.d_model, "steering vector")
        pairs = []
        alpha = self.alpha / (last - self.layer + 1) if self.spread == "split" else self.alpha
        for layer in range(self.layer, last + 1):
            v = vector[layer] if vector.ndim == 2 else vector
            if self.scale == "relative":
                if norms is None:
                    raise BadInput("relative alpha needs the layer's residual norms")
                n = float(np.linalg.norm(v))
                if n == 0:
                    raise BadInput(f"the steering vector at layer {layer} is zero")
                v = v / n * float(norms[layer])
            delta = torch.tensor(alpha * v, device=model.device)
            pairs.append((f"blocks.{layer}.hook_resid_post", self._fn(delta)))
        return pairs

    def _fn(self, delta):
        mode, preserve = self.positions, self.norm == "preserve"

        def add(h, ctx: HookContext):
            mask = position_mask(h, ctx, mode)
            if mask is None:
                return None
            out = h + mask.unsqueeze(-1).to(h.dtype) * delta.to(h.dtype)
            if preserve:  # untouched positions have out == h, so their ratio is 1
                out = out * (
                    h.norm(dim=-1, keepdim=True) / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                )
            return out

        return add
