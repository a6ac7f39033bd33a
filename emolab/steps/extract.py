"""Extraction: capture labelled texts once, fit every requested method, save the vectors,
the activations (for layer analysis and alignment) and the residual norms (for alpha)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
from threadpoolctl import threadpool_limits

from .. import plugins
from ..capture import capture, capture_named, resid_hooks
from ..data import EKMAN6, Example, examples_hash, select
from ..errors import BadInput, UnknownName
from ..hooks import path_of
from ..metadata import FileMeta
from ..params import Param, defaults, validate
from ..progress import Progress
from ..session import Session, vector_key
from ..units import parse_layers
from . import tuning
from .common import dataset_source, plugin_versions, record_dataset, session_model
from .guard import fit_directions, guarded

# comprehension: the model reads labelled texts; generation: it writes emotional texts and
# is read while writing; pairs: the shipped contrastive prompt pairs (steps/pairs.py)
SOURCES = ("comprehension", "generation", "pairs")
# What each emotion is contrasted with when a direction is fit:
# baseline: the neutral texts (the steering studies' emotion - neutral);
# others: the texts of every other emotion (removes the shared "negative affect" component
#   that makes anger - neutral mostly a valence direction);
# all: every train text of every label, the emotion included (the direction from the
#   centroid of all classes to the emotion's, as in the 20-emotion study's centring).
CONTRASTS = ("baseline", "others", "all")
PARAMS = (
    Param("dataset", str, "goemotions-ekman", "a registered dataset"),
    Param("dataset_params", dict, {}, "the dataset's own parameters (text_column, ...)"),
    Param("emotions", list, None, "labels to extract (default: the dataset's own)", item=str),
    Param("baseline", str, None, "label the directions point away from (default: neutral)"),
    Param("methods", list, ["mean_diff"], "registered extractors", item=str),
    Param("layers", (str, list), "all", "all, 5, 2,5,8, 10-20 or a list", item=int),
    Param("position", str, "last", "which token's residual", ("last", "mean", "commas")),
    Param("limit", int, 100, "train examples per label", min=1),
    Param("test_limit", int, 50, "held-out examples per label", min=1),
    Param("dev_limit", int, None, "dev examples per label (default: test_limit)", min=1),
    Param("contrast", str, "baseline", "what each emotion is contrasted with", CONTRASTS),
    Param("batch_size", int, 16, "texts per forward pass", min=1),
    Param("source", str, "comprehension", "read labelled text or the model's own writing", SOURCES),
    Param("gen_tokens", int, 40, "tokens the model writes per text (source=generation)", min=1),
    Param("pairs", int, None, "contrastive prompt pairs per emotion (source=pairs; all)", min=2),
    Param("seed", int, 0),
    Param(
        "tune",
        bool,
        True,
        "choose the extractors' declared hyper-parameters (C, shrinkage, components) on dev",
    ),
    Param(
        "hooks", list, [], "extra TL hook names to capture (non-fast ones via the bridge)", item=str
    ),
)
DEFAULTS = defaults(PARAMS)


def resolve_labels(
    dataset: str, emotions, baseline, dataset_params: dict | None = None
) -> tuple[list[str], str]:
    """Emotions and baseline, with the dataset's own labels filling what was not given: the
    Ekman six where the dataset has them, else all its labels, so `--dataset tigges-reviews`
    alone means positive vs negative instead of failing on 'anger'."""
    if emotions and baseline:
        return list(emotions), baseline
    own = list(
        guarded(
            "datasets",
            plugins.get("datasets", dataset, **(dataset_params or {})),
            "labels",
            dataset,
        )
    )
    if not baseline:
        baseline = "neutral" if "neutral" in own or not own else own[-1]
    if not emotions:
        ekman = [e for e in EKMAN6 if e in own]
        emotions = ekman if len(ekman) == len(EKMAN6) else [lab for lab in own if lab != baseline]
    return list(emotions), baseline


def contrast_rows(y: np.ndarray, emotion: str, baseline: str, contrast: str) -> np.ndarray:
    """Mask of the train rows an emotion is contrasted with."""
    if contrast == "baseline":
        return y == baseline
    if contrast == "others":
        return y != emotion
    return np.ones(len(y), dtype=bool)


def load_split(
    dataset: str,
    split: str,
    labels,
    limit: int | None,
    seed: int = 0,
    dataset_params: dict | None = None,
):
    """Examples of `labels` from one split, at most `limit` each, plus their flat lists.
    `dataset_params` set the source's declared parameters (text_column, ...)."""
    source = dataset_source(dataset, seed, dataset_params)
    groups = select(guarded("datasets", source, "load", dataset, split), labels, limit, dataset)
    for label, items in groups.items():
        if not items:
            raise BadInput(f"dataset '{dataset}' has no '{label}' examples in split '{split}'")
    examples = [ex for label in labels for ex in groups[label]]
    return examples, np.array([ex.label for ex in examples])


