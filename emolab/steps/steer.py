"""Steering: generate from neutral prompts with and without h + alpha*v, and judge both."""

from __future__ import annotations

import json

import numpy as np

from .. import plugins
from ..api import Run
from ..classifier import JUDGES
from ..data import NEUTRAL_PROMPTS
from ..errors import BadInput
from ..params import Param, defaults, validate
from ..progress import Progress
from ..runner import generate
from ..session import Session, check_width
from .common import configured, emotion_vector, guarded, plugin_versions, session_model
from .shared import CIRCUIT_KINDS, STEERING_PARAMS, circuit_units
from .sweep_cells import span_params

PARAMS = (
    Param("emotion", str, None, "which emotion's vector to add"),
    Param("layer", int, None, "block whose output is steered (default: the dev-chosen one)", min=0),
    Param("alpha", float, None, "strength (default: the session's dev-chosen alpha)"),
    Param(
        "span",
        int,
        None,
        "steer layers L..L+span-1, alpha split over them (default: the sweep's dev choice, 1)",
        min=1,
    ),
    *STEERING_PARAMS,
    Param("prompts", list, list(NEUTRAL_PROMPTS[:4]), "prompts to continue", item=str),
    Param("max_new_tokens", int, 24, "tokens generated per prompt", min=1),
    Param("evaluators", list, ["label_logit_shift"], "registered evaluators", item=str),
    Param("circuit", int, None, "enhance the emotion's top-k heads or neurons (latest map)", min=1),
    Param("circuit_factor", float, 2.0, "multiplier for the circuit units"),
    Param("circuit_kind", str, "heads", "which units --circuit scales", CIRCUIT_KINDS),
    Param("intervention", str, None, "a registered intervention (default: residual_add)"),
    Param("intervention_params", dict, {}, "that intervention's own parameters"),
    Param(
        "success",
        bool,
        False,
        "success rate beside the unsteered text and a same-size random direction (a random "
        "circuit of as many units with --circuit) (judge)",
    ),
    Param("judge", str, "ensemble", "the classifier's judge", JUDGES),
    Param("judge_train_limit", int, 16000, "MiniLM head training texts", min=1),
)
DEFAULTS = defaults(PARAMS)
FALLBACK_ALPHA = 0.3


_BASELINES: dict[tuple, list[str]] = {}


def baseline_texts(model, prompts: list[str], max_new_tokens: int, progress: Progress) -> list[str]:
    """Unsteered generations, remembered per process: greedy, so reuse changes nothing."""
    key = (model.name, model.device, tuple(prompts), max_new_tokens)
    if key not in _BASELINES:
        _BASELINES[key] = generate(
            model,
            prompts,
            (),
            max_new_tokens,
            check=progress.check,
            on_batch=lambda s, b: progress.update(s + len(b)),
            on_text=lambda i, t: progress.text("baseline", i, t),
        )
    else:
        for i, t in enumerate(_BASELINES[key]):
            progress.text("baseline", i, t)
    return _BASELINES[key]


def vectors_for(
    session: Session, method: str | None, vector_file: str | None, emotion: str | None = None
):
    """The vector set to steer with: the session's (a method's) or a vector file in any
    format emolab exports (safetensors, llama.cpp / repeng GGUF, a {layer: tensor} .pt),
    refused with the model it was made for when it does not fit this session's model. A
    file that names no emotion (another tool's) is taken as `emotion`'s."""
    if vector_file:
        from .. import vector_io

        vectors, meta = vector_io.read(vector_file, emotion)
        m = session.manifest["model"]
        vector_io.check_model(
            vectors, meta, vector_file, session.model_name, int(m["d_model"]), int(m["layers"])
        )
        return vectors, meta
    return session.load_vectors(method)


