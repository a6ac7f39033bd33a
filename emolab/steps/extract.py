"""Extraction: capture labelled texts once, fit every requested method, save the vectors,
the activations (for layer analysis and alignment) and the residual norms (for alpha)."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from .. import plugins
from ..capture import capture, resid_hooks
from ..data import examples_hash, select
from ..errors import BadInput
from ..progress import Progress
from ..session import Session, vector_key
from .common import (
    dataset_source,
    guarded,
    parse_layers,
    plugin_versions,
    record_dataset,
    session_model,
)

DEFAULTS = {
    "dataset": "goemotions-ekman",
    "emotions": ["anger", "disgust", "fear", "joy", "sadness", "surprise"],
    "baseline": "neutral",
    "methods": ["mean_diff"],
    "layers": "all",
    "position": "last",
    "limit": 100,
    "test_limit": 50,
    "batch_size": 16,
    "source": "comprehension",
    "gen_tokens": 40,
    "seed": 0,
}
SOURCES = ("comprehension", "generation")


def load_split(dataset: str, split: str, labels, limit: int | None, seed: int = 0):
    """Examples of `labels` from one split, at most `limit` each, plus their flat lists."""
    source = dataset_source(dataset, seed)
    groups = select(source.load(dataset, split), labels, limit, dataset)
    for label, items in groups.items():
        if not items:
            raise BadInput(f"dataset '{dataset}' has no '{label}' examples in split '{split}'")
    examples = [ex for label in labels for ex in groups[label]]
    return examples, np.array([ex.label for ex in examples])


def run(session: Session, params: dict, progress: Progress | None = None) -> dict:
    progress = progress or Progress()
    p = {**DEFAULTS, **params}
    emotions, baseline = list(p["emotions"]), p["baseline"]
    if not emotions:
        raise BadInput("no emotions given")
    if baseline in emotions:
        raise BadInput(f"baseline '{baseline}' is also listed as an emotion")
    if p["source"] not in SOURCES:
        raise BadInput(f"unknown source '{p['source']}' (known: {', '.join(SOURCES)})")
    reg = plugins.registry()
    extractors = [reg.get("extractors", m) for m in p["methods"]]
    labels = emotions + [baseline]
    split_seed = int(session.manifest.get("seed", 0))
    if p["source"] == "comprehension":
        train, y_train = load_split(p["dataset"], "train", labels, p["limit"], split_seed)
    test, y_test = load_split(p["dataset"], "test", labels, p["test_limit"], split_seed)
    model = session_model(session)
    layers = parse_layers(p["layers"], model.n_layers)
    hooks = resid_hooks(model, layers)

    with session.step("extract", p, plugin_versions("extractors", p["methods"])) as rec:
        record_dataset(session, rec, p["dataset"])
        rec["inputs"]["split_seed"] = split_seed
        acts = {}
        if p["source"] == "generation":
            from ..data import Example
            from .generation import generation_activations

            progress.task(f"generate {p['limit']} texts per label", p["limit"] * len(labels))
            acts["train"], y_train, written = generation_activations(
                model,
                labels,
                baseline,
                hooks,
                p["position"],
                p["limit"],
                p["seed"],
                p["gen_tokens"],
                batch_size=p["batch_size"],
                progress=progress,
                check=progress.check,
            )
            train = [Example(r["text"], r["label"]) for r in written]
        for split, examples in (("train", train), ("test", test)):
            if split in acts:
                continue
            progress.task(f"capture {split} ({len(examples)} texts)", len(examples))
            acts[split] = capture(
                model,
                [ex.text for ex in examples],
                hooks,
                p["position"],
                p["batch_size"],
                progress=progress,
                check=progress.check,
            )
        x = acts["train"]
        norms = np.full(model.n_layers, np.nan)
        norms[layers] = np.linalg.norm(x, axis=-1).mean(0)
        meta = {
            "model": model.name,
            "dataset": p["dataset"],
            "position": p["position"],
            "baseline": baseline,
            "source": p["source"],
            "emotions": ",".join(emotions),
            "layers": ",".join(map(str, layers)),
        }
        progress.task("fit " + ", ".join(p["methods"]), len(extractors) * len(emotions))
        done = 0
        with threadpool_limits(1, user_api="blas"):  # small fits: BLAS threads only contend
            for ext in extractors:
                vectors = {}
                for emo in emotions:
                    progress.check()
                    pos, neg = x[y_train == emo], x[y_train == baseline]
                    if getattr(ext, "needs_model", False):
                        context = {
                            "model": model,
                            "hooks": hooks,
                            "labels": labels,
                            "emotion": emo,
                            "baseline": baseline,
                            "check": progress.check,
                            "pos_texts": [ex.text for ex in train if ex.label == emo],
                            "neg_texts": [ex.text for ex in train if ex.label == baseline],
                        }
                        dirs = guarded("extractors", ext, "fit_in_context", pos, neg, context)
                    else:
                        dirs = guarded("extractors", ext, "fit", pos, neg)
                    if not np.isfinite(dirs).all():
                        raise BadInput(f"{ext.name} produced NaN/inf for '{emo}'")
                    for i, hook in enumerate(hooks):
                        vectors[vector_key(emo, hook)] = dirs[i]
                    done += 1
                    progress.update(done)
                rec["outputs"].append(str(session.save_vectors(vectors, meta, ext.name).name))
        session.save_arrays(
            "activations.safetensors",
            {"train": x.astype(np.float16), "test": acts["test"].astype(np.float16)},
            {**meta, "hooks": ",".join(hooks)},
        )
        session.write_json(
            "examples.json",
            {
                "train": [[ex.label, ex.text] for ex in train],
                "test": [[ex.label, ex.text] for ex in test],
                "train_hash": examples_hash(train),
                "test_hash": examples_hash(test),
            },
        )
        session.write_json("layer_norms.json", {"mean_resid_norm": norms.tolist()})
        rec["outputs"] += [
            "artifacts/activations.safetensors",
            "artifacts/examples.json",
            "artifacts/layer_norms.json",
        ]
        rec["inputs"].update(train_hash=examples_hash(train), test_hash=examples_hash(test))
        rec["metrics"] = {"n_train": len(train), "n_test": len(test)}
        rec["metrics"].update({f"mean_resid_norm/L{i}": float(norms[i]) for i in layers})
    progress.done()
    return {"layers": layers, "methods": p["methods"], "n_train": len(train), "n_test": len(test)}
