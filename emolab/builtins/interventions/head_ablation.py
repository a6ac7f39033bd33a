"""Zero or mean-ablate chosen attention heads' outputs at `attn.hook_z`: which heads carry it."""

from __future__ import annotations

from ...api import HookContext, Intervention, Param
from ...errors import BadInput
from ...units import parse_heads
from ._util import position_mask


class HeadAblation(Intervention):
    name = "head_ablation"
    description = "Zero or mean-ablate (layer, head) outputs at blocks.L.attn.hook_z"
    params = (
        Param("heads", str, "", "L.H,L.H,... e.g. 3.1,4.0"),
        Param(
            "mode",
            str,
            "zero",
            "zero, or the head's mean output over reference texts",
            ("zero", "mean"),
        ),
    )

    def hooks(self, model, mean_texts=None, **_):
        """`mean_texts`: reference texts for mean ablation (their mean per-position output)."""
        import torch

        heads = parse_heads(self.heads, model.n_layers, model.n_heads)
        by_layer: dict[int, list[int]] = {}
        for layer, head in heads:
            by_layer.setdefault(layer, []).append(head)
        means = {}
        if self.mode == "mean":
            if not mean_texts:
                raise BadInput("mean ablation needs reference texts")
            from ...capture import capture

            names = [f"blocks.{layer}.attn.hook_z" for layer in by_layer]
            acts = capture(model, list(mean_texts), names, "mean").mean(0)  # [hooks, d]
            for i, layer in enumerate(by_layer):
                z = torch.tensor(acts[i], device=model.device).view(model.n_heads, -1)
                means[layer] = z
        return [
            (f"blocks.{layer}.attn.hook_z", self._fn(hs, means.get(layer)))
            for layer, hs in by_layer.items()
        ]

    @staticmethod
    def _fn(heads: list[int], mean):
        def ablate(z, ctx: HookContext):  # z: [batch, seq, heads, d_head]
            mask = position_mask(z, ctx)[..., None].to(z.dtype)
            z = z.clone()
            for h in heads:
                fill = 0.0 if mean is None else mean[h].to(z.dtype)
                z[:, :, h] = z[:, :, h] * (1 - mask) + mask * fill
            return z

        return ablate
