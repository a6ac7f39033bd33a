"""Batched, padding-aware activation capture at TransformerLens hook names.

Texts are sorted by length so batches carry little padding, run through the plain HF
model with only the requested hooks attached (the names filter), pooled per row at once
(so memory is bounded by the batch, not the dataset), and the forward pass stops after
the deepest block needed.

`capture` is the hot path (fast-point names, one stacked array); `capture_named` takes any
TransformerLens name, running through the bridge when a name needs it, and returns one
array per hook in its own shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .errors import BadInput
from .hooks import (
    FAST,
    HOOK_RE,
    StopForward,
    apply_hooks,
    canonical,
    fast_point,
    forward_module,
    parse,
    route,
    stop_after,
)
from .models import LoadedModel

POSITIONS = ("last", "mean", "all", "commas")
# how a token span (what the model wrote, an answer put in its mouth) is pooled
SPAN_POSITIONS = ("last", "mean")
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


Batch = Callable[[np.ndarray, object, object, dict], None]


def _forward_batches(
    model: LoadedModel,
    texts: Sequence[str],
    names: Sequence[str],
    via: str,
    deepest: int | None,
    batch_size: int,
    on_batch: Batch,
    progress: Progress | None,
    check: Callable[[], None] | None,
) -> None:
    """The loop both captures share: texts sorted by length, one right-padded batch at a
    time through the model with `names` hooked, the forward stopped after block `deepest`
    (None: run it all). `on_batch(idx, ids, mask, store)` pools each batch, `store` holding
    the batch's activation per hook name, while the hooks are still attached."""
    import torch

    lengths = [
        len(ids) for ids in model.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    ]
    order = np.argsort(lengths, kind="stable")
    store: dict[str, torch.Tensor] = {}

    def keep(act, ctx):
        store[ctx.name] = act.detach()

    done = 0
    forward = forward_module(model, via)
    with apply_hooks(model, [(h, keep) for h in names], via=via), torch.no_grad():
        handle = stop_after(model, deepest, via) if deepest is not None else None
        try:
            for start in range(0, len(texts), batch_size):
                if check:
                    check()
                idx = order[start : start + batch_size]
                ids, mask = model.encode([texts[i] for i in idx], "right")
                store.clear()
                try:
                    forward(input_ids=ids, attention_mask=mask, use_cache=False)
                except StopForward:
                    pass
                on_batch(idx, ids, mask, store)
                done += len(idx)
                if progress:
                    progress(done, len(texts))
        finally:
            if handle is not None:
                handle.remove()


def capture(
    model: LoadedModel,
    texts: Sequence[str],
    hooks: Sequence[str] | None = None,
    position: str = "last",
    batch_size: int = 16,
    progress: Progress | None = None,
    check: Callable[[], None] | None = None,
    via: str = FAST,
):
    """Activations of `texts` at `hooks`: float32 `[n, len(hooks), d]` (a list of
    `[len_i, len(hooks), d]` for position 'all'). `check` may raise to cancel. `via=BRIDGE`
    reads the same fast-point names off the TransformerBridge (the reference in tests)."""
    import torch

    _check_inputs(texts, position)
    hooks = list(hooks or resid_hooks(model))
    route(model, hooks, via)
    hooks = [canonical(model, h) for h in hooks]
    deepest = max(parse(model, h)[0] for h in hooks)
    commas = comma_ids(model) if position == "commas" else set()
    out: list = [None] * len(texts)

    def pool(idx, ids, mask, store) -> None:
        stacked = torch.stack([store[h] for h in hooks], dim=2).float()
        stacked = stacked.reshape(*stacked.shape[:3], -1).cpu().numpy()
        for row, i in enumerate(idx):
            n = int(mask[row].sum())
            out[i] = _pool(stacked[row], n, ids[row], position, commas, int(i))

    _forward_batches(model, texts, hooks, via, deepest, batch_size, pool, progress, check)
    if position == "all":
        return out
    result = np.stack(out).astype(np.float32)
    if not np.isfinite(result).all():
        raise BadInput("captured activations contain NaN or inf")
    return result


def check_span_position(position: str, source: str) -> None:
    """One line before any model loads when `source` (`--source pairs`, ...) is asked for a
    position a span cannot be pooled by."""
    if position not in SPAN_POSITIONS:
        raise BadInput(f"{source} supports positions {', '.join(SPAN_POSITIONS)}, not '{position}'")