def default_setting(session: Session, emotion: str, method: str | None = None) -> dict:
    """Layer, alpha and span to steer with when none is given, and what chose them: the
    latest sweep's best cell for the emotion (chosen on its dev prompts), else the latest
    layer analysis's peak (chosen on the dev texts) with alpha 0.3, else two thirds of the
    depth. Read from the log's recorded choices, so a test split never picks a setting here."""
    method = method or (session.methods() or [None])[0]
    for ev in reversed(session.steps()):
        if ev.get("status") != "ok":
            continue
        choices = ev.get("choices") or {}
        if ev["kind"] == "sweep":
            swept = (ev.get("params") or {}).get("method")
            # a sweep over several methods keeps each one's cells under '<method>/'
            pre = f"{method}/" if isinstance(swept, list) and method in swept else ""
            if (pre or swept in (None, method)) and f"best_cell/{pre}{emotion}" in choices:
                layer, alpha = choices[f"best_cell/{pre}{emotion}"]["value"]
                span = choices.get(f"best_span/{pre}{emotion}", {}).get("value", 1)
                return {
                    "layer": int(layer),
                    "alpha": float(alpha),
                    "span": int(span),
                    "chosen_on": "sweep, " + choices[f"best_cell/{pre}{emotion}"]["chosen_on"],
                }
        if ev["kind"] == "layers" and not (ev.get("params") or {}).get("dataset"):
            c = choices.get(f"peak_layer/{method}")
            if c is not None:
                return {
                    "layer": int(c["value"]),
                    "alpha": FALLBACK_ALPHA,
                    "span": 1,
                    "chosen_on": "layers, " + c["chosen_on"],
                }
    return {
        "layer": int(session.manifest["model"]["layers"] * 2 // 3),
        "alpha": FALLBACK_ALPHA,
        "span": 1,
        "chosen_on": "default (no layers or sweep step yet)",
    }


def run(session: Session, params: dict, progress: Progress | None = None) -> dict:
    progress = progress or Progress()
    p = validate(PARAMS, params, "steer")
    if not p["emotion"]:
        raise BadInput("steer needs an emotion")
    prompts = [str(x) for x in p["prompts"]]
    if not prompts or any(not x.strip() for x in prompts):
        raise BadInput("empty prompt")
    setting = default_setting(session, p["emotion"], p["method"])
    choices = {}
    if p["span"] is None and p["layer"] is not None:  # a given layer is steered alone
        setting = {**setting, "span": 1}
    for k in ("layer", "alpha", "span"):
        if p[k] is None:
            p[k] = setting[k]
            choices[k] = {"value": setting[k], "chosen_on": setting["chosen_on"]}
    circuit_info = None
    if p["circuit"] is not None:
        kind = p["circuit_kind"]
        spec, circuit_info = circuit_units(session, p["emotion"], int(p["circuit"]), kind)
        own = {kind: spec, "factor": p["circuit_factor"], "positions": p["positions"]}
    else:  # one layer, or a layer range as the sweep steers it
        own = span_params(p["layer"], p["span"], p["alpha"], p["scale"], p["positions"])
    p["intervention"] = p["intervention"] or ("residual_add" if p["circuit"] is None else "enhance")
    if p["circuit"] is None and p["span"] > 1:
        declared = {
            q.name for q in plugins.registry().get("interventions", p["intervention"]).params
        }
        if not {"to_layer", "spread"} <= declared:
            raise BadInput(f"intervention '{p['intervention']}' cannot steer a layer range")
    inter = configured("interventions", p["intervention"], own, p["intervention_params"])
    reg = plugins.registry()
    evaluators = [reg.get("evaluators", name) for name in p["evaluators"]]
    model = session_model(session)
    vectors, meta = vectors_for(session, p["method"], p["vector_file"], p["emotion"])
    emotions = list(meta.emotions) or sorted({k.split("/", 1)[0] for k in vectors})
    vec = emotion_vector(vectors, p["emotion"], model.n_layers)
    check_width(vec, model.d_model, "steering vector")
    if not 0 <= int(p["layer"]) < model.n_layers:
        raise BadInput(
            f"layer {p['layer']} out of range: the model has layers 0-{model.n_layers - 1}"
        )
    last = int(p["layer"]) + (int(p["span"]) - 1 if p["circuit"] is None else 0)
    if last >= model.n_layers:
        raise BadInput(f"span {p['span']} from layer {p['layer']} runs past the last layer")
    for layer in range(int(p["layer"]), last + 1):
        if not np.isfinite(vec[layer]).all():
            raise BadInput(f"no '{p['emotion']}' vector at layer {layer} in this vector set")
    norms = np.asarray(session.read_json("layer_norms.json")["mean_resid_norm"])
    hooks = guarded("interventions", inter, "hooks", model, vector=vec, norms=norms)
    used = {
        **plugin_versions("interventions", [p["intervention"]]),
        **plugin_versions("evaluators", p["evaluators"]),
    }
    judge = ppl = None
    if p["success"]:
        judge = reg.get(
            "evaluators", "classifier", judge=p["judge"], train_limit=p["judge_train_limit"]
        )
        ppl = reg.get("evaluators", "perplexity_ratio")
        used.update(plugin_versions("evaluators", ["classifier", "perplexity_ratio"]))
    # defaults stay None in the log: a replay re-makes (and checks) the choice
    logged = {**p, **{k: None for k in choices}}
    with session.step("steer", logged, used) as rec:
        rec["choices"] = choices
        if p["vector_file"]:
            session.add_input(rec, "vector_file", p["vector_file"])
        progress.task("generate baseline", len(prompts))
        base = baseline_texts(model, prompts, p["max_new_tokens"], progress)
        progress.task(
            f"generate steered ({p['emotion']}, L{p['layer']}, a={p['alpha']})", len(prompts)
        )
        steered = generate(
            model,
            prompts,
            hooks,
            p["max_new_tokens"],
            check=progress.check,
            on_batch=lambda s, b: progress.update(s + len(b)),
            on_text=lambda i, t: progress.text("steered", i, t),
        )
        run_ = Run(model, prompts, base, steered, hooks, emotions, p["emotion"])
        metrics: dict[str, float] = {}
        progress.task("evaluate", len(evaluators))
        for i, ev in enumerate(evaluators):
            progress.check()
            metrics.update(guarded("evaluators", ev, "evaluate", run_))
            progress.update(i + 1)
        random_texts = None
        rhooks: list = []
        if p["success"]:
            from .success import random_like

            if circuit_info is None:
                rinter, what = inter, "a random direction of the same size"
            else:  # as many random units of the kind, scaled alike
                rown = {**own, p["circuit_kind"]: circuit_info["random"]}
                rinter = configured(
                    "interventions", p["intervention"], rown, p["intervention_params"]
                )
                what = f"a random circuit of {p['circuit']} {p['circuit_kind']}"
            rhooks = guarded(
                "interventions", rinter, "hooks", model, vector=random_like(vec), norms=norms
            )
            progress.task(f"generate with {what}", len(prompts))
            random_texts = generate(
                model,
                prompts,
                rhooks,
                p["max_new_tokens"],
                check=progress.check,
                on_batch=lambda s, b: progress.update(s + len(b)),
                on_text=lambda i, t: progress.text("random", i, t),
            )
        if p["success"]:
            metrics.update(
                success_metrics(
                    model,
                    prompts,
                    base,
                    steered,
                    random_texts,
                    hooks,
                    rhooks,
                    emotions,
                    p["emotion"],
                    judge,
                    ppl,
                )
            )
        name = f"steer-{rec['seq']:03d}.jsonl"
        session.write_artifact(
            name,
            "".join(
                json.dumps(
                    {"prompt": q, "baseline": b, "steered": s}
                    | ({"random": random_texts[i]} if random_texts else {})
                )
                + "\n"
                for i, (q, b, s) in enumerate(zip(prompts, base, steered))
            ),
        )
        rec["outputs"] = [f"artifacts/{name}"]
        rec["metrics"] = metrics
        if circuit_info is not None:
            rec["inputs"]["circuit_units"] = circuit_info
    progress.done()
    return {
        "params": p,
        "prompts": prompts,
        "baseline": base,
        "steered": steered,
        "random": random_texts,
        "metrics": metrics,
        "circuit_units": circuit_info,
        "choices": choices,
    }


def success_metrics(
    model, prompts, base, steered, random_texts, hooks, rhooks, emotions, target, judge, ppl
) -> dict[str, float]:
    """Success (top label = target and surgical) of the steered texts, of the unsteered ones
    and of a random direction of the same size, with the judge's P(target) for each."""
    from .success import success_flags

    j = guarded("evaluators", judge, "judge_obj")
    if target not in j.labels:
        from ..errors import UnknownName

        raise UnknownName(f"the judge has no label '{target}' (labels: {', '.join(j.labels)})")
    col = j.labels.index(target)
    out: dict[str, float] = {}
    runs = [("", steered, hooks)] + ([("_random", random_texts, rhooks)] if random_texts else [])
    for name, texts, hk in runs:
        run_ = Run(model, prompts, base, texts, hk, emotions, target)
        guarded("evaluators", ppl, "evaluate", run_)
        probs = judge.scores(texts, target)
        out[f"success{name}"] = float(success_flags(probs, col, run_.extra["regimes"]).mean())
        out[f"p_target{name}"] = float(probs[:, col].mean())
    probs = judge.scores(base, target)
    out["success_baseline"] = float(success_flags(probs, col, None).mean())
    out["p_target_baseline"] = float(probs[:, col].mean())
    out["judge_accuracy"] = j.accuracy(judge.judge)
    return out
