"""Layer analysis: how readable each emotion direction is at each layer, never without its
chance level (random and shuffled-label directions), plus norms and cosines."""

from __future__ import annotations

import json

import numpy as np
from sklearn.metrics import balanced_accuracy_score
from threadpoolctl import threadpool_limits

from .. import plugins
from ..capture import capture
from ..errors import BadInput
from ..params import Param, validate
from ..progress import Progress
from ..session import Session
from ..tables import to_csv
from .common import emotion_vector, record_dataset, session_model
from .guard import fit_directions
from .joint_probe import joint_probe
from .layer_sources import compare_sources
from .readout import binary_scores, cosine, multiclass_accuracy, unit

BASELINE_SEEDS = 5
PARAMS = (
    Param("dataset", str, None, "score the vectors on another dataset's test split (no refit)"),
    Param("dataset_params", dict, {}, "that dataset's own parameters (text_column, ...)"),
    Param("limit", int, 100, "test examples per label of --dataset", min=1),
    Param(
        "source",
        str,
        "comprehension",
        "generation: also fit on the model's own writing",
        ("comprehension", "generation"),
    ),
    Param("samples", int, None, "texts per label written by the model (source=generation)", min=1),
    Param("gen_tokens", int, 40, "tokens per written text (source=generation)", min=1),
    Param("seed", int, 0),
    Param(
        "joint_probe", bool, True, "also fit one 7-way logistic probe per layer (C, layer on dev)"
    ),
)


