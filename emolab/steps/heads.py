"""Head (and MLP neuron) maps: which components write an emotion, by three methods.

All answer one question: how much does the metric fall when a head's output
(`blocks.L.attn.hook_z`, every position but the attention sink) is replaced by its mean
over neutral reference texts? (The estimators live in `head_maps.py`.)

- `ablation` measures it exactly: one patched forward pass per head, the heads of a layer
  batched together.
- `attribution` estimates it to first order (attribution patching): one forward and one
  backward pass give dmetric/dz for every head at once.
- `checked` is attribution whose least trustworthy heads are re-ablated exactly: the
  first-order estimate misorders the heads far below the readout (their patch passes
  through many non-linear layers), and a few exact patches fix the heads that matter
  while the map stays >= 20x cheaper than exact ablation.

With `enhance` every unit is also ranked by what multiplying its output by that factor
does (the `enhance` intervention of circuit modulation): first order for all, exact for the
top-k. Under the projection metric that is the unit's effect on the emotion readout, the
number that says whether scaling a circuit can move the model at all.

The metric is either the projection of the last-position residual on the session's
emotion direction at the readout layer (`projection`; heads above that layer cannot
affect it and are left NaN), or the emotion label's logit minus the mean logit of the
other labels under the list prompt (`label_logit`).
"""

from __future__ import annotations

import time

import numpy as np

from ..data import list_prompt
from ..errors import BadInput
from ..metadata import FileMeta
from ..params import Param, defaults, validate
from ..progress import Progress
from ..runner import label_token_ids
from ..session import Session
from . import head_maps as hm
from .common import configured, emotion_vector, guarded, plugin_versions, session_model
from .head_attention import attention_flags

