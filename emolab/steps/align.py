"""Cross-model alignment of emotion geometry: two sessions that read the same texts.

Raw coordinates of two models are not comparable (a rotation of one model's residual
basis changes nothing about what it computes), so every comparison here goes through a
fitted map scored on held-out texts (Procrustes, CCA) or through basis-free geometry (CKA,
RSA), and every score is reported beside a permutation baseline (the same score with the
text pairing shuffled) and its p-value.
"""

from __future__ import annotations

import os

import numpy as np

from .. import plugins
from ..errors import BadInput
from ..params import Param, defaults, validate
from ..progress import Progress
from ..session import Session
from .common import emotion_vector, guarded, plugin_versions, session_model
from .guard import Guarded

METHODS = ("procrustes", "cca", "cka", "rsa")
PARAMS = (
    Param("session_b", str, None, "the second session (same texts, other model)"),
    Param("method", (str, list), "all", "registered aligners, or all", item=str),
    Param("layer_a", int, None, "layer of A (default: its steering layer)", min=0),
    Param("layer_b", int, None, "layer of B (default: its steering layer)", min=0),
    Param("dim", int, 32, "PCA dimension (aligners that declare `dim`)", min=1),
    Param("standardize", bool, True, "z-score each feature (train statistics) first"),
    Param("draws", int, 200, "permutation draws per score", min=1),
    Param("seed", int, 0),
    Param("transfer", bool, False, "steer B with A's vector mapped into B"),
    Param("transfer_alpha", float, 0.3, "relative strength of the transfer steering"),
    Param("transfer_prompts", int, 4, "neutral prompts steered", min=1),
    Param("transfer_judge", str, "auto", "evaluator of the transfer (auto: classifier if any)"),
    Param("transfer_aligner", str, "procrustes", "the aligner whose map carries the vector"),
    Param("aligner_params", dict, {}, "parameters for the aligners, by name: {name: {k: v}}"),
)
DEFAULTS = defaults(PARAMS)
RAW_COSINE_NOTE = (
    "Raw cosine compares coordinates of two unrelated bases: rotating one model's residual "
    "basis (and its weights with it) leaves the model's function unchanged, so even identical "
    "emotion geometry gives an expected raw cosine of ~0 (sd ~1/sqrt(d)). Only scores after "
    "alignment (Procrustes, CCA) or basis-free ones (CKA, RSA) say anything about shared geometry."
)
STANDARDIZE_NOTE = (
    "features z-scored per dimension with train statistics: a few massive-activation "
    "dimensions otherwise carry most of the variance and decide CKA, RSA and the PCA step alone"
)


class Scaler:
    """Per-feature z-scoring fitted on one split; directions scale by 1/sd on the way in and
    by sd on the way back, so a steering vector survives the round trip."""

    def __init__(self, x: np.ndarray, on: bool) -> None:
        self.mu = x.mean(0) if on else np.zeros(x.shape[1])
        self.sd = x.std(0) + 1e-6 if on else np.ones(x.shape[1])

    def rows(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mu) / self.sd

    def direction(self, v: np.ndarray) -> np.ndarray:
        return v / self.sd

    def back(self, v: np.ndarray) -> np.ndarray:
        return v * self.sd


def top_variance_share(x: np.ndarray) -> float:
    """Share of the total variance in the single largest-variance dimension."""
    var = x.var(0)
    return float(var.max() / var.sum()) if var.sum() > 0 else float("nan")


def p_value(observed: float, null: np.ndarray) -> float:
    """One-sided permutation p-value with the +1 correction (never exactly 0)."""
    return float((1 + np.sum(null >= observed)) / (1 + len(null)))


def summary(observed: float, null: np.ndarray) -> dict:
    return {
        "score": float(observed),
        "baseline_mean": float(np.mean(null)),
        "baseline_sd": float(np.std(null)),
        "baseline_p95": float(np.quantile(null, 0.95)),
        "p_value": p_value(observed, null),
        "draws": len(null),
    }


def check_same_texts(a: Session, b: Session) -> tuple[dict, dict]:
    """Both sessions' examples.json, or one line saying why they cannot be paired."""
    ea, eb = a.read_json("examples.json"), b.read_json("examples.json")
    for split in ("train", "test"):
        if ea[f"{split}_hash"] != eb[f"{split}_hash"]:
            raise BadInput(
                f"{a.path} and {b.path} hold different {split} texts (examples hash "
                f"{ea[f'{split}_hash'][:8]} vs {eb[f'{split}_hash'][:8]}); extract both with the "
                "same --dataset, --emotions, --baseline, --limit and --test-limit"
            )
    return ea, eb


