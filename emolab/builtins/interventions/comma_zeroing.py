"""Zero or mean-ablate the residual (or attention output) at comma positions: the
"summarization motif" test. `control=true` ablates as many random non-comma positions per
text instead, so a drop can be told apart from the cost of ablating any tokens at all."""

from __future__ import annotations

import zlib

import numpy as np

from ...api import HookContext, Intervention, Param
from ...errors import BadInput
from ...units import LAYER_SPEC, parse_layers
from ._util import position_mask


class CommaZeroing(Intervention):
    name = "comma_zeroing"
    description = "Ablate comma positions (or, as a control, as many random other positions)"
    params = (
        Param("layers", str, "all", LAYER_SPEC),
        Param(
            "point",
            str,
            "hook_resid_post",
            "residual stream or attention output",
            ("hook_resid_post", "hook_attn_out"),
        ),
        Param(
            "mode",
            str,
            "zero",
            "zero, or the mean activation over reference texts",
            ("zero", "mean"),
        ),
        Param("control", bool, False, "ablate random non-comma positions instead"),
        Param("seed", int, 0, "seed of the random control"),
    )

    def hooks(self, model, mean_texts=None, **_):
        import torch

        from ...capture import comma_ids

        layers = parse_layers(str(self.layers), model.n_layers)
        commas = torch.tensor(sorted(comma_ids(model)), device=model.device)
        names = [f"blocks.{layer}.{self.point}" for layer in layers]
        means: list = [None] * len(names)
        if self.mode == "mean":
            if not mean_texts:
                raise BadInput("mean ablation needs reference texts")
            from ...capture import capture

            acts = capture(model, list(mean_texts), names, "mean").mean(0)
            means = [torch.tensor(a, device=model.device) for a in acts]
        cache: dict = {}
        return [(n, self._fn(commas, m, cache)) for n, m in zip(names, means, strict=False)]

    def positions(self, ids, real, commas):
        """Bool `[batch, seq]` of the positions to ablate (per row: its commas, or as many
        random real positions that are neither commas, the sink, nor the last token)."""
        import torch

        is_comma = torch.isin(ids, commas) & real
        if not self.control:
            return is_comma
        out = torch.zeros_like(is_comma)
        for r in range(ids.shape[0]):
            idx = real[r].nonzero().flatten().tolist()
            pool = [j for j in idx[1:-1] if not is_comma[r, j]]
            k = int(is_comma[r].sum())
            if k > len(pool):
                raise BadInput(f"text {r} has too few non-comma tokens for the random control")
            key = zlib.crc32(np.asarray(ids[r, idx].cpu()).tobytes()) ^ self.seed
            pick = np.random.default_rng(key).choice(pool, size=k, replace=False)
            out[r, torch.as_tensor(pick, dtype=torch.long)] = True
        return out

    def _fn(self, commas, mean, cache: dict):
        def ablate(act, ctx: HookContext):
            if ctx.new_tokens > 0:
                return None  # prompt positions only
            ids = ctx.extra.get("input_ids")
            if ids is None or ids.shape[1] != act.shape[1]:
                raise BadInput("comma_zeroing needs the batch's input_ids (run it via the runner)")
            key = (ids.data_ptr(), tuple(ids.shape))
            if key not in cache:  # the same positions at every layer of one forward pass
                cache.clear()
                cache[key] = self.positions(ids, position_mask(act, ctx), commas)
            m = cache[key].unsqueeze(-1).to(act.dtype)
            fill = 0.0 if mean is None else mean.to(act.dtype)
            return act * (1 - m) + m * fill

        return ablate
