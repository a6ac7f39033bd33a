"""Head (and MLP neuron) maps: which components write an emotion, by two methods.

Both methods answer one question: how much does the metric fall when a head's output
(`blocks.L.attn.hook_z`, every position but the attention sink) is replaced by its mean
over neutral reference texts?

- `ablation` measures it exactly: one patched forward pass per head, the heads of a layer
  batched together (the texts are repeated once per head, copy j patches head j).
- `attribution` estimates it to first order (attribution patching): one forward and one
  backward pass give dmetric/dz for every head at once, and the effect is
  sum over positions of (z - z_ref) . dmetric/dz.

The metric is either the projection of the last-position residual on the session's
emotion direction at the readout layer (`projection`; heads above that layer cannot
affect it and are left NaN), or the emotion label's logit minus the mean logit of the
other labels under the list prompt (`label_logit`).
"""

from __future__ import annotations

import time

import numpy as np

from ..api import HookContext
from ..data import list_prompt
from ..errors import BadInput
from ..hooks import apply_hooks, forward_until
from ..metadata import FileMeta
from ..models import LoadedModel
from ..params import Param, defaults, validate
from ..progress import Progress
from ..runner import label_token_ids
from ..session import Session
from .common import emotion_vector, session_model

METHODS = ("attribution", "ablation")
METRICS = ("projection", "label_logit")
SUMMARY_CHARS = ",.;:!?"
PARAMS = (
    Param("emotion", str, None, "whose direction the heads write"),
    Param(
        "method", str, "attribution", "attribution (one backward pass) or ablation (exact)", METHODS
    ),
    Param("compare", bool, False, "run both methods and compare their rankings"),
    Param("metric", str, "projection", "what a head moves", ("projection", "label_logit")),
    Param("layer", int, None, "read layer (default: the steering layer)", min=0),
    Param("n_texts", int, 8, "emotion texts averaged over", min=1),
    Param("neurons", bool, False, "rank MLP neurons too"),
    Param("top_k", int, 10, "units listed", min=1),
    Param("verify", int, 0, "exact ablation of the top-k heads by |attribution| (0: off)", min=0),
    Param("batch_size", int, 8, "texts per forward pass", min=1),
    Param(
        "flag_mass",
        float,
        0.25,
        "attention mass on summary tokens that flags a head",
        min=0.0,
        max=1.0,
    ),
    Param("flag_ratio", float, 2.0, "how much above its share a flagged head must attend", min=0.0),
)
DEFAULTS = defaults(PARAMS)


class Setup:
    """What both methods share: the model, inputs, reference means and the metric."""

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
            logits = model.hf(input_ids=ids, attention_mask=mask, use_cache=False).logits
        lab = logits[rows, last][:, self.label_ids].float()
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


def attribution(setup: Setup, point: str, ref: np.ndarray) -> np.ndarray:
    """First-order effect of patching every unit of `point` to `ref`: `[layers, units]`."""
    import torch

    model = setup.model
    n_layers = setup.last_layer + 1
    ref_t = torch.tensor(ref, device=model.device)
    total = torch.zeros(ref.shape[:2], dtype=torch.float64)
    for ids, mask in setup.batches(setup.texts):
        views: dict[int, torch.Tensor] = {}

        def grab(z, ctx, views=views):
            views[int(ctx.name.split(".")[1])] = z
            return z

        hooks = [(f"blocks.{L}.{point}", grab) for L in range(n_layers)]
        metric = setup.forward(ids, mask, hooks).sum()
        order = sorted(views)
        grads = torch.autograd.grad(metric, [views[L] for L in order])
        m = mask.clone()
        m[:, 0] = 0
        for L, g in zip(order, grads, strict=True):
            w = m.to(g.dtype).reshape(*m.shape, *([1] * (g.dim() - 2)))
            diff = (views[L].detach() - ref_t[L]) * g * w
            eff = diff.sum((0, 1))
            if eff.dim() > 1:  # heads: sum over d_head
                eff = eff.sum(-1)
            total[L] += eff.double().cpu()
    return (total / len(setup.texts)).numpy()