def default_layer(session: Session, available: list[int]) -> int:
    """The session's steering default (analysed peak, else 2/3 depth), among captured layers."""
    from .shared import default_layer as steer_default

    want = steer_default(session)
    return min(available, key=lambda layer: abs(layer - want))


def pick_layer(session: Session, layer: int | None, available: list[int], which: str) -> int:
    if layer is None:
        return default_layer(session, available)
    if int(layer) not in available:
        raise BadInput(
            f"layer {layer} of session {which} was not captured (captured: "
            f"{','.join(map(str, available))})"
        )
    return int(layer)


def held_out_null(aligner, a_tr, b_tr, a_te, b_te, draws: int, rng, scorer) -> np.ndarray:
    """Null distribution of a held-out score: refit on a shuffled train pairing, score on a
    shuffled test pairing (under 'no correspondence' every pairing is as likely)."""
    out = []
    for _ in range(draws):
        pt, pe = rng.permutation(len(b_tr)), rng.permutation(len(b_te))
        fitted = aligner.with_params().fit(a_tr, b_tr[pt])
        out.append(scorer(fitted, a_te, b_te[pe]))
    return np.asarray(out)


def nn_accuracy(fitted, a_te, b_te, labels) -> tuple[float, float]:
    """Map A's held-out rows into B; is the nearest B row (cosine) the same text / label?"""
    x, y = fitted.transform(a_te), fitted.transform_b(b_te)
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    y = y / (np.linalg.norm(y, axis=1, keepdims=True) + 1e-12)
    nearest = (x @ y.T).argmax(1)
    return (float(np.mean(nearest == np.arange(len(x)))), float(np.mean(labels[nearest] == labels)))


def _cos(u: np.ndarray, v: np.ndarray) -> float:
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-12))


def gram_cka_matrix(xa: np.ndarray, xb: np.ndarray, standardize: bool = False) -> np.ndarray:
    """Linear CKA between every layer of A and every layer of B, `[La, Lb]`.

    Works on centred n x n Gram matrices (one per layer, unit Frobenius norm), so all pairs
    come from one matrix product instead of La x Lb feature-space products."""

    def grams(x: np.ndarray) -> np.ndarray:
        out = []
        for i in range(x.shape[1]):
            h = x[:, i].astype(np.float64)
            h = h - h.mean(0)
            if standardize:
                h = h / (h.std(0) + 1e-6)
            k = h @ h.T
            out.append((k / np.linalg.norm(k)).astype(np.float32).ravel())
        return np.stack(out)

    return (grams(xa) @ grams(xb).T).astype(np.float64)


def centroids(x: np.ndarray, y: np.ndarray, labels: list[str]) -> np.ndarray:
    """Class means after removing the overall mean (the shared anisotropic offset)."""
    mu = x.mean(0)
    return np.stack([x[y == lab].mean(0) - mu for lab in labels])


