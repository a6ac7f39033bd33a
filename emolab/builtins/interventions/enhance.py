"""Scale chosen heads' or MLP neurons' outputs by a factor: "circuit modulation", the
alternative to adding a steering vector (enhance the units an emotion runs through)."""

from __future__ import annotations

from ...api import PUSH_POSITIONS, HookContext, Intervention, Param
from ...errors import BadInput
from ...units import parse_heads, unit_pairs
from ._util import position_mask


def parse_neurons(spec: str, n_layers: int, d_mlp: int) -> list[tuple[int, int]]:
    """'L.N,L.N' -> [(layer, neuron)] with one-line errors."""
    return unit_pairs(
        spec,
        n_layers,
        d_mlp,
        "bad neuron '{part}' (use L.N, e.g. 12.301)",
        f"unknown neuron '{{part}}' (layers 0-{n_layers - 1}, neurons 0-{d_mlp - 1})",
    )


class Enhance(Intervention):
    name = "enhance"
    description = "Multiply chosen heads' (attn.hook_z) or MLP neurons' (mlp.hook_post) outputs"
    params = (
        Param("heads", str, "", "L.H,... heads to scale"),
        Param("neurons", str, "", "L.N,... MLP neurons to scale"),
        Param("factor", float, 2.0, "multiplier (0 ablates, >1 enhances)"),
        Param("positions", str, "all", "which positions", PUSH_POSITIONS),
    )

    def hooks(self, model, **_):
        import torch

        d_mlp = (
            model.config.intermediate_size
            if hasattr(model.config, "intermediate_size")
            else 4 * model.d_model
        )
        heads = parse_heads(self.heads, model.n_layers, model.n_heads) if self.heads else []
        neurons = parse_neurons(self.neurons, model.n_layers, d_mlp) if self.neurons else []
        if not heads and not neurons:
            raise BadInput("enhance needs --heads L.H,... or --neurons L.N,...")
        pairs = []
        for kind, units, point in ((0, heads, "attn.hook_z"), (1, neurons, "mlp.hook_post")):
            by_layer: dict[int, list[int]] = {}
            for layer, unit in units:
                by_layer.setdefault(layer, []).append(unit)
            for layer, idx in by_layer.items():
                pairs.append(
                    (
                        f"blocks.{layer}.{point}",
                        self._fn(torch.tensor(idx, device=model.device), kind == 0),
                    )
                )
        return pairs

    def _fn(self, idx, heads: bool):
        factor, mode = self.factor, self.positions

        def scale(act, ctx: HookContext):
            mask = position_mask(act, ctx, mode)
            if mask is None:
                return None
            m = mask.to(act.dtype).view(*mask.shape, *([1] * (act.dim() - 2)))
            act = act.clone()
            sel = act[:, :, idx]
            act[:, :, idx] = sel * (1 + (factor - 1) * m)
            return act

        return scale
