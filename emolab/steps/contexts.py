"""Context-agnostic directions (the emotion-circuit study): is an emotion's direction the
same whatever frame the text comes in, and what is the part every frame shares?

The session's labelled texts are read inside several prompt templates ("{text}", a quoted
message, a diary line, ...). Each template gets its own direction per emotion (the
session's extractor, emotion vs baseline, at the chosen layers); the cosines between the
templates' directions say how consistent the emotion is across contexts, and the
normalised mean of the templates' unit directions is the shared, context-agnostic
component. It is saved as the vector set `context_agnostic`, so `steer` and `sweep` take it
with `--method context_agnostic`.

Held-out check per template: balanced accuracy of emotion vs baseline on the test texts,
projected on the template's own direction and on the shared one, each thresholded at the
midpoint of the train class means (nothing is chosen on the test texts).
"""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np

from .. import plugins
from ..capture import capture, resid_hooks
from ..data import CONTEXT_TEMPLATES
from ..errors import BadInput
from ..params import Param, defaults, validate
from ..progress import Progress
from ..session import Session, vector_key
from ..units import parse_layers
from .common import plugin_versions, session_model
from .guard import fit_directions
from .readout import unit

METHOD = "context_agnostic"
PARAMS = (
    Param("templates", list, list(CONTEXT_TEMPLATES), "prompt templates with {text}", item=str),
    Param("emotions", list, None, "emotions (default: the session's)", item=str),
    Param("layers", (str, list), None, "layers (default: the steering layer)", item=int),
    Param("extractor", str, "mean_diff", "the registered extractor fit per template"),
    Param("limit", int, 40, "train texts per label and template", min=1),
    Param("test_limit", int, 20, "held-out texts per label and template", min=1),
    Param("batch_size", int, 16, "texts per forward pass", min=1),
)
DEFAULTS = defaults(PARAMS)


def check_templates(templates: list[str]) -> None:
    if len(templates) < 2:
        raise BadInput("give at least two templates: consistency is measured between them")
    for t in templates:
        if t.count("{text}") != 1:
            raise BadInput(f"template {t!r} must hold '{{text}}' exactly once")
        try:
            t.format(text="")
        except (KeyError, IndexError, ValueError):
            raise BadInput(f"template {t!r} has braces other than {{text}}") from None


def balanced_accuracy(train_pos, train_neg, test_pos, test_neg, direction) -> float:
    """Emotion vs baseline by the sign of (projection - midpoint of the train means)."""
    mid = 0.5 * (float((train_pos @ direction).mean()) + float((train_neg @ direction).mean()))
    return 0.5 * (
        float(((test_pos @ direction) > mid).mean()) + float(((test_neg @ direction) <= mid).mean())
    )


def run(session: Session, params: dict, progress: Progress | None = None) -> dict:
    from .shared import default_layer

    progress = progress or Progress()
    p = validate(PARAMS, params, "contexts")
    templates = [str(t) for t in p["templates"]]
    check_templates(templates)
    _, meta = session.load_vectors()
    baseline = meta.baseline
    known = list(meta.emotions)
    emotions = list(p["emotions"] or known)
    unknown = [e for e in emotions if e not in known]
    if unknown:
        raise BadInput(f"unknown emotion '{unknown[0]}' (this session has: {', '.join(known)})")
    n_layers = int(session.manifest["model"]["layers"])
    if p["layers"] is None:
        p["layers"] = [default_layer(session)]
    spec = p["layers"] if isinstance(p["layers"], list) else str(p["layers"])
    layers = parse_layers(spec, n_layers)
    p["layers"] = layers
    ext = plugins.get("extractors", p["extractor"])
    ex = session.read_json("examples.json")
    labels = [*emotions, baseline]
    split = {
        s: [(lab, t) for lab in labels for t in [t for la, t in ex[s] if la == lab][:lim]]
        for s, lim in (("train", int(p["limit"])), ("test", int(p["test_limit"])))
    }
    if not any(lab == baseline for lab, _ in split["train"]):
        raise BadInput(f"the session holds no '{baseline}' texts")
    position = meta.position or "last"
    used = plugin_versions("extractors", [p["extractor"]])
    with session.step("contexts", p, used) as rec:
        model = session_model(session)
        hooks = resid_hooks(model, layers)
        acts: dict[tuple[int, str], np.ndarray] = {}
        progress.task(f"capture {len(templates)} templates", 2 * len(templates))
        for i, t in enumerate(templates):
            for j, s in enumerate(("train", "test")):
                texts = [t.format(text=x) for _, x in split[s]]
                acts[i, s] = capture(
                    model, texts, hooks, position, int(p["batch_size"]), check=progress.check
                )
                progress.update(2 * i + j + 1)
        y = {s: np.array([lab for lab, _ in split[s]]) for s in split}
        rows, summary, vectors = [], {}, {}
        for emo in emotions:
            own = np.stack(
                [
                    fit_directions(
                        ext,
                        acts[i, "train"][y["train"] == emo],
                        acts[i, "train"][y["train"] == baseline],
                    )
                    for i in range(len(templates))
                ]
            )  # [templates, layers, d]
            units = unit(own)
            shared = unit(units.mean(0))  # [layers, d]
            for li, layer in enumerate(layers):
                cos = [
                    float(units[a, li] @ units[b, li])
                    for a, b in itertools.combinations(range(len(templates)), 2)
                ]
                summary[f"{emo}/{layer}"] = {
                    "mean_pairwise_cosine": float(np.mean(cos)),
                    "min_pairwise_cosine": float(np.min(cos)),
                }
                for i in range(len(templates)):
                    tr, te = acts[i, "train"][:, li], acts[i, "test"][:, li]
                    args = (
                        tr[y["train"] == emo],
                        tr[y["train"] == baseline],
                        te[y["test"] == emo],
                        te[y["test"] == baseline],
                    )
                    rows.append(
                        {
                            "emotion": emo,
                            "layer": layer,
                            "template": i,
                            "cos_to_shared": float(units[i, li] @ shared[li]),
                            "test_acc_own": balanced_accuracy(*args, units[i, li]),
                            "test_acc_shared": balanced_accuracy(*args, shared[li]),
                        }
                    )
                scale = float(np.linalg.norm(own[:, li], axis=-1).mean())
                vectors[vector_key(emo, hooks[li])] = shared[li] * scale
        vmeta = dataclasses.replace(meta, layers=tuple(layers)).with_extra(
            templates=json.dumps(templates), extractor=p["extractor"]
        )
        rec["outputs"].append(str(session.save_vectors(vectors, vmeta, METHOD).name))
        seq = rec["seq"]
        result = {
            "emotions": emotions,
            "baseline": baseline,
            "layers": layers,
            "templates": templates,
            "position": position,
            "n_train": len(split["train"]),
            "n_test": len(split["test"]),
            "consistency": summary,
            "rows": rows,
            "method": METHOD,
        }
        session.write_json(f"contexts-{seq:03d}.json", result)
        rec["outputs"].append(f"artifacts/contexts-{seq:03d}.json")
        for key, s in summary.items():
            rec["metrics"][f"mean_pairwise_cosine/{key}"] = s["mean_pairwise_cosine"]
        for r in rows:
            key = f"{r['emotion']}/{r['layer']}/t{r['template']}"
            rec["metrics"][f"test_acc_shared/{key}"] = r["test_acc_shared"]
    progress.done()
    return result