def run(session: Session, params: dict, progress: Progress | None = None) -> dict:
    """Align `session` (A) with `params['session_b']` (B). Params: method (one of METHODS or
    'all'), layer_a / layer_b (default: each session's steering layer), dim, draws, seed,
    transfer (steer B with A's mapped vector; loads model B)."""
    progress = progress or Progress()
    p = validate(PARAMS, params, "align")
    if not p["session_b"]:
        raise BadInput("align needs a second session")
    given = [p["method"]] if isinstance(p["method"], str) else p["method"]
    given = [m.strip() for g in given for m in g.split(",") if m.strip()]
    methods = list(METHODS) if given == ["all"] else given
    for m in methods:
        plugins.registry().get("aligners", m)  # an unknown name: one line listing the known
        if m not in METHODS:
            raise BadInput(
                f"aligner '{m}' is registered, but the align step runs only "
                f"{', '.join(METHODS)} so far (third-party aligners: not done yet)"
            )
    if int(p["draws"]) < 1:
        raise BadInput("draws must be at least 1")
    sb = Session.open(p["session_b"])
    ex_a, _ = check_same_texts(session, sb)
    arr_a, meta_a = session.load_arrays("activations.safetensors")
    arr_b, meta_b = sb.load_arrays("activations.safetensors")
    layers_a, layers_b = list(meta_a.layers), list(meta_b.layers)
    la = pick_layer(session, p["layer_a"], layers_a, "A")
    lb = pick_layer(sb, p["layer_b"], layers_b, "B")
    p["layer_a"], p["layer_b"] = la, lb
    emotions, baseline = list(meta_a.emotions), meta_a.baseline
    labels = emotions + [baseline]
    y_tr = np.array([lab for lab, _ in ex_a["train"]])
    y_te = np.array([lab for lab, _ in ex_a["test"]])

    def layer(arrays, layers, lay, split):
        return arrays[split][:, layers.index(lay)].astype(np.float64)

    a_tr, a_te = layer(arr_a, layers_a, la, "train"), layer(arr_a, layers_a, la, "test")
    b_tr, b_te = layer(arr_b, layers_b, lb, "train"), layer(arr_b, layers_b, lb, "test")
    vec_a, _ = session.load_vectors()
    vec_b, _ = sb.load_vectors()
    n_a, n_b = int(session.manifest["model"]["layers"]), int(sb.manifest["model"]["layers"])
    va = {e: emotion_vector(vec_a, e, n_a)[la].astype(np.float64) for e in emotions}
    vb = {e: emotion_vector(vec_b, e, n_b)[lb].astype(np.float64) for e in emotions}
    top_share = {"a": top_variance_share(a_tr), "b": top_variance_share(b_tr)}
    sc_a, sc_b = Scaler(a_tr, bool(p["standardize"])), Scaler(b_tr, bool(p["standardize"]))
    a_tr, a_te, b_tr, b_te = sc_a.rows(a_tr), sc_a.rows(a_te), sc_b.rows(b_tr), sc_b.rows(b_te)
    va_z = {e: sc_a.direction(v) for e, v in va.items()}
    vb_z = {e: sc_b.direction(v) for e, v in vb.items()}

    reg = plugins.registry()
    rng = np.random.default_rng(int(p["seed"]))
    draws = int(p["draws"])
    result: dict = {
        "session_a": str(session.path),
        "session_b": str(sb.path),
        "model_a": session.model_name,
        "model_b": sb.model_name,
        "layer_a": la,
        "layer_b": lb,
        "d_a": a_tr.shape[1],
        "d_b": b_tr.shape[1],
        "n_train": len(a_tr),
        "n_test": len(a_te),
        "emotions": emotions,
        "standardized": bool(p["standardize"]),
        "standardize_note": STANDARDIZE_NOTE if p["standardize"] else None,
        "top_dim_variance_share": top_share,
        "methods": {},
    }
    if a_tr.shape[1] == b_tr.shape[1]:
        result["raw_cosine"] = {e: _cos(va[e], vb[e]) for e in emotions}
    else:
        result["raw_cosine"] = None
    result["raw_cosine_note"] = (
        RAW_COSINE_NOTE
        if result["raw_cosine"] is not None
        else f"widths differ ({a_tr.shape[1]} vs {b_tr.shape[1]}): no raw cosine exists. "
        + RAW_COSINE_NOTE
    )
    used = plugin_versions("aligners", methods)
    from threadpoolctl import threadpool_limits

    threads = int(os.environ.get("EMOLAB_THREADS") or min(os.cpu_count() or 1, 4))
    with session.step("align", p, used) as rec, threadpool_limits(max(1, threads)):
        rec["inputs"].update(
            session_b=str(sb.path), train_hash=ex_a["train_hash"], test_hash=ex_a["test_hash"]
        )
        # what align reads of the other session, so replay notices if it changed since
        for part in ("artifacts/activations.safetensors", "artifacts/examples.json"):
            session.add_input(rec, f"session_b:{part.split('/')[-1]}", sb.path / part)
        session.add_input(rec, "session_b:vectors", sb.vectors_path())
        progress.task("align " + ", ".join(methods), len(methods) + 1)
        for i, m in enumerate(methods):
            progress.check()
            out = _method(
                m,
                reg,
                p,
                a_tr,
                b_tr,
                a_te,
                b_te,
                y_tr,
                y_te,
                va_z,
                vb_z,
                labels,
                emotions,
                draws,
                rng,
            )
            result["methods"][m] = out
            progress.update(i + 1)
        cka = gram_cka_matrix(
            np.concatenate([arr_a["train"], arr_a["test"]]),
            np.concatenate([arr_b["train"], arr_b["test"]]),
            bool(p["standardize"]),
        )
        best = {layers_a[i]: layers_b[int(cka[i].argmax())] for i in range(len(layers_a))}
        result["cka_layers"] = {
            "layers_a": layers_a,
            "layers_b": layers_b,
            "matrix": cka.tolist(),
            "best_b_for_a": best,
        }
        progress.update(len(methods) + 1)
        if p["transfer"]:
            result["transfer"] = transfer(
                session, sb, p, a_tr, b_tr, va_z, vb, sc_b, emotions, progress
            )
        seq = rec["seq"]
        name = f"align-{seq:03d}.json"
        session.write_json(name, result)
        session.write_artifact(f"align-{seq:03d}-cka-layers.csv", _cka_csv(cka, layers_a, layers_b))
        rec["outputs"] = [f"artifacts/{name}", f"artifacts/align-{seq:03d}-cka-layers.csv"]
        for m, out in result["methods"].items():
            for key, val in out.items():
                if isinstance(val, dict) and "score" in val:
                    rec["metrics"][f"{m}/{key}"] = val["score"]
                    rec["metrics"][f"{m}/{key}_p"] = val["p_value"]
        for key, val in result.get("transfer", {}).get("metrics", {}).items():
            rec["metrics"][f"transfer/{key}"] = val
    progress.done()
    return result