def capture_spans(
    model: LoadedModel,
    sequences: Sequence[Sequence[int]],
    starts: Sequence[int],
    hooks: Sequence[str],
    position: str = "mean",
    batch_size: int = 16,
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """Float32 `[n, len(hooks), d]` at fast-point `hooks` for token-id sequences, pooled
    over each row's span from `starts[i]` to its end (its last token, or the span's mean).

    For text that follows a prompt (what the model wrote, an answer put in its mouth): one
    teacher-forced pass gives a causal model's states at exactly those tokens, and ids that
    were tokenised apart (prompt, then answer) keep the span's first token exact, which
    re-tokenising the joined text would not."""
    import torch

    if position not in SPAN_POSITIONS:
        raise BadInput(f"a token span is pooled by 'last' or 'mean', not '{position}'")
    for i, (seq, start) in enumerate(zip(sequences, starts, strict=True)):
        if not 0 < start < len(seq):
            raise BadInput(f"sequence {i} has no tokens after its prompt")
    hooks = [canonical(model, h) for h in hooks]
    deepest = max(parse(model, h)[0] for h in hooks)
    pad = model.tokenizer.pad_token_id
    pad = model.tokenizer.eos_token_id if pad is None else pad
    store: dict[str, torch.Tensor] = {}

    def keep(act, ctx):
        store[ctx.name] = act.detach()

    out = []
    forward = forward_module(model, FAST)
    with apply_hooks(model, [(h, keep) for h in hooks]), torch.no_grad():
        handle = stop_after(model, deepest, FAST)
        try:
            for b in range(0, len(sequences), batch_size):
                if check:
                    check()
                rows = [list(map(int, s)) for s in sequences[b : b + batch_size]]
                width = max(len(r) for r in rows)
                ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
                mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
                store.clear()
                try:
                    forward(
                        input_ids=ids.to(model.device),
                        attention_mask=mask.to(model.device),
                        use_cache=False,
                    )
                except StopForward:
                    pass
                acts = torch.stack([store[h] for h in hooks], dim=2).float().cpu().numpy()
                for i, r in enumerate(rows):
                    span = acts[i, starts[b + i] : len(r)]
                    out.append(span[-1] if position == "last" else span.mean(0))
        finally:
            handle.remove()
    result = np.stack(out).astype(np.float32)
    if not np.isfinite(result).all():
        raise BadInput("captured activations contain NaN or inf")
    return result


def _check_inputs(texts: Sequence[str], position: str) -> None:
    if position not in POSITIONS:
        raise BadInput(f"unknown position '{position}' (known: {', '.join(POSITIONS)})")
    if not texts:
        raise BadInput("no texts to capture")
    for i, t in enumerate(texts):
        if not t or not t.strip():
            raise BadInput(f"text {i} is empty")


def key_axis(name: str) -> bool:
    """Hooks laid out `[batch, heads, query, key]` (TL's attention pattern and scores)."""
    return name.endswith(("hook_pattern", "hook_attn_scores"))


def capture_named(
    model: LoadedModel,
    texts: Sequence[str],
    hooks: Sequence[str],
    position: str = "last",
    batch_size: int = 16,
    progress: Progress | None = None,
    check: Callable[[], None] | None = None,
    via: str | None = None,
) -> dict[str, np.ndarray | list]:
    """Activations of `texts` at any TL hook names, one float32 array per name, pooled over
    positions like `capture`: `[n, *trailing]` (`hook_q`: `[n, heads, d_head]`). For
    attention patterns and scores the pooled axis is the query; keys are padded to the
    longest text (pattern with 0, what softmax gives a masked key; scores with -inf).
    Position 'all' gives a list of `[len_i, *trailing]` (keys cut to the text's length).
    Runs on the fast path when every name is a fast point, else one bridge forward serves
    all names (`via` forces a path)."""
    _check_inputs(texts, position)
    if not hooks:
        raise BadInput("no hook names given")
    path = route(model, hooks, via)
    names = [canonical(model, h) if fast_point(h) else h for h in hooks]
    blocks = [HOOK_RE.match(h) for h in names]
    deepest = max(int(m.group(1)) for m in blocks) if all(blocks) else None
    commas = comma_ids(model) if position == "commas" else set()
    rows: dict[str, list] = {h: [None] * len(texts) for h in names}

    def pool(idx, ids, mask, store) -> None:
        for h in names:
            if h not in store:
                raise BadInput(
                    f"hook '{h}' never ran in the forward pass (the bridge computes "
                    "it only in TransformerLens modes emolab does not switch on)"
                )
            act = store[h].float()
            if key_axis(h):
                act = act.transpose(1, 2)  # [batch, query, heads, key]
            act = act.cpu().numpy()
            for row, i in enumerate(idx):
                n = int(mask[row].sum())
                pooled = _pool(act[row], n, ids[row], position, commas, int(i))
                rows[h][i] = pooled[..., :n] if key_axis(h) else pooled

    _forward_batches(model, texts, names, path, deepest, batch_size, pool, progress, check)
    if position == "all":
        return rows
    return {h: _stack(h, rows[h]) for h in names}


def _stack(name: str, rows: list) -> np.ndarray:
    if key_axis(name):
        width = max(r.shape[-1] for r in rows)
        fill = 0.0 if name.endswith("hook_pattern") else -np.inf
        rows = [
            np.pad(r, [(0, 0)] * (r.ndim - 1) + [(0, width - r.shape[-1])], constant_values=fill)
            for r in rows
        ]
    out = np.stack(rows).astype(np.float32)
    if np.isnan(out).any():
        raise BadInput(f"captured activations at {name} contain NaN")
    return out
