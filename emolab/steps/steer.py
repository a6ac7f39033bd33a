"""Steering: generate from neutral prompts with and without h + alpha*v, and judge both."""

from __future__ import annotations

import json

import numpy as np

from .. import plugins, results
from ..api import Run
from ..data import NEUTRAL_PROMPTS
from ..errors import BadInput
from ..progress import Progress
from ..runner import generate
from ..session import Session, check_width
from .common import emotion_vector, guarded, plugin_versions, session_model

DEFAULTS = {
    "layer": None,
    "alpha": 0.3,
    "scale": "relative",
    "positions": "all",
    "method": None,
    "prompts": list(NEUTRAL_PROMPTS[:4]),
    "max_new_tokens": 24,
    "evaluators": ["label_logit_shift"],
    "vector_file": None,
    "circuit": None,  # k: enhance the emotion's top-k heads (latest `heads` map) instead
    "circuit_factor": 2.0,
}


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
    p = {**DEFAULTS, **params}
    if "emotion" not in p or not p["emotion"]:
        raise BadInput("steer needs an emotion")
    prompts = [str(x) for x in p["prompts"]]
    if not prompts or any(not x.strip() for x in prompts):
        raise BadInput("empty prompt")
    model = session_model(session)
    if p["layer"] is None:
        p["layer"] = default_layer(session)
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
    reg = plugins.registry()
    kind = "residual_add" if p["circuit"] is None else "enhance"
    if p["circuit"] is not None:
        from .heads import circuit_heads

        spec, p["circuit_units"] = circuit_heads(session, p["emotion"], int(p["circuit"]))
        inter = reg.get(
            "interventions",
            "enhance",
            heads=spec,
            factor=p["circuit_factor"],
            positions=p["positions"],
        )
    else:
        inter = reg.get(
            "interventions",
            "residual_add",
            layer=p["layer"],
            alpha=p["alpha"],
            scale=p["scale"],
            positions=p["positions"],
        )
    hooks = guarded("interventions", inter, "hooks", model, vector=vec, norms=norms)
    evaluators = [reg.get("evaluators", name) for name in p["evaluators"]]
    used = {
        **plugin_versions("interventions", [kind]),
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
    progress.done()
    return {
        "params": p,
        "prompts": prompts,
        "baseline": base,
        "steered": steered,
        "metrics": metrics,
    }