METHODS = ("attribution", "checked", "ablation")
ESTIMATES = ("attribution", "checked")  # compared with `ablation` under --compare
METRICS = ("projection", "label_logit")
CHECK_SHARE = 60  # default: one exact re-ablation per this many heads up to the readout
PARAMS = (
    Param("emotion", str, None, "whose direction the heads write"),
    Param(
        "method",
        str,
        "attribution",
        "attribution (one backward pass), checked (attribution + a few exact heads) "
        "or ablation (exact)",
        METHODS,
    ),
    Param("compare", bool, False, "run every method and compare the estimates with ablation"),
    Param("metric", str, "projection", "what a head moves", METRICS),
    Param("layer", int, None, "read layer (default: the steering layer)", min=0),
    Param("n_texts", int, 8, "emotion texts averaged over", min=1),
    Param(
        "checks",
        int,
        None,
        f"heads re-ablated exactly by the checked method (default: 1 per {CHECK_SHARE} heads)",
        min=1,
    ),
    Param("neurons", bool, False, "rank MLP neurons too"),
    Param("enhance", float, None, "also rank units by multiplying them by this factor", min=0.0),
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


def prepare(session: Session, p: dict) -> hm.Setup:
    """The model, the emotion's texts, the reference texts and the metric for a head map."""
    from .shared import default_layer

    if not p.get("emotion"):
        raise BadInput("heads needs an emotion")
    if p["method"] not in METHODS:
        raise BadInput(f"unknown method '{p['method']}' (known: {', '.join(METHODS)})")
    if p["metric"] not in METRICS:
        raise BadInput(f"unknown metric '{p['metric']}' (known: {', '.join(METRICS)})")
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
    return hm.Setup(model, texts, refs, p["metric"], layer, unit, label_ids, int(p["batch_size"]))


def default_checks(setup: hm.Setup) -> int:
    """One exact head per CHECK_SHARE heads up to the readout. The two first-order passes
    cost about five single-head ablations; with three checks for SmolLM2's 189 heads the
    checked map costs about 1/23 of exact ablation (README, heads section)."""
    return max(1, (setup.last_layer + 1) * setup.model.n_heads // CHECK_SHARE)


def head_map(
    method: str, setup: hm.Setup, ref: np.ndarray, clean: float, checks: int, progress: Progress
) -> tuple[np.ndarray, dict]:
    """One method's `[layers up to the readout, heads]` map and what it records beside it."""
    if method == "attribution":
        progress.task("attribution patching (1 forward + 1 backward)", 1)
        mat = hm.attribution(setup, hm.HEADS, ref)
        progress.update(1)
        return mat, {}
    if method == "checked":
        progress.task(f"attribution, then {checks} heads checked exactly", 1)
        mat, units = hm.checked_attribution(setup, ref, clean, checks)
        progress.update(1)
        return mat, {"checked": [{"layer": L, "unit": h} for L, h in units]}
    return hm.head_ablation(setup, ref, clean, progress), {}


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
    checks = default_checks(setup) if p["checks"] is None else int(p["checks"])
    p["checks"] = checks
    used = plugin_versions("interventions", ["enhance"]) if p["enhance"] is not None else None
    with session.step("heads", p, used) as rec:
        progress.task("clean pass and reference means", 1)
        clean = setup.clean()
        ref_z = setup.reference(hm.HEADS)
        progress.update(1)
        maps, seconds, extra = {}, {}, {}
        full = np.full((model.n_layers, model.n_heads), np.nan)
        for m in wanted:
            t0 = time.perf_counter()
            mat, extra[m] = head_map(m, setup, ref_z, clean, checks, progress)
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
            result["maps"][m] = {"matrix": mat.tolist(), "top": hm.top_units(mat, k), **extra[m]}
            session.write_artifact(f"{tag}-{m}.csv", hm.matrix_csv(mat))
            rec["outputs"].append(f"artifacts/{tag}-{m}.csv")
            rec["metrics"][f"{m}/top_effect"] = result["maps"][m]["top"][0]["effect"]
        if int(p["verify"]) > 0 and "attribution" in maps:
            result["verify"] = verify(setup, maps["attribution"], ref_z, clean, p, progress)
            rec["metrics"]["verify_spearman"] = result["verify"]["spearman"]
        if p["compare"]:
            result["compare"] = compare_all(maps, seconds, k)
            for m, c in result["compare"].items():
                pre = "" if m == "attribution" else f"{m}/"  # attribution keeps its old names
                rec["metrics"][f"{pre}spearman_all"] = c["spearman_all"]
                rec["metrics"][f"{pre}spearman_top"] = c["spearman_top"]
        if p["enhance"] is not None:
            factor = float(p["enhance"])
            result["enhance"] = enhancement(setup, hm.HEADS, clean, factor, k)
            result["enhance"]["circuit"] = circuit_readout(setup, maps, clean, factor, k)
            rec["metrics"]["enhance/top_effect"] = result["enhance"]["top"][0]["exact"]
            rec["metrics"]["enhance/circuit_shift"] = result["enhance"]["circuit"]["joint"]
        progress.task("attention to comma / summary positions", 1)
        result["attention"] = attention_flags(
            model, raw_texts, float(p["flag_mass"]), float(p["flag_ratio"])
        )
        progress.update(1)
        if p["neurons"]:
            result["neurons"] = neurons(session, setup, clean, p, tag, rec, progress)
        rec["metrics"]["clean_metric"] = clean
        session.write_json(f"{tag}.json", result)
        rec["outputs"].append(f"artifacts/{tag}.json")
    progress.done()
    return result


def compare_all(maps: dict, seconds: dict, k: int) -> dict:
    """Each estimate against the exact map: rank agreement and how much faster it was."""
    out = {}
    for m in ESTIMATES:
        c = hm.compare(maps[m][: len(maps["ablation"])], maps["ablation"], k)
        c["speedup"] = seconds["ablation"] / max(seconds[m], 1e-9)
        out[m] = c
    return out


def enhancement(setup: hm.Setup, point: str, clean: float, factor: float, k: int) -> dict:
    """Every unit's first-order effect of being multiplied by `factor`, the top-k by its
    size measured exactly: `[layers, units]` estimate and the checked list."""
    ref = setup.reference(point)
    _, slope = hm.linear_effects(setup, point, ref)
    estimate = (factor - 1.0) * slope
    top = hm.top_units(estimate, k)
    exact = hm.exact_effects(
        setup, point, [(t["layer"], t["unit"]) for t in top], clean, factor=factor
    )
    for t, e in zip(top, exact, strict=True):
        t["exact"] = float(e)
    return {
        "factor": factor,
        "estimate": estimate.tolist(),
        "top": top,
        "spearman_top_exact": hm.spearman(np.array([t["effect"] for t in top]), exact),
    }


def circuit_readout(
    setup: hm.Setup, maps: dict, clean: float, factor: float, k: int, point: str = hm.HEADS
) -> dict:
    """What circuit modulation can do to the readout where steering needs it: the top-k
    units (heads, or MLP neurons for `point` = NEURONS) by positive effect, as `steer
    --circuit` picks them (heads: from the exact map when there is one), multiplied by
    `factor` through the `enhance` intervention, one at a time and together, on the neutral
    reference texts, beside the gap between the emotion texts' and the neutral texts'
    readout that a steering push has to close."""
    import torch

    from .shared import circuit_order

    name = next(m for m in ("ablation", "checked", "attribution", *maps) if m in maps)
    kind = "heads" if point == hm.HEADS else "neurons"
    shape = maps[name].shape
    units = [
        tuple(int(v) for v in np.unravel_index(i, shape)) for i in circuit_order(maps[name], k)
    ]
    neutral = setup.on(setup.ref_texts)
    base = neutral.clean()
    out = {
        "map": name,
        "kind": kind,
        "factor": factor,
        "texts": "neutral reference",
        "gap": clean - base,
    }
    if not units:
        return {**out, "units": "", "per_unit": [], "joint": 0.0}
    spec = ",".join(f"{L}.{h}" for L, h in units)
    inter = configured("interventions", "enhance", {kind: spec, "factor": factor}, {})
    hooks = guarded("interventions", inter, "hooks", neutral.model)
    with torch.no_grad():
        vals = [neutral.forward(ids, mask, hooks) for ids, mask in neutral.batches(neutral.texts)]
    single = hm.exact_effects(neutral, point, units, base, factor=factor)
    return {
        **out,
        "units": spec,
        "per_unit": [
            {"layer": L, "unit": h, "exact": float(e)}
            for (L, h), e in zip(units, single, strict=True)
        ],
        "joint": float(torch.cat(vals).mean()) - base,
    }


def neurons(
    session: Session, setup: hm.Setup, clean: float, p: dict, tag: str, rec: dict, progress
) -> dict:
    """Attribution for every MLP neuron; the top-k checked by exact single-neuron patching
    (batched, one copy of the texts per neuron); with `enhance`, ranked by enhancement too,
    and the neuron circuit `steer --circuit-kind neurons` would scale read out on neutral
    texts, as the head circuit is."""
    from .shared import with_exact

    k = int(p["top_k"])
    progress.task("neuron attribution", 1)
    ref = setup.reference(hm.NEURONS)
    t0 = time.perf_counter()
    mat = hm.attribution(setup, hm.NEURONS, ref)
    seconds = time.perf_counter() - t0
    progress.update(1)
    top = hm.top_units(mat, k)
    progress.task(f"exact check of the top {k} neurons", 1)
    exact = hm.exact_effects(setup, hm.NEURONS, [(t["layer"], t["unit"]) for t in top], clean, ref)
    progress.update(1)
    for t, e in zip(top, exact, strict=True):
        t["exact"] = float(e)
    arrays = {"attribution": mat.astype(np.float32)}
    out = {
        "shape": list(mat.shape),
        "top": top,
        "seconds": seconds,
        "spearman_top_exact": hm.spearman(np.array([t["effect"] for t in top]), exact),
    }
    if p["enhance"] is not None:
        progress.task("neuron enhancement", 1)
        out["enhance"] = enhancement(setup, hm.NEURONS, clean, float(p["enhance"]), k)
        arrays["enhancement"] = np.asarray(out["enhance"].pop("estimate"), dtype=np.float32)
        progress.update(1)
        progress.task(f"neuron circuit (top {k}) on neutral texts", 1)
        checked = {"attribution, top checked exactly": with_exact(mat, top)}
        out["enhance"]["circuit"] = circuit_readout(
            setup, checked, clean, float(p["enhance"]), k, hm.NEURONS
        )
        rec["metrics"]["neurons/enhance/circuit_shift"] = out["enhance"]["circuit"]["joint"]
        progress.update(1)
    session.save_arrays(
        f"{tag}-neurons.safetensors",
        arrays,
        FileMeta(model=setup.model.name, layers=(setup.layer,)).with_extra(
            step=tag, metric=setup.metric
        ),
    )
    rec["outputs"].append(f"artifacts/{tag}-neurons.safetensors")
    rec["metrics"]["neurons/top_effect"] = top[0]["effect"]
    return out


def verify(setup: hm.Setup, attr: np.ndarray, ref, clean: float, p: dict, progress) -> dict:
    """Exact ablation of just the top-k heads by |attribution|: the cheap check of the heads
    that matter (batched across layers, one copy of the texts per head)."""
    k = int(p["verify"])
    flat = np.nan_to_num(np.abs(attr), nan=-1.0).ravel()
    order = [int(i) for i in np.argsort(-flat)[:k] if flat[i] >= 0]
    units = [tuple(int(v) for v in np.unravel_index(i, attr.shape)) for i in order]
    t0 = time.perf_counter()
    progress.task(f"exact check of the top {len(units)} heads", 1)
    e = hm.exact_effects(setup, hm.HEADS, units, clean, ref=ref)
    progress.update(1)
    a = np.array([attr[L, h] for L, h in units])
    return {
        "heads": [{"layer": L, "unit": h} for L, h in units],
        "attribution": a.tolist(),
        "exact": e.tolist(),
        "spearman": hm.spearman(a, e),
        "sign_agreement": float(np.mean(np.sign(a) == np.sign(e))),
        "seconds": time.perf_counter() - t0,
    }
