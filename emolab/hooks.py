"""TransformerLens hook names on a plain HF model, through torch hooks.

Hot loops (capture, steering, generation) run the unwrapped HF model, which is cheaper
than the TransformerBridge, but the public vocabulary stays TL's hook names. Every hook
is removed when the context exits, even on an exception, so nothing leaks into the next run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

from .api import HookContext, HookFn
from .errors import BadInput, UnknownName
from .models import LoadedModel, getpath

HOOK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")
ALIASES = {"attn.o.hook_in": "attn.hook_z", "mlp.out.hook_in": "mlp.hook_post"}
# point -> (where on the block, "out" for a forward hook / "in" for a pre-hook, split heads?)
POINTS = {
    "hook_resid_pre": ("", "in", False),
    "hook_resid_post": ("", "out", False),
    "attn.hook_z": ("attn_out_proj", "in", True),
    "hook_attn_out": ("attn", "out", False),
    "hook_mlp_out": ("mlp", "out", False),
    "mlp.hook_post": ("mlp_out_proj", "in", False),
}


class StopForward(Exception):
    """Raised after the deepest hook a capture needs: the rest of the model is skipped."""


def parse(model: LoadedModel, name: str) -> tuple[int, str]:
    """(layer, point) of a TL hook name, checked against the model."""
    m = HOOK_RE.match(name)
    point = ALIASES.get(m.group(2), m.group(2)) if m else None
    if not m or point not in POINTS:
        raise UnknownName(f"unknown hook '{name}' (known: blocks.<L>.{{{','.join(POINTS)}}})")
    layer = int(m.group(1))
    if not 0 <= layer < model.n_layers:
        raise BadInput(
            f"layer {layer} out of range: {model.name} has layers 0-{model.n_layers - 1}"
        )
    return layer, point


def canonical(model: LoadedModel, name: str) -> str:
    layer, point = parse(model, name)
    return f"blocks.{layer}.{point}"


def module_for(model: LoadedModel, name: str):
    layer, point = parse(model, name)
    where, _, _ = POINTS[point]
    block = model.blocks[layer]
    return block if not where else getpath(block, getattr(model.arch, where))


def _first(x):
    return x[0] if isinstance(x, tuple) else x


def _replace_first(x, new):
    return (new, *x[1:]) if isinstance(x, tuple) else new


def _call(fn: HookFn, act, ctx: HookContext, heads: int | None):
    """Run a user hook on `act`, splitting heads for hook_z; return the new tensor or None."""
    view = act.view(*act.shape[:-1], heads, -1) if heads else act
    out = fn(view, ctx)
    if out is None:
        return None
    return out.reshape(act.shape) if heads else out


@contextmanager
def apply_hooks(
    model: LoadedModel, pairs: Sequence[tuple[str, HookFn]], ctx: HookContext | None = None
) -> Iterator[HookContext]:
    """Attach (TL-name, fn) hooks to the HF model for the duration of the block.

    The yielded context is shared by all hooks: runners set `attention_mask`,
    `prompt_lengths` and `left_padded` on it; `new_tokens` counts forward calls after the
    first one, i.e. tokens generated so far.
    """
    ctx = ctx or HookContext(name="")
    handles = []
    calls = {"n": 0}

    def count(_module, _args):
        ctx.new_tokens = calls["n"]
        calls["n"] += 1

    try:
        handles.append(model.hf.register_forward_pre_hook(count))
        for name, fn in pairs:
            layer, point = parse(model, name)
            where, side, split = POINTS[point]
            module = module_for(model, name)
            heads = model.n_heads if split else None
            cname = f"blocks.{layer}.{point}"
            if side == "out":

                def hook(_m, _args, output, fn=fn, cname=cname, heads=heads):
                    new = _call(fn, _first(output), replace(ctx, name=cname), heads)
                    return None if new is None else _replace_first(output, new)

                handles.append(module.register_forward_hook(hook))
            else:

                def prehook(_m, args, kwargs, fn=fn, cname=cname, heads=heads):
                    if args:
                        new = _call(fn, args[0], replace(ctx, name=cname), heads)
                        return None if new is None else ((new, *args[1:]), kwargs)
                    new = _call(fn, kwargs["hidden_states"], replace(ctx, name=cname), heads)
                    return None if new is None else (args, {**kwargs, "hidden_states": new})

                handles.append(module.register_forward_pre_hook(prehook, with_kwargs=True))
        yield ctx
    finally:
        for h in handles:
            h.remove()


def stop_after(model: LoadedModel, layer: int):
    """A forward hook handle that aborts the forward pass once block `layer` has run."""

    def stop(_m, _args, _output):
        raise StopForward

    return model.blocks[layer].register_forward_hook(stop)