def _cka_csv(cka: np.ndarray, layers_a: list[int], layers_b: list[int]) -> str:
    head = "layer_a," + ",".join(f"b{lb}" for lb in layers_b)
    rows = [
        f"{la}," + ",".join(f"{v:.4f}" for v in row) for la, row in zip(layers_a, cka, strict=True)
    ]
    return "\n".join([head, *rows]) + "\n"


def _method(
    m, reg, p, a_tr, b_tr, a_te, b_te, y_tr, y_te, va, vb, labels, emotions, draws, rng
) -> dict:
    """One method's scores, each with its permutation baseline."""
    if m == "cka":
        aligner = Guarded("aligners", reg.get("aligners", "cka"))
        a_all, b_all = np.concatenate([a_tr, a_te]), np.concatenate([b_tr, b_te])
        score = guarded("aligners", aligner, "score", a_all, b_all)
        null = aligner.permutation_baseline(a_all, b_all, draws, int(rng.integers(1 << 31)))
        return {"cka": summary(score, null)}
    if m == "rsa":
        aligner = Guarded("aligners", reg.get("aligners", "rsa"))
        y_all = np.concatenate([y_tr, y_te])
        ca = centroids(np.concatenate([a_tr, a_te]), y_all, labels)
        cb = centroids(np.concatenate([b_tr, b_te]), y_all, labels)
        score = guarded("aligners", aligner, "score", ca, cb)
        null = aligner.permutation_baseline(ca, cb, draws, int(rng.integers(1 << 31)))
        return {
            "rsa_centroids": summary(score, null),
            "labels": labels,
            "rdm_a": aligner.rdm(ca).tolist(),
            "rdm_b": aligner.rdm(cb).tolist(),
        }
    aligner = Guarded("aligners", reg.get("aligners", m, dim=p["dim"]))
    fitted = guarded("aligners", aligner, "fit", a_tr, b_tr)
    if m == "cca":
        corr = fitted.correlations(a_te, b_te)
        # CCA is invariant to invertible maps of each side: the null works in PCA coordinates
        null = held_out_null(
            aligner,
            fitted.pca_a_.transform(a_tr),
            fitted.pca_b_.transform(b_tr),
            fitted.pca_a_.transform(a_te),
            fitted.pca_b_.transform(b_te),
            draws,
            rng,
            lambda f, a, b: f.score(a, b),
        )
        return {
            "mean_corr_held_out": summary(float(corr.mean()), null),
            "held_out_correlations": corr.tolist(),
            "train_correlations": fitted.correlations_.tolist(),
        }
    # procrustes: held-out cosine, nearest-neighbour retrieval, mapped emotion vectors.
    # PCA does not depend on the row order, so the null refits only the rotation, on the
    # PCA coordinates computed once (scores are invariant to the basis inside the subspace).
    ra_tr, ra_te = fitted.pca_a_.transform(a_tr), fitted.pca_a_.transform(a_te)
    rb_tr, rb_te = fitted.pca_b_.transform(b_tr), fitted.pca_b_.transform(b_te)
    comps_a, comps_b = fitted.pca_a_.components_, fitted.pca_b_.components_
    nulls = {"cos": [], "nn_pair": [], "nn_label": [], "vec": []}
    for _ in range(draws):
        pt, pe = rng.permutation(len(b_tr)), rng.permutation(len(b_te))
        f = aligner.with_params().fit(ra_tr, rb_tr[pt])
        nulls["cos"].append(f.score(ra_te, rb_te[pe]))
        pair, lab = nn_accuracy(f, ra_te, rb_te[pe], y_te)
        nulls["nn_pair"].append(pair)
        nulls["nn_label"].append(lab)
        nulls["vec"].append(
            np.mean([_cos(f.map_direction(comps_a @ va[e]) @ comps_b, vb[e]) for e in emotions])
        )
    nulls = {k: np.asarray(v) for k, v in nulls.items()}
    pair, lab = nn_accuracy(fitted, a_te, b_te, y_te)
    mapped = {e: _cos(fitted.map_direction(va[e]), vb[e]) for e in emotions}
    comps = fitted.pca_b_.components_
    ceiling = {e: float(np.linalg.norm(comps @ vb[e]) / np.linalg.norm(vb[e])) for e in emotions}
    return {
        "mean_cos_held_out": summary(fitted.score(a_te, b_te), nulls["cos"]),
        "nn_pair_accuracy": summary(pair, nulls["nn_pair"]),
        "nn_label_accuracy": summary(lab, nulls["nn_label"]),
        "mapped_vector_cos": summary(float(np.mean(list(mapped.values()))), nulls["vec"]),
        "mapped_vector_cos_by_emotion": mapped,
        "mapped_vector_cos_ceiling": ceiling,
        "chance_nn_pair": 1.0 / len(a_te),
        "dim": int(fitted.rotation_.shape[0]),
    }


