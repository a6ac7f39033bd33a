"""h' = h - (h . v) v at chosen layers: remove one direction and see what still works."""

from __future__ import annotations

from ...api import HookContext, Intervention, Param
from ...units import LAYER_SPEC, parse_layers
from ._util import position_mask, unit_rows


class DirectionalAblation(Intervention):
    name = "directional_ablation"
    description = "Project the direction v out of the residual stream at the chosen layers"
    params = (
        Param("layers", str, "all", LAYER_SPEC),
        Param(
            "point",
            str,
            "hook_resid_post",
            "where in the block",
            ("hook_resid_post", "hook_resid_pre"),
        ),
    )

    def hooks(self, model, vector=None, **_):
        """`vector`: `[d]` or `[layers, d]` (only its direction matters)."""
        import torch

        layers = parse_layers(str(self.layers), model.n_layers)
        units = unit_rows(vector, layers, model.d_model, "direction")
        pairs = []
        for layer in layers:
            u = torch.tensor(units[layer], device=model.device)
            pairs.append((f"blocks.{layer}.{self.point}", self._fn(u)))
        return pairs

    @staticmethod
    def _fn(u):
        def ablate(h, ctx: HookContext):
            mask = position_mask(h, ctx)
            uu = u.to(h.dtype)
            proj = (h @ uu).unsqueeze(-1) * uu
            return h - mask.unsqueeze(-1).to(h.dtype) * proj

        return ablate
