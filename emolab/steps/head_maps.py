"""The estimators behind `emolab heads`: how much an emotion readout moves when one head
(`blocks.L.attn.hook_z`) or MLP neuron (`blocks.L.mlp.hook_post`) is patched.

Two patches, both measured on the same texts:

- ablation: the unit's output at every position but the attention sink is replaced by its
  mean over neutral reference texts; the effect is clean - patched (positive: the unit
  writes the emotion);
- enhancement: the unit's output is multiplied by a factor at every real position, as the
  `enhance` intervention does when it steers ("circuit modulation"); the effect is
  patched - clean.

Each has an exact form (one patched forward per unit, many units batched as copies of the
texts) and a first-order one from a single backward pass (attribution patching). The
first-order ablation estimate breaks down for heads far below the readout, whose patch
passes through many non-linear layers; `checked_attribution` re-ablates exactly the heads
whose estimate is least trustworthy and keeps the estimate elsewhere.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np

from ..api import HookContext
from ..errors import BadInput
from ..hooks import apply_hooks, forward_until
from ..models import LoadedModel
from ..progress import Progress
from ..runner import final_logits

HEADS, NEURONS = "attn.hook_z", "mlp.hook_post"


class Setup:
    """What every estimator shares: the model, inputs, reference means and the metric."""

    def __init__(
        self,
        model: LoadedModel,
        texts,
        ref_texts,
        metric: str,
        layer: int,
        unit: np.ndarray | None,
        label_ids: list[int] | None,
        batch_size: int,
    ):
        import torch

        self.model, self.metric, self.layer = model, metric, layer
        self.texts, self.ref_texts, self.batch_size = list(texts), list(ref_texts), batch_size
        self.last_layer = layer if metric == "projection" else model.n_layers - 1
        self.unit = (
            None if unit is None else torch.tensor(unit, dtype=torch.float32, device=model.device)
        )
        self.label_ids = label_ids

    def on(self, texts) -> Setup:
        """The same model, metric and references over other texts."""
        other = copy.copy(self)
        other.texts = list(texts)
        return other

    def batches(self, texts):
        for start in range(0, len(texts), self.batch_size):
            yield self.model.encode(texts[start : start + self.batch_size], "right")

    def forward(self, ids, mask, hooks=()):
        """Metric per row `[batch]` (differentiable) under extra hooks."""
        import torch

        model = self.model
        last = mask.sum(1) - 1
        rows = torch.arange(len(ids), device=ids.device)
        if self.metric == "projection":
            store = {}

            def keep(h, ctx):
                store["h"] = h

            name = f"blocks.{self.layer}.hook_resid_post"
            with apply_hooks(model, [*hooks, (name, keep)]):
                forward_until(model, self.layer, ids, mask)
            return store["h"][rows, last].float() @ self.unit
        with apply_hooks(model, list(hooks)):
            logits, _ = final_logits(model, ids, mask, use_cache=False)
        lab = logits[:, self.label_ids].float()
        return lab[:, 0] - lab[:, 1:].mean(1)

    def reference(self, point: str) -> np.ndarray:
        """Mean of `blocks.L.<point>` over the reference texts' non-sink positions,
        `[layers, ...]` (heads split for attn.hook_z)."""
        import torch

        sums: dict[int, torch.Tensor] = {}
        count = 0

        def add(act, ctx):
            layer = int(ctx.name.split(".")[1])
            m = ctx.attention_mask.clone()
            m[:, 0] = 0
            w = m.to(act.dtype).reshape(*m.shape, *([1] * (act.dim() - 2)))
            s = (act * w).sum((0, 1))
            sums[layer] = sums.get(layer, 0) + s

        model = self.model
        hooks = [(f"blocks.{L}.{point}", add) for L in range(self.last_layer + 1)]
        with torch.no_grad():
            for ids, mask in self.batches(self.ref_texts):
                ctx = HookContext(name="", attention_mask=mask)
                with apply_hooks(model, hooks, ctx):
                    forward_until(model, self.last_layer, ids, mask)
                count += int(mask[:, 1:].sum())
        if count == 0:
            raise BadInput("reference texts are single tokens: nothing but the attention sink")
        return torch.stack([sums[L] / count for L in range(self.last_layer + 1)]).cpu().numpy()

    def clean(self) -> float:
        import torch

        with torch.no_grad():
            vals = [self.forward(ids, mask) for ids, mask in self.batches(self.texts)]
        return float(torch.cat(vals).mean())


def _gradients(setup: Setup, point: str) -> Iterator[tuple[int, object, object, object]]:
    """Per batch and layer: (layer, activation, dmetric/dactivation, real-token mask) from one
    forward and one backward pass over every layer up to the readout."""
    import torch

    for ids, mask in setup.batches(setup.texts):
        views: dict[int, torch.Tensor] = {}

        def grab(z, ctx, views=views):
            views[int(ctx.name.split(".")[1])] = z
            return z

        hooks = [(f"blocks.{L}.{point}", grab) for L in range(setup.last_layer + 1)]
        metric = setup.forward(ids, mask, hooks).sum()
        order = sorted(views)
        grads = torch.autograd.grad(metric, [views[L] for L in order])
        for L, g in zip(order, grads, strict=True):
            w = mask.to(g.dtype).reshape(*mask.shape, *([1] * (g.dim() - 2)))
            yield L, views[L].detach(), g, w


def _unit_sum(x) -> object:
    """Sum over texts and positions (and d_head for heads): one number per unit."""
    s = x.sum((0, 1))
    return s.sum(-1) if s.dim() > 1 else s


def linear_effects(setup: Setup, point: str, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First-order ablation effect `[layers, units]` (sum over non-sink positions of
    (z - z_ref) . dmetric/dz) and the enhancement slope (sum over real positions of
    z . dmetric/dz: scaling a unit by f moves the metric by about (f - 1) x the slope), both
    from the same backward pass."""
    import torch

    ref_t = torch.tensor(ref, device=setup.model.device)
    shape = ref.shape[:2]
    abl = torch.zeros(shape, dtype=torch.float64)
    slope = torch.zeros(shape, dtype=torch.float64)
    for L, z, g, w in _gradients(setup, point):
        no_sink = w.clone()
        no_sink[:, 0] = 0
        abl[L] += _unit_sum((z - ref_t[L]) * g * no_sink).double().cpu()
        slope[L] += _unit_sum(z * g * w).double().cpu()
    n = len(setup.texts)
    return (abl / n).numpy(), (slope / n).numpy()


