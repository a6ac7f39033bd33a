"""Set the component along v to its value from a source run (e.g. positive reviews patched
into negative ones): if v carries the sentiment, the prediction flips (Tigges et al.)."""

from __future__ import annotations

import numpy as np

from ...api import HookContext, Intervention, Param
from ...errors import BadInput
from ...units import LAYER_SPEC, parse_layers
from ._util import position_mask, unit_rows


class DirectionalPatch(Intervention):
    name = "directional_patch"
    description = "Replace the projection on v with its mean value over source texts"
    params = (
        Param("layers", str, "all", LAYER_SPEC),
        Param(
            "positions",
            str,
            "all",
            "patch every real position or only the last one",
            ("all", "last"),
        ),
    )

    def hooks(self, model, vector=None, source_texts=None, **_):
        """`source_texts`: where the patched value comes from (its mean projection per layer,
        over the same positions). The first real token, the attention sink, is left alone:
        its norm is ~100x the rest, and the target value is computed without it."""
        import torch

        from ...capture import capture

        if not source_texts:
            raise BadInput("directional_patch needs source texts (the run to copy from)")
        layers = parse_layers(str(self.layers), model.n_layers)
        units = unit_rows(vector, layers, model.d_model, "direction")
        hooks = [f"blocks.{layer}.hook_resid_post" for layer in layers]
        acts = capture(
            model, list(source_texts), hooks, "last" if self.positions == "last" else "mean"
        )
        pairs = []
        for i, layer in enumerate(layers):
            target = float(np.mean(acts[:, i] @ units[layer]))
            u = torch.tensor(units[layer], device=model.device)
            pairs.append((hooks[i], self._fn(u, target)))
        return pairs

    def _fn(self, u, target: float):
        last_only = self.positions == "last"

        def patch(h, ctx: HookContext):
            import torch

            mask = position_mask(h, ctx)
            if ctx.new_tokens == 0:
                rows = torch.arange(h.shape[0])
                if last_only:
                    last = mask.long().cumsum(1).argmax(1)  # last real position of each row
                    mask = torch.zeros_like(mask)
                    mask[rows, last] = True
                else:  # the attention sink keeps its own value (the target excludes it)
                    mask = mask.clone()
                    mask[rows, mask.long().argmax(1)] = False
            elif last_only:
                return None
            uu = u.to(h.dtype)
            delta = (target - h @ uu).unsqueeze(-1) * uu
            return h + mask.unsqueeze(-1).to(h.dtype) * delta

        return patch
