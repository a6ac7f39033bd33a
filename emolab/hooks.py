"""TransformerLens hook names, on two paths over one model.

The six fast-path points (`POINTS`) run on the unwrapped HF model through torch hooks:
hot loops (capture, steering, generation) stay as cheap as plain HF. Every other TL name
(`blocks.L.attn.hook_pattern`, `hook_q`, `ln_final.hook_normalized`, ...) runs through the
model's TransformerBridge, which owns its own copy of the weights (booting mutates the HF
model it wraps). Callers pick the path with `route` and call the matching `forward_module`.
Every hook is removed when the context exits, even on an exception, so nothing leaks into
the next run.
"""

from __future__ import annotations

import difflib
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


FAST, BRIDGE = "fast", "bridge"


class StopForward(Exception):
    """Raised after the deepest hook a capture needs: the rest of the model is skipped."""


def fast_point(name: str) -> str | None:
    """The fast-path point of a TL name (aliases resolved), or None when only the bridge
    has it. Layer range is not checked here (see `parse`)."""
    m = HOOK_RE.match(name)
    point = ALIASES.get(m.group(2), m.group(2)) if m else None
    return point if point in POINTS else None


def bridge_names(model: LoadedModel) -> list[str]:
    """Every hook name the model's TransformerBridge exposes (boots it on first use)."""
    return sorted(model.bridge().hook_dict)


def path_of(model: LoadedModel, name: str) -> str:
    """FAST or BRIDGE for a hook name, checked against the model: an unknown name is one
    line naming the closest real ones."""
    if fast_point(name):
        parse(model, name)  # range check
        return FAST
    known = model.bridge().hook_dict
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see `emolab hooks --model M`"
        raise UnknownName(f"unknown hook '{name}' for {model.name} ({hint})")
    return BRIDGE


def route(model: LoadedModel, names: Sequence[str], via: str | None = None) -> str:
    """The path a set of hooks runs on: FAST when every name is a fast point, else BRIDGE
    (one forward pass serves them all). `via` forces a path; forcing FAST with a
    bridge-only name is an error."""
    paths = {path_of(model, n) for n in names}
    if via is None:
        return BRIDGE if BRIDGE in paths else FAST
    if via not in (FAST, BRIDGE):
        raise BadInput(f"unknown hook path '{via}' (known: {FAST}, {BRIDGE})")
    if via == FAST and BRIDGE in paths:
        bad = next(n for n in names if not fast_point(n))
        raise UnknownName(
            f"hook '{bad}' runs only through the TransformerBridge; this step runs the plain "
            f"HF model (fast points: blocks.<L>.{{{','.join(POINTS)}}})"
        )
    return via


def forward_module(model: LoadedModel, path: str):
    """The HF module to call for a path: the plain model, or the bridge's (wrapped) one."""
    return model.bridge().original_model if path == BRIDGE else model.hf


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
    model: LoadedModel,
    pairs: Sequence[tuple[str, HookFn]],
    ctx: HookContext | None = None,
    via: str = FAST,
) -> Iterator[HookContext]:
    """Attach (TL-name, fn) hooks for the duration of the block, on the path `via`: FAST
    hooks the plain HF model (`model.hf`), BRIDGE the bridge's (`forward_module`). The
    caller runs the forward on the module of the same path.

    The yielded context is shared by all hooks: runners set `attention_mask`,
    `prompt_lengths` and `left_padded` on it; `new_tokens` counts forward calls after the
    first one, i.e. tokens generated so far.
    """
    ctx = ctx or HookContext(name="")
    via = route(model, [n for n, _ in pairs], via)
    calls = {"n": 0}

    def count(_module, _args):
        ctx.new_tokens = calls["n"]
        calls["n"] += 1

    handle = forward_module(model, via).register_forward_pre_hook(count)
    try:
        if via == BRIDGE:
            with _bridge_hooks(model, pairs, ctx):
                yield ctx
        else:
            with _fast_hooks(model, pairs, ctx):
                yield ctx
    finally:
        handle.remove()


@contextmanager
def _bridge_hooks(model: LoadedModel, pairs, ctx: HookContext) -> Iterator[None]:
    """TL's own hook points on the bridge; its conversions split heads as TL does
    (`hook_z`, `hook_q`: `[batch, pos, heads, d_head]`)."""
    hook_dict = model.bridge().hook_dict
    added = []
    try:
        for name, fn in pairs:
            point = hook_dict[name]
            cname = canonical(model, name) if fast_point(name) else name

            def tl_hook(act, hook, fn=fn, cname=cname):
                return fn(act, replace(ctx, name=cname))

            added.append((point, point.add_hook(tl_hook)))
        yield
    finally:
        for point, lens in added:
            lens.hook.remove()
            if lens in point.fwd_hooks:
                point.fwd_hooks.remove(lens)


@contextmanager
def _fast_hooks(model: LoadedModel, pairs, ctx: HookContext) -> Iterator[None]:
    handles = []
    try:
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
        yield
    finally:
        for h in handles:
            h.remove()


def stop_after(model: LoadedModel, layer: int, path: str = FAST):
    """A forward hook handle that aborts the forward pass once block `layer` has run."""

    def stop(_m, _args, _output):
        raise StopForward

    blocks = getpath(forward_module(model, path), model.arch.blocks)
    return blocks[layer].register_forward_hook(stop)


def forward_until(model: LoadedModel, layer: int, ids, mask) -> None:
    """One plain forward pass cut off once block `layer` has run: the hooks attached have
    seen what they read, and the deeper blocks are not computed."""
    handle = stop_after(model, layer)
    try:
        model.hf(input_ids=ids, attention_mask=mask, use_cache=False)
    except StopForward:
        pass
    finally:
        handle.remove()


def vocabulary(model: LoadedModel) -> list[dict]:
    """Every TL hook name of the model with its path and the shape a hook fn receives, from
    one short bridge forward (`batch` and `pos` stand for the batch and sequence axes).
    `shape` is None for a name the bridge has but a plain forward never runs (TL options
    such as per-head results that emolab does not switch on)."""
    import torch

    dims = {
        model.n_heads,
        model.d_head,
        model.d_model,
        getattr(model.config, "num_key_value_heads", 0),
    }
    seq = next(t for t in (7, 11, 13, 17, 19, 23, 29) if t not in dims)
    ids, _ = model.encode(["a" + " a" * (4 * seq)])
    ids = ids[:, :seq]
    shapes: dict[str, tuple] = {}

    def note(name):
        return lambda act, ctx: shapes.__setitem__(name, tuple(act.shape))

    names = bridge_names(model)
    with apply_hooks(model, [(n, note(n)) for n in names], via=BRIDGE), torch.no_grad():
        forward_module(model, BRIDGE)(input_ids=ids, use_cache=False)
    out = []
    for name in names:
        shape = shapes.get(name)
        sym = None
        if shape is not None:
            sym = ["batch" if i == 0 else "pos" if d == seq else d for i, d in enumerate(shape)]
        out.append({"name": name, "path": FAST if fast_point(name) else BRIDGE, "shape": sym})
    return out