def head_ablation(
    setup: Setup, ref: np.ndarray, clean: float, progress: Progress, layers: list[int] | None = None
) -> np.ndarray:
    """Exact effect of patching each head to its reference mean: `[layers, heads]`."""
    import torch

    model = setup.model
    heads = model.n_heads
    ref_t = torch.tensor(ref, device=model.device)
    layers = list(range(setup.last_layer + 1)) if layers is None else layers
    out = np.full((setup.last_layer + 1, heads), np.nan)
    progress.task(f"ablate {len(layers) * heads} heads", len(layers))
    for i, L in enumerate(layers):
        progress.check()
        sums = torch.zeros(heads, dtype=torch.float64)
        for ids, mask in setup.batches(setup.texts):
            b = len(ids)

            def patch(z, ctx, L=L, b=b):
                z = z.clone()
                for h in range(heads):
                    z[h * b : (h + 1) * b, 1:, h] = ref_t[L, h]
                return z

            rep_ids, rep_mask = ids.repeat(heads, 1), mask.repeat(heads, 1)
            with torch.no_grad():
                vals = setup.forward(rep_ids, rep_mask, [(f"blocks.{L}.attn.hook_z", patch)])
            sums += vals.double().cpu().reshape(heads, b).sum(1)
        out[L] = clean - (sums / len(setup.texts)).numpy()
        progress.update(i + 1)
    return out


def neuron_ablation(
    setup: Setup, ref: np.ndarray, clean: float, units: list[tuple[int, int]]
) -> list[float]:
    """Exact effect of patching single MLP neurons (one batch per neuron list per layer)."""
    import torch

    ref_t = torch.tensor(ref, device=setup.model.device)
    out = []
    for L, n in units:

        def patch(x, ctx, L=L, n=n):
            x = x.clone()
            x[:, 1:, n] = ref_t[L, n]
            return x

        with torch.no_grad():
            vals = [
                setup.forward(ids, mask, [(f"blocks.{L}.mlp.hook_post", patch)])
                for ids, mask in setup.batches(setup.texts)
            ]
        out.append(clean - float(torch.cat(vals).mean()))
    return out


def summary_token_ids(model: LoadedModel) -> set[int]:
    """Token ids whose text holds punctuation that ends a clause (the 'summary' positions)."""
    tok = model.tokenizer
    return {
        i
        for s, i in tok.get_vocab().items()
        if any(c in tok.convert_tokens_to_string([s]) for c in SUMMARY_CHARS)
    }


def attention_flags(model: LoadedModel, texts, mass_min: float, ratio_min: float) -> dict:
    """Attention from each text's final position to its earlier comma / clause-end tokens,
    per head, as a share of the attention outside the sink, and that share over the share
    uniform attention would give. Plain HF model in eager attention (to get the weights)."""
    import torch

    summary_ids = summary_token_ids(model)
    L, H = model.n_layers, model.n_heads
    mass, ratio, used = np.zeros((L, H)), np.zeros((L, H)), 0
    hf = model.hf
    original = hf.config._attn_implementation
    hf.set_attn_implementation("eager")
    try:
        for text in texts:
            ids, mask = model.encode([text], "right")
            last = int(mask[0].sum()) - 1
            pos = [j for j in range(1, last) if int(ids[0, j]) in summary_ids]
            if not pos:
                continue
            with torch.no_grad():
                att = hf(
                    input_ids=ids, attention_mask=mask, use_cache=False, output_attentions=True
                ).attentions
            for layer, a in enumerate(att):
                row = a[0, :, last, 1 : last + 1].double().cpu().numpy()  # [H, last]
                share = row[:, [j - 1 for j in pos]].sum(1) / (row.sum(1) + 1e-12)
                mass[layer] += share
                ratio[layer] += share / (len(pos) / last)
            used += 1
    finally:
        hf.set_attn_implementation(original)
    if used:
        mass, ratio = mass / used, ratio / used
    flagged = [
        {"layer": int(i), "head": int(j), "mass": float(mass[i, j]), "ratio": float(ratio[i, j])}
        for i in range(L)
        for j in range(H)
        if used and mass[i, j] >= mass_min and ratio[i, j] >= ratio_min
    ]
    flagged.sort(key=lambda r: -r["mass"])
    return {
        "texts_with_summary_tokens": used,
        "mass": mass.tolist(),
        "ratio": ratio.tolist(),
        "flagged": flagged,
        "mass_min": mass_min,
        "ratio_min": ratio_min,
    }


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