def dev_split(
    dataset: str, labels, limit: int | None, seed: int = 0, dataset_params: dict | None = None
) -> list:
    """The dev texts that choose layers and settings; empty when the dataset's dev split
    lacks a label (a small user file), and choices then fall back to the train split."""
    try:
        return load_split(dataset, "dev", labels, limit, seed, dataset_params)[0]
    except (BadInput, UnknownName):
        return []


def check(params: dict) -> dict:
    """The complete parameters, with the dataset's and the extractors' own checked too: what
    a face calls before it creates a session (which loads the model)."""
    p = validate(PARAMS, params, "extract")
    plugins.get("datasets", p["dataset"], **p["dataset_params"])
    for name in p["methods"]:
        plugins.get("extractors", name)
    return p


def run(session: Session, params: dict, progress: Progress | None = None) -> dict:
    progress = progress or Progress()
    p = validate(PARAMS, params, "extract")
    ds = p["dataset_params"]
    p["emotions"], p["baseline"] = resolve_labels(p["dataset"], p["emotions"], p["baseline"], ds)
    emotions, baseline = p["emotions"], p["baseline"]
    if p["dev_limit"] is None:
        p["dev_limit"] = p["test_limit"]
    if not emotions:
        raise BadInput("no emotions given")
    if baseline in emotions:
        raise BadInput(f"baseline '{baseline}' is also listed as an emotion")
    reg = plugins.registry()
    extractors = [reg.get("extractors", m) for m in p["methods"]]
    labels = emotions + [baseline]
    split_seed = int(session.manifest.get("seed", 0))
    if p["source"] == "comprehension":
        train, y_train = load_split(p["dataset"], "train", labels, p["limit"], split_seed, ds)
    if p["source"] == "pairs":
        from .pairs import max_pairs, pair_texts

        p["pairs"] = p["pairs"] or max_pairs()
        pair_texts(labels, baseline, p["pairs"], p["position"])  # fails before the model loads
    test, y_test = load_split(p["dataset"], "test", labels, p["test_limit"], split_seed, ds)
    dev = dev_split(p["dataset"], labels, p["dev_limit"], split_seed, ds)
    model = session_model(session)
    layers = parse_layers(p["layers"], model.n_layers)
    hooks = resid_hooks(model, layers)
    extra = list(p["hooks"] or [])
    paths = {h: path_of(model, h) for h in extra}  # a bad name fails before the step logs

    with session.step("extract", p, plugin_versions("extractors", p["methods"])) as rec:
        record_dataset(session, rec, p["dataset"])
        rec["inputs"]["split_seed"] = split_seed
        acts = {}
        if p["source"] == "generation":
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
        elif p["source"] == "pairs":
            from .pairs import pair_activations

            progress.task(f"read {p['pairs']} prompt pairs per emotion", p["pairs"] * len(labels))
            acts["train"], y_train, written = pair_activations(
                model,
                labels,
                baseline,
                hooks,
                p["position"],
                p["pairs"],
                p["batch_size"],
                progress=progress,
                check=progress.check,
            )
            train = [Example(f"{r['prompt']}\n{r['text']}", r["label"]) for r in written]
        for split, examples in (("train", train), ("dev", dev), ("test", test)):
            if split in acts or not examples:
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
        if extra:
            save_extra(session, model, extra, paths, {"train": train, "test": test}, p, progress)
            rec["outputs"].append("artifacts/hooks.safetensors")
        x = acts["train"]
        norms = np.full(model.n_layers, np.nan)
        norms[layers] = np.linalg.norm(x, axis=-1).mean(0)
        meta = FileMeta(
            model=model.name,
            dataset=p["dataset"],
            position=p["position"],
            baseline=baseline,
            source=p["source"],
            contrast=p["contrast"],
            emotions=tuple(emotions),
            layers=tuple(layers),
        )
        y_dev = np.array([ex.label for ex in dev])
        grids = [
            tuning.grid(ext) if p["tune"] and not ext.needs_model else [] for ext in extractors
        ]
        total = sum(max(len(g) if dev else 1, 1) for g in grids) * len(emotions)
        progress.task("fit " + ", ".join(p["methods"]), total)
        fits = Fits(model, hooks, labels, baseline, p["contrast"], x, y_train, train, progress)
        with threadpool_limits(1, user_api="blas"):  # small fits: BLAS threads only contend
            for ext, candidates in zip(extractors, grids, strict=True):
                tuned = {prm.name for prm in ext.params if prm.tune}
                if candidates and dev:
                    chosen = tuning.choose(
                        ext, candidates, fits, x, y_train, acts["dev"], y_dev, fits.against
                    )
                    ext, by_emotion = chosen.extractor, chosen.vectors
                    for name, score in chosen.dev.items():
                        rec["metrics"][f"tune_dev_acc/{ext.name}/{name}"] = score
                    rec["metrics"][f"tune_test_acc/{ext.name}"] = tuning.score(
                        by_emotion, x, y_train, acts["test"], y_test, fits.against
                    )
                    how = "dev"
                else:
                    by_emotion = fits(ext)
                    how = "default (no dev split)" if p["tune"] else "default (tune off)"
                for name in sorted(tuned):
                    rec.setdefault("choices", {})[f"{name}/{ext.name}"] = {
                        "value": getattr(ext, name),
                        "chosen_on": how,
                    }
                vectors = {
                    vector_key(emo, hook): dirs[i]
                    for emo, dirs in by_emotion.items()
                    for i, hook in enumerate(hooks)
                }
                own = meta.with_extra(params=json.dumps(ext.get_params(), sort_keys=True))
                rec["outputs"].append(str(session.save_vectors(vectors, own, ext.name).name))
        session.save_arrays(
            "activations.safetensors",
            {split: a.astype(np.float16) for split, a in acts.items()},
            replace(meta, hooks=tuple(hooks)),
        )
        session.write_json(
            "examples.json",
            {
                "train": [[ex.label, ex.text] for ex in train],
                "dev": [[ex.label, ex.text] for ex in dev],
                "test": [[ex.label, ex.text] for ex in test],
                "train_hash": examples_hash(train),
                "dev_hash": examples_hash(dev),
                "test_hash": examples_hash(test),
            },
        )
        session.write_json("layer_norms.json", {"mean_resid_norm": norms.tolist()})
        rec["outputs"] += [
            "artifacts/activations.safetensors",
            "artifacts/examples.json",
            "artifacts/layer_norms.json",
        ]
        rec["inputs"].update(
            train_hash=examples_hash(train),
            dev_hash=examples_hash(dev),
            test_hash=examples_hash(test),
        )
        rec["metrics"].update({"n_train": len(train), "n_dev": len(dev), "n_test": len(test)})
        rec["metrics"].update({f"mean_resid_norm/L{i}": float(norms[i]) for i in layers})
    progress.done()
    return {
        "emotions": list(emotions),
        "baseline": baseline,
        "layers": layers,
        "methods": p["methods"],
        "n_train": len(train),
        "n_dev": len(dev),
        "n_test": len(test),
        "hooks": paths,
    }


