"""Batched, padding-aware activation capture at TransformerLens hook names.

Texts are sorted by length so batches carry little padding, run through the plain HF
model with only the requested hooks attached (the names filter), pooled per row at once
(so memory is bounded by the batch, not the dataset), and the forward pass stops after
the deepest block needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .errors import BadInput
from .hooks import StopForward, apply_hooks, canonical, parse, stop_after
from .models import LoadedModel

POSITIONS = ("last", "mean", "all", "commas")
Progress = Callable[[int, int], None]


def resid_hooks(model: LoadedModel, layers: Sequence[int] | None = None) -> list[str]:
    """`blocks.{L}.hook_resid_post` for the given layers (all by default)."""
    layers = range(model.n_layers) if layers is None else layers
    for layer in layers:
        if not 0 <= layer < model.n_layers:
            raise BadInput(
                f"layer {layer} out of range: {model.name} has layers 0-{model.n_layers - 1}"
            )
    return [f"blocks.{layer}.hook_resid_post" for layer in layers]


def comma_ids(model: LoadedModel) -> set[int]:
    """Token ids whose text contains a comma (',' and ' ,' and the like)."""
    tok = model.tokenizer
    return {
        i for tokstr, i in tok.get_vocab().items() if "," in tok.convert_tokens_to_string([tokstr])
    }


def _pool(acts, mask_row_len: int, ids_row, position: str, commas: set[int], index: int):
    """Pool one row `[seq, H, d]` (right-padded, real length given)."""
    n = mask_row_len
    if position in ("last", "mean") and n < 2:
        raise BadInput(
            f"text {index} is a single token: position 0 is the attention sink, so it "
            "carries no usable signal (give longer texts)"
        )
    if position == "last":
        return acts[n - 1]
    if position == "mean":
        return acts[1:n].mean(0)  # skip the attention sink at position 0
    if position == "commas":
        pos = [j for j in range(1, n) if int(ids_row[j]) in commas]
        if not pos:
            raise BadInput(f"text {index} has no comma token (position 'commas')")
        return acts[pos].mean(0)
    return acts[:n]


def capture(
    model: LoadedModel,
    texts: Sequence[str],
    hooks: Sequence[str] | None = None,
    position: str = "last",
    batch_size: int = 16,
    progress: Progress | None = None,
    check: Callable[[], None] | None = None,
):
    """Activations of `texts` at `hooks`: float32 `[n, len(hooks), d]` (a list of
    `[len_i, len(hooks), d]` for position 'all'). `check` may raise to cancel."""
    import torch

    if position not in POSITIONS:
        raise BadInput(f"unknown position '{position}' (known: {', '.join(POSITIONS)})")
    if not texts:
        raise BadInput("no texts to capture")
    for i, t in enumerate(texts):
        if not t or not t.strip():
            raise BadInput(f"text {i} is empty")
    hooks = [canonical(model, h) for h in (hooks or resid_hooks(model))]
    deepest = max(parse(model, h)[0] for h in hooks)
    commas = comma_ids(model) if position == "commas" else set()

    lengths = [
        len(ids) for ids in model.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    ]
    order = np.argsort(lengths, kind="stable")
    out: list = [None] * len(texts)
    store: dict[str, torch.Tensor] = {}

    def keep(act, ctx):
        store[ctx.name] = act.detach()

    done = 0
    with apply_hooks(model, [(h, keep) for h in hooks]), torch.no_grad():
        handle = stop_after(model, deepest)
        try:
            for start in range(0, len(texts), batch_size):
                if check:
                    check()
                idx = order[start : start + batch_size]
                ids, mask = model.encode([texts[i] for i in idx], "right")
                store.clear()
                try:
                    model.hf(input_ids=ids, attention_mask=mask, use_cache=False)
                except StopForward:
                    pass
                stacked = torch.stack([store[h] for h in hooks], dim=2).float()
                stacked = stacked.reshape(*stacked.shape[:3], -1).cpu().numpy()
                for row, i in enumerate(idx):
                    n = int(mask[row].sum())
                    out[i] = _pool(stacked[row], n, ids[row], position, commas, int(i))
                done += len(idx)
                if progress:
                    progress(done, len(texts))
        finally:
            handle.remove()
    if position == "all":
        return out
    result = np.stack(out).astype(np.float32)
    if not np.isfinite(result).all():
        raise BadInput("captured activations contain NaN or inf")
    return result