def analyse(
    vectors_by_method: dict[str, dict[str, np.ndarray]],
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_te: np.ndarray,
    y_te: np.ndarray,
    layers: list[int],
    emotions: list[str],
    baseline: str,
    n_layers: int,
    progress: Progress,
    refit: bool = True,
    surface: dict[str, float] | None = None,
    select: tuple[np.ndarray, np.ndarray, str] | None = None,
    fitted: dict[str, dict] | None = None,
) -> tuple[list[dict], dict]:
    """The table rows and the cosine matrices. `x_*` are `[n, len(layers), d]`.

    `select` is the split that chooses (activations, labels, name): the dev split, or
    the train split for sessions extracted before there was one. Every row scores the
    direction on it too (`acc_select`, `acc7_select`), so `summarise` picks layers there
    and the test columns stay a report only. `fitted` holds each method's parameters as
    extract chose them (on dev), so the shuffled-label baseline refits the same estimator.
    """
    x_se, y_se, select_name = select if select is not None else (x_tr, y_tr, "train")
    reg = plugins.registry()
    surface = surface or {}
    rows, cosines = [], {}
    rng = np.random.default_rng(0)
    d = x_tr.shape[-1]
    progress.task("score layers", len(layers) * len(vectors_by_method))
    done = 0
    for method, vectors in vectors_by_method.items():
        ext = reg.get("extractors", method, **(fitted or {}).get(method, {})) if refit else None
        if ext is not None and ext.needs_model:
            ext = None  # refitting DAS per shuffle would re-run the model: no shuffled baseline
        vecs = {e: emotion_vector(vectors, e, n_layers) for e in emotions}
        for li, layer in enumerate(layers):
            progress.check()
            xt, xe = x_tr[:, li].astype(np.float64), x_te[:, li].astype(np.float64)
            xs = x_se[:, li].astype(np.float64)
            units = [unit(vecs[e][layer].astype(np.float64)) for e in emotions]
            acc7 = multiclass_accuracy(units, xt, y_tr, xe, y_te, emotions, baseline)
            acc7_select = multiclass_accuracy(units, xt, y_tr, xs, y_se, emotions, baseline)
            rand7 = [
                multiclass_accuracy(
                    unit(rng.standard_normal((len(emotions), d))),
                    xt,
                    y_tr,
                    xe,
                    y_te,
                    emotions,
                    baseline,
                )
                for _ in range(BASELINE_SEEDS)
            ]
            shuf_units: list[list[np.ndarray]] = []
            first_row = len(rows)
            for e, u in zip(emotions, units, strict=True):
                keep_tr = (y_tr == e) | (y_tr == baseline)
                keep_te = (y_te == e) | (y_te == baseline)
                a_tr, pos_tr = xt[keep_tr], y_tr[keep_tr] == e
                a_te, pos_te = xe[keep_te], y_te[keep_te] == e
                acc, auc, _ = binary_scores(u, a_tr, pos_tr, a_te, pos_te)
                keep_se = (y_se == e) | (y_se == baseline)
                acc_se = binary_scores(u, a_tr, pos_tr, xs[keep_se], y_se[keep_se] == e)[0]
                rand = [
                    binary_scores(unit(rng.standard_normal(d)), a_tr, pos_tr, a_te, pos_te)[0]
                    for _ in range(BASELINE_SEEDS)
                ]
                shuf, shuf_u = [], []
                if ext is not None:
                    for _ in range(BASELINE_SEEDS):
                        perm = rng.permutation(pos_tr)
                        w = unit(fit_directions(ext, a_tr[perm][:, None], a_tr[~perm][:, None])[0])
                        shuf_u.append(w)
                        shuf.append(binary_scores(w, a_tr, pos_tr, a_te, pos_te)[0])
                shuf_units.append(shuf_u)
                rows.append(
                    {
                        "method": method,
                        "emotion": e,
                        "layer": layer,
                        "depth": round(layer / max(n_layers - 1, 1), 3),
                        "acc": acc,
                        "auc": auc,
                        "acc_random": float(np.mean(rand)),
                        "acc_random_sd": float(np.std(rand)),
                        "acc_shuffled": float(np.mean(shuf)) if shuf else float("nan"),
                        "acc_shuffled_sd": float(np.std(shuf)) if shuf else float("nan"),
                        "acc7": acc7,
                        "acc7_random": float(np.mean(rand7)),
                        "acc7_shuffled": float("nan"),
                        "acc_select": acc_se,
                        "acc7_select": acc7_select,
                        "select_split": select_name,
                        "acc_surface": surface.get(e, float("nan")),
                        "vector_norm": float(np.linalg.norm(vecs[e][layer])),
                        "resid_norm": float(np.linalg.norm(xt, axis=1).mean()),
                    }
                )
            if ext is not None:
                acc7s = [
                    multiclass_accuracy(
                        [su[k] for su in shuf_units], xt, y_tr, xe, y_te, emotions, baseline
                    )
                    for k in range(BASELINE_SEEDS)
                ]
                for r in rows[first_row:]:
                    r["acc7_shuffled"] = float(np.mean(acc7s))
            # cosines between emotions: directions, and class centroids raw vs mean-centred
            mu = xt.mean(0)
            cents = [xt[y_tr == e].mean(0) for e in emotions]
            cosines.setdefault(method, {})[str(layer)] = {
                "direction": [
                    [cosine(vecs[a][layer], vecs[b][layer]) for b in emotions] for a in emotions
                ],
                "centroid_raw": [[cosine(a, b) for b in cents] for a in cents],
                "centroid_centred": [[cosine(a - mu, b - mu) for b in cents] for a in cents],
            }
            done += 1
            progress.update(done)
    methods = list(vectors_by_method)
    if len(methods) > 1:
        cross = {}
        for e in emotions:
            for layer in layers:
                vs = {m: emotion_vector(vectors_by_method[m], e, n_layers)[layer] for m in methods}
                cross[f"{e}/{layer}"] = [[cosine(vs[a], vs[b]) for b in methods] for a in methods]
        cosines["between_methods"] = {"methods": methods, "by_emotion_layer": cross}
    return rows, cosines


def _mean_by_layer(rows: list[dict], key: str) -> dict[int, float]:
    by_layer: dict[int, list[float]] = {}
    for r in rows:
        by_layer.setdefault(r["layer"], []).append(r[key])
    return {layer: float(np.mean(v)) for layer, v in by_layer.items()}


