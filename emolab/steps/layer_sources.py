"""`emolab layers --source generation`: directions fit on what the model itself wrote
beside the comprehension directions of the session, read out on one labelled test set."""

from __future__ import annotations

import json

import numpy as np

from .. import plugins
from ..errors import BadInput
from ..progress import Progress
from ..session import Session
from ..tables import to_csv
from .common import emotion_vector, session_model
from .guard import fit_directions
from .readout import binary_scores, cosine, unit


def fit_vectors(
    method: str,
    x: np.ndarray,
    y: np.ndarray,
    texts,
    emotions,
    baseline,
    hooks,
    model,
    progress: Progress,
    params: dict | None = None,
) -> dict[str, np.ndarray]:
    """Fit one method (with `params`) on `[n, H, d]` activations: emotion -> `[H, d]`."""
    ext = plugins.registry().get("extractors", method, **(params or {}))
    out = {}
    for e in emotions:
        progress.check()
        pos, neg = x[y == e], x[y == baseline]
        if ext.needs_model:
            context = {
                "model": model,
                "hooks": hooks,
                "labels": emotions + [baseline],
                "emotion": e,
                "baseline": baseline,
                "check": progress.check,
                "pos_texts": [t for t, lab in zip(texts, y, strict=True) if lab == e],
                "neg_texts": [t for t, lab in zip(texts, y, strict=True) if lab == baseline],
            }
            out[e] = fit_directions(ext, pos, neg, context)
        else:
            out[e] = fit_directions(ext, pos, neg)
    return out


def compare_sources(
    session: Session,
    params: dict,
    meta: dict,
    vectors: dict,
    x_tr,
    y_tr,
    x_te,
    y_te,
    layers,
    emotions,
    baseline,
    n_layers,
    progress,
    seq: int = 0,
    fitted: dict[str, dict] | None = None,
) -> dict:
    """Generation- vs comprehension-based directions on the same labelled held-out test set.

    The generation directions are fit on what the model wrote; both sources are then read
    out identically (threshold from the labelled train split, AUC needs none), and a paired
    Wilcoxon test runs over (layer, emotion) pairs for each method.
    """
    from scipy.stats import wilcoxon

    from .generation import generation_activations

    if meta.source != "comprehension":
        raise BadInput(
            "--source generation compares against a comprehension session; "
            "this session's vectors are already generation-based"
        )
    model = session_model(session)
    hooks = [f"blocks.{layer}.hook_resid_post" for layer in layers]
    labels = emotions + [baseline]
    samples = int(params.get("samples") or min(int((y_tr == lab).sum()) for lab in labels))
    progress.task(f"generate {samples} texts per label", samples * len(labels))
    xg, yg, written = generation_activations(
        model,
        labels,
        baseline,
        hooks,
        meta.position,
        samples,
        int(params.get("seed", 0)),
        int(params.get("gen_tokens", 40)),
        progress=progress,
        check=progress.check,
    )
    texts = [r["text"] for r in written]
    rows, tests = [], {}
    # DAS would re-run the model for every gradient step on the generated texts: left out
    compared = {m: v for m, v in vectors.items() if not plugins.get("extractors", m).needs_model}
    for method, vecs in compared.items():
        gen = fit_vectors(
            method,
            xg,
            yg,
            texts,
            emotions,
            baseline,
            hooks,
            model,
            progress,
            (fitted or {}).get(method),
        )
        for li, layer in enumerate(layers):
            xt, xe = x_tr[:, li].astype(np.float64), x_te[:, li].astype(np.float64)
            for e in emotions:
                k_tr = (y_tr == e) | (y_tr == baseline)
                k_te = (y_te == e) | (y_te == baseline)
                args = (xt[k_tr], y_tr[k_tr] == e, xe[k_te], y_te[k_te] == e)
                comp = emotion_vector(vecs, e, n_layers)[layer].astype(np.float64)
                acc_c, auc_c, _ = binary_scores(unit(comp), *args)
                acc_g, auc_g, _ = binary_scores(unit(gen[e][li].astype(np.float64)), *args)
                rows.append(
                    {
                        "method": method,
                        "emotion": e,
                        "layer": layer,
                        "acc_comprehension": acc_c,
                        "acc_generation": acc_g,
                        "auc_comprehension": auc_c,
                        "auc_generation": auc_g,
                        "cos_sources": cosine(comp, gen[e][li].astype(np.float64)),
                    }
                )
    for method in [*compared, "all"]:
        mine = [r for r in rows if method in ("all", r["method"])]
        entry = {"n_pairs": len(mine)}
        for metric in ("acc", "auc"):
            c = np.array([r[f"{metric}_comprehension"] for r in mine])
            g = np.array([r[f"{metric}_generation"] for r in mine])
            ok = np.isfinite(c) & np.isfinite(g)
            try:
                p = float(wilcoxon(c[ok], g[ok]).pvalue)
            except ValueError:  # every difference is zero: nothing to test
                p = float("nan")
            entry.update(
                {
                    f"{metric}_comprehension": float(c[ok].mean()),
                    f"{metric}_generation": float(g[ok].mean()),
                    f"{metric}_wilcoxon_p": p,
                }
            )
        tests[method] = entry
    session.write_artifact(
        f"generations-{seq:03d}.jsonl",
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in written),
    )
    session.write_artifact(f"sources-{seq:03d}.csv", to_csv(rows))
    return {"rows": rows, "tests": tests, "samples_per_label": samples, "n_generated": len(texts)}
