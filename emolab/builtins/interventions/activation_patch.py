"""Copy activations at chosen (layer, position) from a source run into a target run: the
basic causal test of where information lives (clean -> corrupted patching)."""

from __future__ import annotations

from ...api import HookContext, Intervention, Param
from ...errors import BadInput
from ...units import LAYER_SPEC, parse_layers


class ActivationPatch(Intervention):
    name = "activation_patch"
    description = "Replace activations at (layer, position) with those of a source text"
    params = (
        Param("layers", str, "0", LAYER_SPEC),
        Param(
            "point",
            str,
            "hook_resid_post",
            "hook point in each block",
            ("hook_resid_post", "hook_resid_pre", "hook_attn_out", "hook_mlp_out"),
        ),
        Param("positions", str, "-1", "offsets from each text's end (-1 = last token), or all"),
    )

    def offsets(self) -> list[int] | None:
        if self.positions == "all":
            return None
        try:
            out = [int(x) for x in self.positions.split(",") if x.strip()]
        except ValueError:
            out = []
        if not out or any(o >= 0 for o in out):
            raise BadInput(
                f"positions must be 'all' or negative offsets like -1,-2, got '{self.positions}'"
            )
        return out

    def hooks(self, model, source_texts=None, texts=None, **_):
        """`source_texts`: one source text for every target, or one per text of `texts`
        (targets are matched by their tokens, so batching and padding do not matter)."""

        from ...capture import capture

        if not source_texts:
            raise BadInput("activation_patch needs source texts")
        offsets = self.offsets()
        layers = parse_layers(str(self.layers), model.n_layers)
        names = [f"blocks.{layer}.{self.point}" for layer in layers]
        src = capture(model, list(source_texts), names, "all")  # list of [len, hooks, d]
        route: dict[tuple, int] = {}
        if len(source_texts) > 1:
            if not texts or len(texts) != len(source_texts):
                raise BadInput("give one source text, or exactly one per target text")
            for i, t in enumerate(texts):
                ids = model.tokenizer(model.with_bos(t), add_special_tokens=False)["input_ids"]
                route[tuple(ids)] = i
        lengths = {len(a) for a in src}
        if offsets is None and len(lengths) > 1 and not route:
            raise BadInput("positions 'all' needs source texts of one token length")
        return [(n, self._fn(i, src, route, offsets)) for i, n in enumerate(names)]

    @staticmethod
    def _fn(hook_index: int, src, route: dict, offsets):
        def patch(act, ctx: HookContext):
            import torch

            if ctx.new_tokens > 0:
                return None
            ids = ctx.extra.get("input_ids")
            mask = ctx.attention_mask
            act = act.clone()
            for r in range(act.shape[0]):
                real = (
                    (
                        mask[r].bool()
                        if mask is not None
                        else torch.ones(act.shape[1], dtype=torch.bool)
                    )
                    .nonzero()
                    .flatten()
                )
                if route:
                    key = tuple(ids[r, real].tolist())
                    if key not in route:
                        raise BadInput("a target text has no matching source text")
                    s = src[route[key]]
                else:
                    s = src[0]
                s_t = torch.as_tensor(s[:, hook_index], dtype=act.dtype, device=act.device)
                if offsets is None:
                    if len(s_t) != len(real):
                        raise BadInput("positions 'all' needs source and target of one length")
                    act[r, real] = s_t
                else:
                    for o in offsets:
                        if -o > min(len(real), len(s_t)):
                            raise BadInput(f"offset {o} is longer than a text")
                        act[r, real[o]] = s_t[o]
            return act

        return patch