def attribution(setup: Setup, point: str, ref: np.ndarray) -> np.ndarray:
    """First-order effect of patching every unit of `point` to `ref`: `[layers, units]`."""
    return linear_effects(setup, point, ref)[0]


def exact_effects(
    setup: Setup,
    point: str,
    units: list[tuple[int, int]],
    clean: float,
    ref: np.ndarray | None = None,
    factor: float | None = None,
    copies: int | None = None,
) -> np.ndarray:
    """Exact effect of patching each unit alone: ablation to `ref` (clean - patched) or,
    with `factor`, enhancement (patched - clean). `copies` units share one forward pass (the
    texts repeated once per unit, copy j patches unit j; default: the model's head count),
    so a map over many layers costs what a per-layer batch costs."""
    import torch

    if (ref is None) == (factor is None):
        raise ValueError("give either ref (ablation) or factor (enhancement)")
    ref_t = None if ref is None else torch.tensor(ref, device=setup.model.device)
    copies = copies or setup.model.n_heads
    out = np.zeros(len(units))
    for start in range(0, len(units), copies):
        part = units[start : start + copies]
        by_layer: dict[int, list[tuple[int, int]]] = {}
        for j, (L, u) in enumerate(part):
            by_layer.setdefault(L, []).append((j, u))
        sums = torch.zeros(len(part), dtype=torch.float64)
        for ids, mask in setup.batches(setup.texts):
            b = len(ids)

            def patch(z, ctx, b=b, by_layer=by_layer):
                L = int(ctx.name.split(".")[1])
                z = z.clone()
                for j, u in by_layer[L]:
                    rows = slice(j * b, (j + 1) * b)
                    if ref_t is None:
                        z[rows, :, u] = z[rows, :, u] * factor
                    else:
                        z[rows, 1:, u] = ref_t[L, u]
                return z

            hooks = [(f"blocks.{L}.{point}", patch) for L in sorted(by_layer)]
            with torch.no_grad():
                vals = setup.forward(ids.repeat(len(part), 1), mask.repeat(len(part), 1), hooks)
            sums += vals.double().cpu().reshape(len(part), b).sum(1)
        mean = (sums / len(setup.texts)).numpy()
        out[start : start + len(part)] = clean - mean if factor is None else mean - clean
    return out


def head_ablation(
    setup: Setup, ref: np.ndarray, clean: float, progress: Progress, layers: list[int] | None = None
) -> np.ndarray:
    """Exact effect of patching each head to its reference mean: `[layers, heads]`, one
    batched pass per layer (layers not asked for stay NaN)."""
    heads = setup.model.n_heads
    layers = list(range(setup.last_layer + 1)) if layers is None else layers
    out = np.full((setup.last_layer + 1, heads), np.nan)
    progress.task(f"ablate {len(layers) * heads} heads", len(layers))
    for i, L in enumerate(layers):
        progress.check()
        out[L] = exact_effects(setup, HEADS, [(L, h) for h in range(heads)], clean, ref=ref)
        progress.update(i + 1)
    return out


