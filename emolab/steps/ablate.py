"""Ablation experiments: what carries the signal, measured against a matched control.

- comma: sentiment accuracy on the Tigges review template ("... Conclusion: This movie is"
  -> positive vs negative adjective logits) with no ablation, with comma positions ablated,
  and with as many random non-comma positions ablated (several seeds): the summarization
  motif predicts the comma ablation costs more than the random one.
- patch: the sentiment direction (mean difference positive - negative on the template's
  train split) patched from positive reviews into negative test reviews and back; the
  flip rate of the logit-difference sign, against a random direction.
- direction: the model's own label readout (list prompt) on each emotion's held-out texts
  with that emotion's direction projected out, vs a random direction.
- head: given heads zero-ablated; change of each emotion's projection (last token, at the
  steering layer) and of its label logit.
"""

from __future__ import annotations

import numpy as np

from .. import plugins
from ..api import Run
from ..data import list_prompt
from ..errors import BadInput
from ..params import Param, defaults, validate
from ..progress import Progress
from ..runner import label_token_ids, last_logits
from ..session import Session
from ..units import parse_heads, parse_layers
from .common import configured, emotion_vector, guarded, plugin_versions, session_model

# each experiment and the registered intervention it applies by default
INTERVENTION = {
    "comma": "comma_zeroing",
    "patch": "directional_patch",
    "direction": "directional_ablation",
    "head": "head_ablation",
}
KINDS = tuple(INTERVENTION)
PARAMS = (
    Param(
        "kind",
        str,
        "comma",
        "which experiment (or its intervention's name)",
        KINDS + tuple(INTERVENTION.values()),
    ),
    Param("layers", (str, list), "all", "layers ablated", item=int),
    Param("mode", str, "zero", "zero or mean ablation", ("zero", "mean")),
    Param("control_seeds", int, 3, "random-position controls", min=0),
    Param("heads", str, None, "L.H,... heads (kind=head)"),
    Param("layer", int, None, "layer read (default: the steering layer)", min=0),
    Param("limit", int, 30, "texts per class", min=1),
    Param("positive", str, "good,great,amazing,wonderful,perfect", "positive words"),
    Param("negative", str, "bad,terrible,awful,horrible,disgusting", "negative words"),
    Param("seed", int, 0),
    Param("method", str, None, "which vector set of the session"),
    Param("intervention", str, None, "a registered intervention in place of the kind's own"),
    Param("intervention_params", dict, {}, "extra parameters for that intervention"),
)
DEFAULTS = defaults(PARAMS)


def _reviews(split: str):
    src = plugins.get("datasets", "tigges-reviews")
    exs = src.load("tigges-reviews", split)
    return [e.text for e in exs], np.array([e.label == "positive" for e in exs])


def _logit_diff(model, texts, hooks, a: str, b: str) -> np.ndarray:
    ev = plugins.get("evaluators", "logit_diff", a=a, b=b)
    return np.asarray(ev.per_prompt(Run(model, texts), hooks))


def _hooks(p: dict, model, **kw):
    """Hooks of the experiment's intervention: the keywords it declares set it (then the
    user's `intervention_params`), the rest go to `hooks` as context (vector, texts...)."""
    declared = {q.name for q in plugins.get("interventions", p["intervention"]).params}
    own = {k: v for k, v in kw.items() if k in declared}
    context = {k: v for k, v in kw.items() if k not in declared}
    inter = configured("interventions", p["intervention"], own, p["intervention_params"])
    return guarded("interventions", inter, "hooks", model, **context)


def comma(model, p: dict, progress: Progress) -> tuple[dict, dict]:
    texts, pos = _reviews("test")
    seeds = list(range(int(p["control_seeds"])))
    progress.task(f"comma ablation on {len(texts)} reviews", 2 + len(seeds))
    conds = {"none": []}
    conds["commas"] = _hooks(p, model, layers=p["layers"], mode=p["mode"], mean_texts=texts)
    for s in seeds:
        conds[f"random#{s}"] = _hooks(
            p,
            model,
            layers=p["layers"],
            mode=p["mode"],
            control=True,
            seed=s,
            mean_texts=texts,
        )
    acc = {}
    for i, (name, hooks) in enumerate(conds.items()):
        progress.check()
        ld = _logit_diff(model, texts, hooks, p["positive"], p["negative"])
        acc[name] = {
            "accuracy": float(((ld > 0) == pos).mean()),
            "logit_diff_correct": float(np.where(pos, ld, -ld).mean()),
        }
        progress.update(i + 1)
    rand = [acc[f"random#{s}"] for s in seeds]
    summary = {
        "accuracy_none": acc["none"]["accuracy"],
        "accuracy_commas": acc["commas"]["accuracy"],
        "accuracy_random": float(np.mean([r["accuracy"] for r in rand])) if rand else np.nan,
        "logit_diff_none": acc["none"]["logit_diff_correct"],
        "logit_diff_commas": acc["commas"]["logit_diff_correct"],
        "logit_diff_random": float(np.mean([r["logit_diff_correct"] for r in rand]))
        if rand
        else np.nan,
    }
    return summary, {"conditions": acc, "n_texts": len(texts)}


