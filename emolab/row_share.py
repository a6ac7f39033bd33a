"""Rows that repeat below the first hooked block are computed once.

Batched sweep cells run the same prompts once per cell (cell-major: cell c owns rows
[c * n, (c + 1) * n)). Every block below the first one any cell hooks sees identical rows
for each cell on the first forward call (the prompt, before any cell's token differs), so
that call runs those blocks on the first n rows and repeats the result (and, in
generation, the KV cache it wrote) for the other cells. Later calls (generated tokens, which
differ per cell) run every row. Each row's numbers are those of the block on n rows, the
shapes a cell alone runs with. Where a forward reads one position per text, the LM head
likewise runs on each cell's n rows apart (`head_per_cell`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from .hooks import parse
from .models import LoadedModel


def first_hooked_block(model: LoadedModel, names: Sequence[str]) -> int:
    """The lowest block any of the hook names touches (the block count when none)."""
    return min((parse(model, n)[0] for n in names), default=model.n_layers)


def _rows(x, total: int, n: int):
    """`x` cut to its first n rows where its first axis is the batch (tuples walked)."""
    import torch

    if isinstance(x, torch.Tensor) and x.dim() > 0 and x.shape[0] == total:
        return x[:n]
    if isinstance(x, tuple):
        return tuple(_rows(v, total, n) for v in x)
    return x


@contextmanager
def shared_rows(model: LoadedModel, below: int, n: int, copies: int) -> Iterator[None]:
    """For the duration of one forward or generate call over `copies` x n cell-major rows,
    blocks `0..below-1` compute their first call on n rows and repeat it."""
    import torch
    from transformers.cache_utils import Cache

    if copies < 2 or below < 1:
        yield
        return
    total = n * copies
    handles, done, sliced = [], set(), set()

    def repeat(t):
        """The n rows a block computed, repeated for every cell along the batch axis."""
        return t.repeat(copies, *[1] * (t.dim() - 1))

    def make(index: int, block):
        def pre(_m, args, kwargs):
            hidden = args[0] if args else kwargs.get("hidden_states")
            if index in done:
                return None
            done.add(index)  # only a block's first call shares
            if hidden is None or hidden.shape[0] != total:
                return None
            sliced.add(index)
            return _rows(args, total, n), {k: _rows(v, total, n) for k, v in kwargs.items()}

        def post(_m, args, kwargs, output):
            if index not in sliced:
                return None
            sliced.discard(index)
            for v in (*args, *kwargs.values()):
                if isinstance(v, Cache) and index < len(v.layers):
                    layer = v.layers[index]
                    layer.keys, layer.values = repeat(layer.keys), repeat(layer.values)
            if isinstance(output, tuple):
                return (repeat(output[0]), *output[1:])
            return repeat(output)

        handles.append(block.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(block.register_forward_hook(post, with_kwargs=True))

    for i, block in enumerate(list(model.blocks)[:below]):
        make(i, block)
    try:
        with torch.no_grad():
            yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def head_per_cell(model: LoadedModel, n: int, copies: int) -> Iterator[None]:
    """For the duration of one forward over `copies` x n cell-major rows, the LM head runs
    on each cell's n rows apart. A matrix product's rounding can depend on its row count
    (a small-M kernel for one position per text), and a cell alone puts n rows through the
    head: so each cell's logits are bit-equal to its logits alone."""
    import torch

    head = model.hf.get_output_embeddings()
    if copies < 2 or head is None:
        yield
        return
    own = head.__dict__.get("forward")  # an accelerate hook may have set one
    inner = head.forward

    def forward(x):
        if x.shape[0] != n * copies:
            return inner(x)
        return torch.cat([inner(x[c * n : (c + 1) * n]) for c in range(copies)])

    head.forward = forward
    try:
        yield
    finally:
        if own is None:
            del head.forward
        else:
            head.forward = own