def compare(attr: np.ndarray, abl: np.ndarray, k: int) -> dict:
    """Rank agreement over all heads upstream of the readout, and over the heads that
    matter (the top-k by |exact effect|)."""
    a, b = attr.ravel(), abl.ravel()
    keep = np.isfinite(b)
    top = np.argsort(-np.abs(np.where(keep, b, 0)))[:k]
    return {
        "spearman_all": spearman(a, b),
        "spearman_top": spearman(a[top], b[top]),
        "spearman_abs_all": spearman(np.abs(a), np.abs(b)),
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


def prepare(session: Session, p: dict) -> Setup:
    """The model, the emotion's texts, the reference texts and the metric for a head map."""
    from .shared import default_layer

    if not p.get("emotion"):
        raise BadInput("heads needs an emotion")
    if p["method"] not in METHODS:
        raise BadInput(f"unknown method '{p['method']}' (known: {', '.join(METHODS)})")
    if p["metric"] not in METRICS:
        raise BadInput(f"unknown metric '{p['metric']}' (known: {', '.join(METRICS)})")
    if int(p["n_texts"]) < 1 or int(p["top_k"]) < 1 or int(p["batch_size"]) < 1:
        raise BadInput("n_texts, top_k and batch_size must be at least 1")
    if int(p["verify"]) < 0:
        raise BadInput("verify must be 0 (off) or a number of heads")
    if int(p["verify"]) > 0 and p["method"] != "attribution" and not p["compare"]:
        raise BadInput("--verify checks an attribution map: use it with --method attribution")
    model = session_model(session)
    n_layers = model.n_layers
    vectors, meta = session.load_vectors()
    vec = emotion_vector(vectors, p["emotion"], n_layers)
    layer = default_layer(session) if p["layer"] is None else int(p["layer"])
    if not 0 <= layer < n_layers:
        raise BadInput(f"layer {layer} out of range: the model has layers 0-{n_layers - 1}")
    if p["metric"] == "projection" and not np.isfinite(vec[layer]).all():
        raise BadInput(f"no '{p['emotion']}' vector at layer {layer} in this session")
    ex = session.read_json("examples.json")
    baseline = meta.baseline
    n = int(p["n_texts"])
    texts = [t for lab, t in ex["train"] if lab == p["emotion"]][:n]
    refs = [t for lab, t in ex["train"] if lab == baseline][:n]
    if not refs:
        raise BadInput(f"the session holds no '{baseline}' reference texts")
    unit, label_ids = None, None
    if p["metric"] == "projection":
        unit = vec[layer] / np.linalg.norm(vec[layer])
    else:
        labels = [*meta.emotions, baseline]
        ids = label_token_ids(model, labels)
        label_ids = [ids[p["emotion"]]] + [ids[lab] for lab in labels if lab != p["emotion"]]
        texts = [list_prompt(t, labels) for t in texts]
        refs = [list_prompt(t, labels) for t in refs]
    p["layer"] = layer
    return Setup(model, texts, refs, p["metric"], layer, unit, label_ids, int(p["batch_size"]))


def run(session: Session, params: dict, progress: Progress | None = None) -> dict:
    progress = progress or Progress()
    p = validate(PARAMS, params, "heads")
    setup = prepare(session, p)
    raw_texts = [
        t for lab, t in session.read_json("examples.json")["train"] if lab == p["emotion"]
    ][: int(p["n_texts"])]
    model = setup.model
    wanted = list(METHODS) if p["compare"] else [p["method"]]
    k = int(p["top_k"])
    with session.step("heads", p) as rec:
        progress.task("clean pass and reference means", 1)
        clean = setup.clean()
        ref_z = setup.reference("attn.hook_z")
        progress.update(1)
        maps, seconds = {}, {}
        full = np.full((model.n_layers, model.n_heads), np.nan)
        for m in wanted:
            t0 = time.perf_counter()
            if m == "attribution":
                progress.task("attribution patching (1 forward + 1 backward)", 1)
                mat = attribution(setup, "attn.hook_z", ref_z)
                progress.update(1)
            else:
                mat = head_ablation(setup, ref_z, clean, progress)
            seconds[m] = time.perf_counter() - t0
            out = full.copy()
            out[: mat.shape[0]] = mat
            maps[m] = out
        result: dict = {
            "emotion": p["emotion"],
            "metric": p["metric"],
            "layer": setup.layer,
            "n_texts": len(setup.texts),
            "clean_metric": clean,
            "maps": {},
            "seconds": seconds,
        }
        seq = rec["seq"]
        tag = f"heads-{seq:03d}-{p['emotion']}"
        for m, mat in maps.items():
            result["maps"][m] = {"matrix": mat.tolist(), "top": top_units(mat, k)}
            session.write_artifact(f"{tag}-{m}.csv", matrix_csv(mat))
            rec["outputs"].append(f"artifacts/{tag}-{m}.csv")
            top = result["maps"][m]["top"][0]
            rec["metrics"][f"{m}/top_effect"] = top["effect"]
        if int(p["verify"]) > 0 and "attribution" in maps:
            result["verify"] = verify(setup, maps["attribution"], ref_z, clean, p, progress)
            rec["metrics"]["verify_spearman"] = result["verify"]["spearman"]
        if p["compare"]:
            result["compare"] = compare(maps["attribution"], maps["ablation"], k)
            result["compare"]["speedup"] = seconds["ablation"] / max(seconds["attribution"], 1e-9)
            rec["metrics"]["spearman_all"] = result["compare"]["spearman_all"]
            rec["metrics"]["spearman_top"] = result["compare"]["spearman_top"]
        progress.task("attention to comma / summary positions", 1)
        result["attention"] = attention_flags(
            model, raw_texts, float(p["flag_mass"]), float(p["flag_ratio"])
        )
        progress.update(1)
        if p["neurons"]:
            result["neurons"] = neurons(session, setup, clean, k, tag, rec, progress)
        rec["metrics"]["clean_metric"] = clean
        session.write_json(f"{tag}.json", result)
        rec["outputs"].append(f"artifacts/{tag}.json")
    progress.done()
    return result


def neurons(
    session: Session, setup: Setup, clean: float, k: int, tag: str, rec: dict, progress: Progress
) -> dict:
    """Attribution for every MLP neuron; the top-k checked by exact single-neuron patching."""
    progress.task("neuron attribution", 1)
    ref = setup.reference("mlp.hook_post")
    t0 = time.perf_counter()
    mat = attribution(setup, "mlp.hook_post", ref)
    seconds = time.perf_counter() - t0
    progress.update(1)
    top = top_units(mat, k)
    progress.task(f"exact check of the top {k} neurons", 1)
    exact = neuron_ablation(setup, ref, clean, [(t["layer"], t["unit"]) for t in top])
    progress.update(1)
    for t, e in zip(top, exact, strict=True):
        t["exact"] = e
    session.save_arrays(
        f"{tag}-neurons.safetensors",
        {"attribution": mat.astype(np.float32)},
        FileMeta(model=setup.model.name, layers=(setup.layer,)).with_extra(
            step=tag, metric=setup.metric
        ),
    )
    rec["outputs"].append(f"artifacts/{tag}-neurons.safetensors")
    rec["metrics"]["neurons/top_effect"] = top[0]["effect"]
    return {
        "shape": list(mat.shape),
        "top": top,
        "seconds": seconds,
        "spearman_top_exact": spearman(np.array([t["effect"] for t in top]), np.array(exact)),
    }


def verify(setup: Setup, attr: np.ndarray, ref, clean: float, p: dict, progress) -> dict:
    """Exact ablation of just the top-k heads by |attribution|: the cheap check of the heads
    that matter (only their layers are ablated, each in one batched pass)."""
    k = int(p["verify"])
    flat = np.nan_to_num(np.abs(attr), nan=-1.0).ravel()
    order = [int(i) for i in np.argsort(-flat)[:k] if flat[i] >= 0]
    units = [tuple(int(v) for v in np.unravel_index(i, attr.shape)) for i in order]
    t0 = time.perf_counter()
    exact = head_ablation(setup, ref, clean, progress, sorted({L for L, _ in units}))
    a = np.array([attr[L, h] for L, h in units])
    e = np.array([exact[L, h] for L, h in units])
    return {
        "heads": [{"layer": L, "unit": h} for L, h in units],
        "attribution": a.tolist(),
        "exact": e.tolist(),
        "spearman": spearman(a, e),
        "sign_agreement": float(np.mean(np.sign(a) == np.sign(e))),
        "seconds": time.perf_counter() - t0,
    }