def patch(model, p: dict, progress: Progress) -> tuple[dict, dict]:
    from ..capture import capture, resid_hooks

    layers = parse_layers(p["layers"], model.n_layers)
    train, ytr = _reviews("train")
    test, yte = _reviews("test")
    progress.task("sentiment direction from the template's train split", 1)
    acts = capture(model, train, resid_hooks(model, layers), "mean")
    direction = np.full((model.n_layers, model.d_model), np.nan, dtype=np.float32)
    direction[layers] = acts[ytr].mean(0) - acts[~ytr].mean(0)
    rng = np.random.default_rng(p["seed"])
    random = rng.normal(size=direction.shape).astype(np.float32)
    pos_t, neg_t = (
        [t for t, y in zip(test, yte, strict=True) if y],
        [t for t, y in zip(test, yte, strict=True) if not y],
    )
    out, detail = {}, {}
    runs = [("sentiment", direction), ("random", random)]
    progress.task("directional patching", 2 * len(runs))
    done = 0
    for name, vec in runs:
        for src, dst, label in ((pos_t, neg_t, "pos_into_neg"), (neg_t, pos_t, "neg_into_pos")):
            progress.check()
            hooks = _hooks(
                p,
                model,
                layers=",".join(map(str, layers)),
                vector=vec,
                source_texts=src,
            )
            base = _logit_diff(model, dst, [], p["positive"], p["negative"])
            steered = _logit_diff(model, dst, hooks, p["positive"], p["negative"])
            flips = float((np.sign(base) != np.sign(steered)).mean())
            out[f"flip_rate_{label}/{name}"] = flips
            detail[f"{name}/{label}"] = {
                "flip_rate": flips,
                "logit_diff_before": float(base.mean()),
                "logit_diff_after": float(steered.mean()),
            }
            done += 1
            progress.update(done)
    for name, _ in runs:
        out[f"flip_rate/{name}"] = (
            out[f"flip_rate_pos_into_neg/{name}"] + out[f"flip_rate_neg_into_pos/{name}"]
        ) / 2
    return out, {"conditions": detail, "n_texts": len(test), "layers": layers}


def _test_texts(session: Session, emotions, limit: int) -> dict[str, list[str]]:
    ex = session.read_json("examples.json")["test"]
    out = {e: [t for lab, t in ex if lab == e][:limit] for e in emotions}
    for e, texts in out.items():
        if not texts:
            raise BadInput(f"no held-out '{e}' texts in this session")
    return out


def direction(session: Session, model, p: dict, progress: Progress) -> tuple[dict, dict]:
    vectors, meta = session.load_vectors(p["method"])
    emotions = list(meta.emotions)
    labels = [*emotions, meta.baseline]
    layers = parse_layers(p["layers"], model.n_layers)
    texts = _test_texts(session, emotions, p["limit"])
    ids = label_token_ids(model, labels)
    cols = [ids[lab] for lab in labels]
    rng = np.random.default_rng(p["seed"])
    out, detail = {}, {}
    progress.task("directional ablation", len(emotions))
    for i, emo in enumerate(emotions):
        progress.check()
        v = emotion_vector(vectors, emo, model.n_layers)
        lay = [la for la in layers if np.isfinite(v[la]).all()]
        prompts = [list_prompt(t, labels) for t in texts[emo]]
        k = labels.index(emo)
        row = {}
        for cond, vec in (
            ("none", None),
            ("emotion", v),
            ("random", rng.normal(size=v.shape).astype(np.float32)),
        ):
            hooks = (
                [] if vec is None else _hooks(p, model, layers=",".join(map(str, lay)), vector=vec)
            )
            logits = last_logits(model, prompts, hooks)[:, cols]
            row[cond] = {
                "accuracy": float((logits.argmax(1) == k).mean()),
                "label_margin": float((logits[:, k] - np.delete(logits, k, 1).mean(1)).mean()),
            }
            out[f"accuracy_{cond}/{emo}"] = row[cond]["accuracy"]
            out[f"label_margin_{cond}/{emo}"] = row[cond]["label_margin"]
        detail[emo] = row
        progress.update(i + 1)
    for cond in ("none", "emotion", "random"):
        out[f"accuracy_{cond}"] = float(np.mean([detail[e][cond]["accuracy"] for e in emotions]))
        out[f"label_margin_{cond}"] = float(
            np.mean([detail[e][cond]["label_margin"] for e in emotions])
        )
    return out, {"emotions": detail, "layers": layers}