def transfer(
    sa: Session, sb: Session, p: dict, a_tr, b_tr, va, vb, sc_b: Scaler, emotions, progress
) -> dict:
    """Steer model B with A's vector mapped into B (Procrustes), beside B's own vector and a
    random one of the same norm, each at the same relative strength, judged by the
    classifier evaluator when it is installed, else by the label-logit shift. `a_tr`, `b_tr`
    and `va` are in the (possibly standardised) alignment space, `vb` in B's raw space."""
    from ..api import Run
    from ..data import NEUTRAL_PROMPTS
    from ..runner import generate

    reg = plugins.registry()
    judge = p["transfer_judge"]
    if judge == "auto":
        judge = "classifier" if "classifier" in reg.names("evaluators") else "label_logit_shift"
    model = session_model(sb)
    fitted = Guarded("aligners", reg.get("aligners", "procrustes", dim=p["dim"])).fit(a_tr, b_tr)
    norms = np.asarray(sb.read_json("layer_norms.json")["mean_resid_norm"])
    prompts = list(NEUTRAL_PROMPTS[: int(p["transfer_prompts"])])
    rng = np.random.default_rng(int(p["seed"]))
    evaluators = [
        reg.get("evaluators", name) for name in dict.fromkeys([judge, "label_logit_shift"])
    ]
    lb = int(p["layer_b"])
    rows, metrics = [], {}
    progress.task(f"transfer steering ({judge})", len(emotions) * 3 + 1)
    base = generate(model, prompts, (), 24, check=progress.check)
    done = 1
    for e in emotions:
        candidates = {
            "mapped": sc_b.back(fitted.map_direction(va[e])),
            "own": vb[e],
            "random": rng.standard_normal(len(vb[e])),
        }
        for kind, vec in candidates.items():
            progress.check()
            inter = reg.get(
                "interventions",
                "residual_add",
                layer=lb,
                alpha=p["transfer_alpha"],
                scale="relative",
            )
            hooks = guarded(
                "interventions", inter, "hooks", model, vector=vec.astype(np.float32), norms=norms
            )
            steered = generate(model, prompts, hooks, 24, check=progress.check)
            run_ = Run(model, prompts, base, steered, hooks, emotions, e)
            scores = {}
            for ev in evaluators:
                scores.update(guarded("evaluators", ev, "evaluate", run_))
            rows.append(
                {
                    "emotion": e,
                    "vector": kind,
                    **{k: v for k, v in scores.items() if "/" not in k},
                    "example": steered[0],
                }
            )
            done += 1
            progress.update(done)
    keys = [k for k in rows[0] if k not in ("emotion", "vector", "example")]
    for kind in ("mapped", "own", "random"):
        for k in keys:
            metrics[f"{kind}/{k}"] = float(np.mean([r[k] for r in rows if r["vector"] == kind]))
    return {
        "judge": judge,
        "alpha": p["transfer_alpha"],
        "layer_b": lb,
        "rows": rows,
        "metrics": metrics,
    }