class Fits:
    """Fits one configured extractor for every emotion on the train activations: `fits(ext)`
    -> emotion -> `[layers, d]`; the dev choice of hyper-parameters calls it per candidate."""

    def __init__(self, model, hooks, labels, baseline, contrast, x, y, train, progress) -> None:
        self.model, self.hooks, self.labels = model, hooks, labels
        self.baseline, self.contrast = baseline, contrast
        self.x, self.y, self.train, self.progress = x, y, train, progress
        self.done = 0

    def against(self, y: np.ndarray, emotion: str) -> np.ndarray:
        """The rows an emotion is told apart from when a direction is scored."""
        return y == self.baseline if self.contrast == "baseline" else y != emotion

    def __call__(self, ext) -> dict[str, np.ndarray]:
        out = {}
        for emo in self.labels[:-1]:
            self.progress.check()
            neg_rows = contrast_rows(self.y, emo, self.baseline, self.contrast)
            pos, neg = self.x[self.y == emo], self.x[neg_rows]
            if ext.needs_model:
                context = {
                    "model": self.model,
                    "hooks": self.hooks,
                    "labels": self.labels,
                    "emotion": emo,
                    "baseline": self.baseline,
                    "check": self.progress.check,
                    "pos_texts": [ex.text for ex in self.train if ex.label == emo],
                    "neg_texts": [
                        ex.text for ex, keep in zip(self.train, neg_rows, strict=True) if keep
                    ],
                }
                out[emo] = fit_directions(ext, pos, neg, context)
            else:
                out[emo] = fit_directions(ext, pos, neg)
            self.done += 1
            self.progress.update(self.done)
        return out


def save_extra(session: Session, model, names, paths, splits, p, progress) -> None:
    """The extra hooks of `--hooks`, pooled like the residual, one array per split and
    name (`train/blocks.5.attn.hook_pattern`), rows in examples.json order."""
    arrays = {}
    for split, examples in splits.items():
        progress.task(f"capture {', '.join(names)} ({split})", len(examples))
        got = capture_named(
            model,
            [ex.text for ex in examples],
            names,
            p["position"],
            p["batch_size"],
            progress=progress,
            check=progress.check,
        )
        arrays.update({f"{split}/{name}": got[name] for name in names})
    meta = FileMeta(
        model=model.name,
        position=p["position"],
        hooks=tuple(names),
        paths={n: paths[n] for n in names},
    )
    session.save_arrays("hooks.safetensors", arrays, meta)