def head(session: Session, model, p: dict, progress: Progress) -> tuple[dict, dict]:
    from .shared import default_layer

    if not p["heads"]:
        raise BadInput("--kind head needs --heads L.H,... (e.g. 12.3,14.0)")
    hooks = _hooks(p, model, heads=p["heads"], mode="zero")
    vectors, meta = session.load_vectors(p["method"])
    emotions = list(meta.emotions)
    labels = [*emotions, meta.baseline]
    layer = int(p["layer"]) if p["layer"] is not None else default_layer(session)
    parse_layers([layer], model.n_layers)
    texts = _test_texts(session, emotions, p["limit"])
    ids = label_token_ids(model, labels)
    cols = [ids[lab] for lab in labels]
    out, detail = {}, {}
    progress.task(f"ablating {p['heads']}", len(emotions))
    for i, emo in enumerate(emotions):
        progress.check()
        v = emotion_vector(vectors, emo, model.n_layers)[layer]
        if not np.isfinite(v).all():
            raise BadInput(f"no '{emo}' vector at layer {layer}")
        u = v / np.linalg.norm(v)
        proj = {
            c: float((_last_resid(model, texts[emo], layer, h) @ u).mean())
            for c, h in (("clean", []), ("ablated", hooks))
        }
        prompts = [list_prompt(t, labels) for t in texts[emo]]
        k = labels.index(emo)
        logit = {
            c: float(last_logits(model, prompts, h)[:, cols][:, k].mean())
            for c, h in (("clean", []), ("ablated", hooks))
        }
        detail[emo] = {"projection": proj, "label_logit": logit}
        out[f"projection_change/{emo}"] = proj["ablated"] - proj["clean"]
        out[f"label_logit_change/{emo}"] = logit["ablated"] - logit["clean"]
        progress.update(i + 1)
    return out, {"emotions": detail, "layer": layer, "heads": p["heads"]}


def _last_resid(model, texts, layer: int, hooks) -> np.ndarray:
    """Last-token residual after block `layer` with `hooks` active."""
    import torch

    from ..api import HookContext
    from ..hooks import apply_hooks

    store = {}

    def keep(act, ctx):
        store["a"] = act.detach()

    out = []
    for start in range(0, len(texts), 16):
        ids, mask = model.encode(texts[start : start + 16], "right")
        ctx = HookContext(name="", attention_mask=mask, extra={"input_ids": ids})
        with (
            apply_hooks(model, [*hooks, (f"blocks.{layer}.hook_resid_post", keep)], ctx),
            torch.no_grad(),
        ):
            model.hf(input_ids=ids, attention_mask=mask, use_cache=False)
        last = mask.sum(1) - 1
        out.append(store["a"][torch.arange(len(last)), last].float().cpu().numpy())
    return np.concatenate(out)


def run(session: Session, params: dict, progress: Progress | None = None) -> dict:
    progress = progress or Progress()
    p = validate(PARAMS, params, "ablate")
    if isinstance(p["layers"], list):
        p["layers"] = ",".join(map(str, p["layers"]))
    p["kind"] = next((k for k, v in INTERVENTION.items() if v == p["kind"]), p["kind"])
    p["intervention"] = p["intervention"] or INTERVENTION[p["kind"]]
    configured("interventions", p["intervention"], {}, p["intervention_params"])
    if p["kind"] == "head":  # a bad head fails before any work
        if not p["heads"]:
            raise BadInput("--kind head needs --heads L.H,... (e.g. 12.3,14.0)")
        m = session.manifest["model"]
        parse_heads(p["heads"], int(m["layers"]), int(m["heads"]))
    model = session_model(session)
    names = [p["intervention"]]
    used = {
        **plugin_versions("interventions", names),
        **plugin_versions("evaluators", ["logit_diff"]),
    }
    with session.step("ablate", p, used) as rec:
        if p["kind"] == "comma":
            metrics, detail = comma(model, p, progress)
        elif p["kind"] == "patch":
            metrics, detail = patch(model, p, progress)
        elif p["kind"] == "direction":
            metrics, detail = direction(session, model, p, progress)
        else:
            metrics, detail = head(session, model, p, progress)
        seq = rec["seq"]
        name = f"ablate-{p['kind']}-{seq:03d}.json"
        session.write_json(name, {"params": p, "metrics": metrics, **detail})
        rec["outputs"] = [f"artifacts/{name}"]
        rec["metrics"] = metrics
    progress.done()
    return {"params": p, "metrics": metrics, **detail}