def summarise(rows: list[dict], emotions: list[str], n_layers: int) -> dict:
    """Peak layer per method and per emotion, chosen on the selection split (dev), with the
    test accuracy at that layer as the reported number: picking the layer by its test
    accuracy would report the best of 30 draws of test noise."""
    out: dict = {}
    methods = sorted({r["method"] for r in rows})
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        mean = _mean_by_layer(mine, "acc")
        mean_sel = _mean_by_layer(mine, "acc_select")
        peak = max(mean_sel, key=mean_sel.get)
        acc7 = {r["layer"]: r["acc7"] for r in mine}
        acc7_sel = {r["layer"]: r["acc7_select"] for r in mine}
        peak7 = max(acc7_sel, key=acc7_sel.get)
        out[m] = {
            "peak_layer": peak,
            "peak_depth": round(peak / max(n_layers - 1, 1), 3),
            "peak_acc": mean[peak],
            "peak_acc_select": mean_sel[peak],
            "peak_layer7": peak7,
            "peak_acc7": acc7[peak7],
            "chosen_on": mine[0]["select_split"],
            "reported_on": "test",
            "mean_acc_by_layer": mean,
            "mean_acc_select_by_layer": mean_sel,
            "per_emotion_peak": {
                e: max((r for r in mine if r["emotion"] == e), key=lambda r: r["acc_select"])[
                    "layer"
                ]
                for e in emotions
            },
        }
    return out


def surface_features(texts) -> np.ndarray:
    """Length, punctuation and capitals: what a reader with no model could use."""
    rows = []
    for t in texts:
        words = t.split()
        letters = [c for c in t if c.isalpha()]
        rows.append(
            [
                len(t),
                len(words),
                t.count("!"),
                t.count("?"),
                t.count("."),
                t.count(","),
                sum(c.isupper() for c in letters) / max(len(letters), 1),
                sum(w.isupper() and len(w) > 1 for w in words),
                sum(not c.isascii() for c in t) / max(len(t), 1),
            ]
        )
    return np.asarray(rows, dtype=np.float64)