def check_order(attr: np.ndarray, attr_patched: np.ndarray) -> list[tuple[int, int]]:
    """Heads in the order `checked_attribution` re-ablates them: the largest first-order
    effect plus the disagreement between the estimate linearised at the clean run and the
    one linearised with every head patched. A head whose two estimates differ sits where the
    map is non-linear, so its first-order value is the one least to be trusted."""
    score = np.abs(attr) + np.abs(attr - attr_patched)
    flat = np.nan_to_num(score, nan=-1.0).ravel()
    order = [int(i) for i in np.argsort(-flat, kind="stable") if flat[i] >= 0]
    return [tuple(int(v) for v in np.unravel_index(i, attr.shape)) for i in order]


def two_sided_attribution(setup: Setup, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z - z_ref) . dmetric/dz for every head, `[layers, heads]` twice: with the gradient
    taken at the clean run (attribution patching) and where every head up to the readout is
    patched to its reference (the first-order estimate from the other end of the path).
    Two forward + backward passes per batch."""
    import torch

    ref_t = torch.tensor(ref, device=setup.model.device)
    sides = torch.zeros((2, *ref.shape[:2]), dtype=torch.float64)
    names = [f"blocks.{L}.{HEADS}" for L in range(setup.last_layer + 1)]
    for ids, mask in setup.batches(setup.texts):
        m = mask.clone()
        m[:, 0] = 0
        w = m.to(torch.float32)[:, :, None, None]
        clean_z: dict[int, torch.Tensor] = {}
        for side in (0, 1):
            views: dict[int, torch.Tensor] = {}

            def hook(z, ctx, side=side, views=views, w=w):
                L = int(ctx.name.split(".")[1])
                if side:
                    z = z * (1 - w) + ref_t[L] * w
                views[L] = z
                return z

            metric = setup.forward(ids, mask, [(n, hook) for n in names]).sum()
            order = sorted(views)
            grads = torch.autograd.grad(metric, [views[L] for L in order])
            if not side:
                clean_z = {L: views[L].detach() for L in order}
            for L, g in zip(order, grads, strict=True):
                sides[side, L] += _unit_sum((clean_z[L] - ref_t[L]) * g * w).double().cpu()
    out = (sides / len(setup.texts)).numpy()
    return out[0], out[1]


def checked_attribution(
    setup: Setup, ref: np.ndarray, clean: float, checks: int
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Attribution with its `checks` least trustworthy heads (`check_order`) replaced by
    their exact ablation effect, the checks batched across layers. With as many checks as
    heads it is the exact map."""
    attr, patched = two_sided_attribution(setup, ref)
    units = check_order(attr, patched)[:checks]
    out = attr.copy()
    for (L, h), e in zip(units, exact_effects(setup, HEADS, units, clean, ref=ref), strict=True):
        out[L, h] = e
    return out, units


def top_units(matrix: np.ndarray, k: int) -> list[dict]:
    flat = np.nan_to_num(matrix, nan=0.0)
    order = np.argsort(-np.abs(flat), axis=None)[:k]
    return [
        {"layer": int(i), "unit": int(j), "effect": float(matrix[i, j])}
        for i, j in zip(*np.unravel_index(order, matrix.shape), strict=True)
    ]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3:
        return float("nan")
    return float(spearmanr(x[keep], y[keep]).statistic)


def compare(estimate: np.ndarray, abl: np.ndarray, k: int) -> dict:
    """Rank agreement of an estimated map with the exact one over all heads upstream of the
    readout, and over the heads that matter (the top-k by |exact effect|)."""
    a, b = estimate.ravel(), abl.ravel()
    keep = np.isfinite(b)
    top = np.argsort(-np.abs(np.where(keep, b, 0)))[:k]
    return {
        "spearman_all": spearman(a, b),
        "spearman_top": spearman(a[top], b[top]),
        "spearman_abs_all": spearman(np.abs(a), np.abs(b)),
        "sign_agreement_top": float(np.mean(np.sign(a[top]) == np.sign(b[top]))),
        "top_k": k,
        "n_heads": int(keep.sum()),
    }


def matrix_csv(matrix: np.ndarray) -> str:
    head = "layer," + ",".join(f"h{j}" for j in range(matrix.shape[1]))
    rows = [
        f"{i}," + ",".join("" if not np.isfinite(v) else f"{v:.6g}" for v in row)
        for i, row in enumerate(matrix)
    ]
    return "\n".join([head, *rows]) + "\n"
