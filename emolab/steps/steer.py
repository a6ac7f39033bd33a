"""Steering: generate from neutral prompts with and without h + alpha*v, and judge both."""

from __future__ import annotations

import json

import numpy as np

from .. import plugins, results
from ..api import Run
from ..data import NEUTRAL_PROMPTS
from ..errors import BadInput
from ..params import Param, defaults, validate
from ..progress import Progress
from ..runner import generate
from ..session import Session, check_width
from .common import configured, emotion_vector, guarded, plugin_versions, session_model

PARAMS = (
    Param("emotion", str, None, "which emotion's vector to add"),
    Param("layer", int, None, "block whose output is steered (default: the analysed peak)", min=0),
    Param("alpha", float, 0.3, "strength"),
    Param(
        "scale",
        str,
        "relative",
        "relative: alpha x the layer's mean residual norm",
        ("relative", "absolute"),
    ),
    Param("positions", str, "all", "which positions", ("all", "prompt", "generated")),
    Param("method", str, None, "which vector set of the session"),
    Param("prompts", list, list(NEUTRAL_PROMPTS[:4]), "prompts to continue", item=str),
    Param("max_new_tokens", int, 24, "tokens generated per prompt", min=1),
    Param("evaluators", list, ["label_logit_shift"], "registered evaluators", item=str),
    Param("vector_file", str, None, "a published vector file instead of the session's"),
    Param("circuit", int, None, "enhance the emotion's top-k heads (latest heads map)", min=1),
    Param("circuit_factor", float, 2.0, "multiplier for the circuit heads"),
    Param("intervention", str, None, "a registered intervention (default: residual_add)"),
    Param("intervention_params", dict, {}, "that intervention's own parameters"),
)
DEFAULTS = defaults(PARAMS)


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


def default_layer(session: Session) -> int:
    """The analysed peak layer when `layers` ran, else two thirds of the depth."""
    found = [
        o
        for o in results.outputs(session, "layers", suffix=".json")
        if not o.params.get("dataset") and o.path.is_file()
    ]
    if found:
        summary = json.loads(found[-1].path.read_text(encoding="utf-8"))["summary"]
        primary = session.methods()[0]
        if primary in summary:
            return int(summary[primary]["peak_layer"])
    return int(session.manifest["model"]["layers"] * 2 // 3)


def run(session: Session, params: dict, progress: Progress | None = None) -> dict:
    progress = progress or Progress()
    p = validate(PARAMS, params, "steer")
    if not p["emotion"]:
        raise BadInput("steer needs an emotion")
    prompts = [str(x) for x in p["prompts"]]
    if not prompts or any(not x.strip() for x in prompts):
        raise BadInput("empty prompt")
    if p["layer"] is None:
        p["layer"] = default_layer(session)
    circuit_units = None
    if p["circuit"] is not None:
        from .heads import circuit_heads

        spec, circuit_units = circuit_heads(session, p["emotion"], int(p["circuit"]))
        own = {"heads": spec, "factor": p["circuit_factor"], "positions": p["positions"]}
    else:
        own = {k: p[k] for k in ("layer", "alpha", "scale", "positions")}
    p["intervention"] = p["intervention"] or ("residual_add" if p["circuit"] is None else "enhance")
    inter = configured("interventions", p["intervention"], own, p["intervention_params"])
    reg = plugins.registry()
    evaluators = [reg.get("evaluators", name) for name in p["evaluators"]]
    model = session_model(session)
    vectors, meta = vectors_for(session, p["method"], p["vector_file"], p["emotion"])
    emotions = [e for e in meta.get("emotions", "").split(",") if e] or sorted(
        {k.split("/", 1)[0] for k in vectors}
    )
    vec = emotion_vector(vectors, p["emotion"], model.n_layers)
    check_width(vec, model.d_model, "steering vector")
    if not 0 <= int(p["layer"]) < model.n_layers:
        raise BadInput(
            f"layer {p['layer']} out of range: the model has layers 0-{model.n_layers - 1}"
        )
    if not np.isfinite(vec[int(p["layer"])]).all():
        raise BadInput(f"no '{p['emotion']}' vector at layer {p['layer']} in this vector set")
    norms = np.asarray(session.read_json("layer_norms.json")["mean_resid_norm"])
    hooks = guarded("interventions", inter, "hooks", model, vector=vec, norms=norms)
    used = {
        **plugin_versions("interventions", [p["intervention"]]),
        **plugin_versions("evaluators", p["evaluators"]),
    }
    with session.step("steer", p, used) as rec:
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
        name = f"steer-{rec['seq']:03d}.jsonl"
        session.write_artifact(
            name,
            "".join(
                json.dumps({"prompt": q, "baseline": b, "steered": s}) + "\n"
                for q, b, s in zip(prompts, base, steered)
            ),
        )
        rec["outputs"] = [f"artifacts/{name}"]
        rec["metrics"] = metrics
        if circuit_units is not None:
            rec["inputs"]["circuit_units"] = circuit_units
    progress.done()
    return {
        "params": p,
        "prompts": prompts,
        "baseline": base,
        "steered": steered,
        "metrics": metrics,
        "circuit_units": circuit_units,
    }