def surface_baseline(train_texts, y_tr, test_texts, y_te, emotions, baseline) -> dict[str, float]:
    """Held-out balanced accuracy of a logistic regression on surface features, per emotion."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    f_tr, f_te = surface_features(train_texts), surface_features(test_texts)
    out = {}
    for e in emotions:
        k_tr = (y_tr == e) | (y_tr == baseline)
        k_te = (y_te == e) | (y_te == baseline)
        if len(set(y_tr[k_tr])) < 2 or len(set(y_te[k_te])) < 2:
            out[e] = float("nan")
            continue
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        clf.fit(f_tr[k_tr], y_tr[k_tr] == e)
        out[e] = float(balanced_accuracy_score(y_te[k_te] == e, clf.predict(f_te[k_te])))
    return out


def run(session: Session, params: dict, progress: Progress | None = None) -> dict:
    """Params: `dataset` (optional, score on another dataset's test split, no refit);
    `source` ('generation': also fit on the model's own writing and compare, with a paired
    Wilcoxon test)."""
    progress = progress or Progress()
    params = validate(PARAMS, params, "layers")
    arrays, meta = session.load_arrays("activations.safetensors")
    ex = session.read_json("examples.json")
    emotions, baseline, layers = list(meta.emotions), meta.baseline, list(meta.layers)
    y_tr = np.array([lab for lab, _ in ex["train"]])
    y_te = np.array([lab for lab, _ in ex["test"]])
    x_tr = arrays["train"].astype(np.float32)
    x_te = arrays["test"].astype(np.float32)
    select = None
    if "dev" in arrays and ex.get("dev"):
        select = (arrays["dev"].astype(np.float32), np.array([lab for lab, _ in ex["dev"]]), "dev")
    loaded = {m: session.load_vectors(m) for m in session.methods()}
    vectors = {m: v for m, (v, _) in loaded.items()}
    # the parameters extract fitted each method with (chosen on dev); none in older sessions
    fitted = {m: json.loads(meta_m.extra.get("params", "{}")) for m, (_, meta_m) in loaded.items()}
    dataset = params.get("dataset")
    n_layers = int(session.manifest["model"]["layers"])
    # many small fits: BLAS threads only contend (10x slower on a busy 2-core box)
    with session.step("layers", params) as rec, threadpool_limits(1, user_api="blas"):
        if dataset:
            from .extract import load_split

            record_dataset(session, rec, dataset)
            model = session_model(session)
            try:
                examples, y_te = load_split(
                    dataset,
                    "test",
                    emotions + [baseline],
                    params["limit"],
                    int(session.manifest.get("seed", 0)),
                    params["dataset_params"],
                )
            except Exception as exc:
                raise BadInput(
                    f"--dataset {dataset} cannot be scored with this session's labels "
                    f"({', '.join(emotions + [baseline])}): {exc}"
                ) from None
            progress.task(f"capture {dataset} test", len(examples))
            x_te = capture(
                model,
                [e.text for e in examples],
                [f"blocks.{layer}.hook_resid_post" for layer in layers],
                meta.position,
                progress=progress,
                check=progress.check,
            )
        test_texts = [t for _, t in ex["test"]] if not dataset else [e.text for e in examples]
        surface = surface_baseline(
            [t for _, t in ex["train"]], y_tr, test_texts, y_te, emotions, baseline
        )
        rows, cosines = analyse(
            vectors,
            x_tr,
            y_tr,
            x_te,
            y_te,
            layers,
            emotions,
            baseline,
            n_layers,
            progress,
            surface=surface,
            select=select,
            fitted=fitted,
        )
        summary = summarise(rows, emotions, n_layers)
        probe = None
        if params["joint_probe"]:
            probe = joint_probe(
                x_tr, y_tr, select, x_te, y_te, layers, progress, seed=params["seed"]
            )
            rec["metrics"]["peak_acc7_probe"] = probe["peak_acc7_probe"]
            rec["metrics"]["peak_acc7_probe_shuffled"] = probe["peak_acc7_probe_shuffled"]
            rec.setdefault("choices", {})["peak_layer7_probe"] = {
                "value": [probe["peak_layer"], probe["C"]],
                "chosen_on": probe["chosen_on"],
            }
        sources = None
        if params["source"] == "generation":
            sources = compare_sources(
                session,
                params,
                meta,
                vectors,
                x_tr,
                y_tr,
                x_te,
                y_te,
                layers,
                emotions,
                baseline,
                n_layers,
                progress,
                seq=rec["seq"],
                fitted=fitted,
            )
            rec["outputs"] += [
                f"artifacts/generations-{rec['seq']:03d}.jsonl",
                f"artifacts/sources-{rec['seq']:03d}.csv",
            ]
            for m, t in sources["tests"].items():
                rec["metrics"][f"wilcoxon_p_acc/{m}"] = t["acc_wilcoxon_p"]
                rec["metrics"][f"wilcoxon_p_auc/{m}"] = t["auc_wilcoxon_p"]

        tag = f"-{rec['seq']:03d}" + (
            f"-{dataset.replace(':', '_').replace('/', '_')}" if dataset else ""
        )
        session.write_artifact(f"layers{tag}.csv", to_csv(rows))
        session.write_json(
            f"layers{tag}.json",
            {
                "rows": rows,
                "summary": summary,
                "cosines": cosines,
                "sources": sources,
                "joint_probe": probe,
            },
        )
        rec["outputs"] += [f"artifacts/layers{tag}.csv", f"artifacts/layers{tag}.json"]
        for m, s in summary.items():
            rec["metrics"][f"peak_layer/{m}"] = s["peak_layer"]
            rec["metrics"][f"peak_acc/{m}"] = s["peak_acc"]
            rec["metrics"][f"peak_acc7/{m}"] = s["peak_acc7"]
            rec.setdefault("choices", {})[f"peak_layer/{m}"] = {
                "value": s["peak_layer"],
                "chosen_on": s["chosen_on"],
            }
    progress.done()
    # the best method by its accuracy on the choosing split (dev), not by test
    best = max(summary, key=lambda m: summary[m]["peak_acc_select"])
    return {
        "rows": rows,
        "summary": summary,
        "cosines": cosines,
        "emotions": emotions,
        "best_method": best,
        "sources": sources,
        "joint_probe": probe,
    }
