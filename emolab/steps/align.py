"""Cross-model alignment of emotion geometry: two sessions that read the same texts.

Raw coordinates of two models are not comparable (a rotation of one model's residual
basis changes nothing about what it computes), so every comparison here goes through a
fitted map scored on held-out texts (Procrustes, CCA, a plugin's ridge map) or through
basis-free geometry (CKA, RSA), and every score is reported beside a permutation baseline
(the same score with the text pairing shuffled) and its p-value. Aligners are found by
name in the registry and used only through the `emolab.api.Aligner` contract
(`align_scores.score_aligner`), so a plugin's aligner runs exactly as a built-in does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from .. import plugins
from ..api import Aligner
from ..errors import BadInput
from ..params import Param, defaults, validate
from ..progress import Progress
from ..session import Session
from .align_scores import Pairs, Scaler, cos, gram_cka_matrix, score_aligner, top_variance_share
from .common import configured, emotion_vector, plugin_versions

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
    Param("aligner_params", dict, {}, "parameters of the aligners, by name: {name: {k: v}}"),
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


def method_names(method) -> list[str]:
    """The aligners asked for, in the registry's order for 'all'; an unknown name is one
    line listing the registered aligners."""
    reg = plugins.registry()
    given = [method] if isinstance(method, str) else method
    given = [m.strip() for g in given for m in g.split(",") if m.strip()]
    if given == ["all"]:
        return list(reg.components["aligners"])
    for name in given:
        reg.get("aligners", name)
    return list(dict.fromkeys(given))


def resolve_aligners(p: dict) -> tuple[dict[str, Aligner], Aligner | None]:
    """Every aligner the run uses, configured and validated before any data loads: the
    step's `dim` for those that declare it, then the user's `aligner_params[name]`. The
    transfer aligner (with `transfer`) must be able to map directions."""
    names = method_names(p["method"])
    transfer_name = p["transfer_aligner"] if p["transfer"] else None
    if transfer_name is not None:
        plugins.registry().get("aligners", transfer_name)
    given = p["aligner_params"]
    usable = set(names) | ({transfer_name} if transfer_name else set())
    for name, values in given.items():
        if name not in usable:
            raise BadInput(
                f"align: parameters given for aligner '{name}', which this run does not use "
                f"(it runs {', '.join(sorted(usable))})"
            )
        if not isinstance(values, Mapping):
            raise BadInput(f"align: aligner_params['{name}'] must be a mapping of key: value")

    def make(name: str) -> Aligner:
        return configured("aligners", name, {"dim": p["dim"]}, dict(given.get(name, {})))

    chosen = {name: make(name).with_params() for name in names}
    mapper = None
    if transfer_name is not None:
        mapper = make(transfer_name).with_params()
        if not (mapper.learns_map and mapper.maps_directions):
            able = [
                n
                for n, c in plugins.registry().components["aligners"].items()
                if c.learns_map and c.maps_directions
            ]
            raise BadInput(
                f"aligner '{transfer_name}' cannot map directions, so it cannot carry a vector "
                f"for --transfer (aligners that can: {', '.join(able) or 'none'})"
            )
    return chosen, mapper


def _layer_rows(arrays, layers: list[int], layer: int, split: str) -> np.ndarray:
    return arrays[split][:, layers.index(layer)].astype(np.float64)


def run(session: Session, params: dict, progress: Progress | None = None) -> dict:
    """Align `session` (A) with `params['session_b']` (B): every aligner in `method`
    (registered names, or all), at layer_a / layer_b (default: each session's steering
    layer); `transfer` steers B with A's vector mapped by `transfer_aligner` (loads B)."""
    progress = progress or Progress()
    p = validate(PARAMS, params, "align")
    if not p["session_b"]:
        raise BadInput("align needs a second session")
    chosen, mapper = resolve_aligners(p)
    p["method"] = list(chosen)
    p["aligner_params"] = {n: c.get_params() for n, c in chosen.items()}
    if mapper is not None:
        p["aligner_params"].setdefault(mapper.name, mapper.get_params())
    sb = Session.open(p["session_b"])
    ex_a, _ = check_same_texts(session, sb)
    arr_a, meta_a = session.load_arrays("activations.safetensors")
    arr_b, meta_b = sb.load_arrays("activations.safetensors")
    layers_a, layers_b = list(meta_a.layers), list(meta_b.layers)
    la = pick_layer(session, p["layer_a"], layers_a, "A")
    lb = pick_layer(sb, p["layer_b"], layers_b, "B")
    p["layer_a"], p["layer_b"] = la, lb
    emotions, baseline = list(meta_a.emotions), meta_a.baseline

    a_tr, a_te = _layer_rows(arr_a, layers_a, la, "train"), _layer_rows(arr_a, layers_a, la, "test")
    b_tr, b_te = _layer_rows(arr_b, layers_b, lb, "train"), _layer_rows(arr_b, layers_b, lb, "test")
    vec_a, _ = session.load_vectors()
    vec_b, _ = sb.load_vectors()
    n_a, n_b = int(session.manifest["model"]["layers"]), int(sb.manifest["model"]["layers"])
    va = {e: emotion_vector(vec_a, e, n_a)[la].astype(np.float64) for e in emotions}
    vb = {e: emotion_vector(vec_b, e, n_b)[lb].astype(np.float64) for e in emotions}
    top_share = {"a": top_variance_share(a_tr), "b": top_variance_share(b_tr)}
    sc_a, sc_b = Scaler(a_tr, bool(p["standardize"])), Scaler(b_tr, bool(p["standardize"]))
    data = Pairs(
        sc_a.rows(a_tr),
        sc_b.rows(b_tr),
        sc_a.rows(a_te),
        sc_b.rows(b_te),
        np.array([lab for lab, _ in ex_a["train"]]),
        np.array([lab for lab, _ in ex_a["test"]]),
        [*emotions, baseline],
        emotions,
        {e: sc_a.direction(v) for e, v in va.items()},
        {e: sc_b.direction(v) for e, v in vb.items()},
    )
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
    same_width = a_tr.shape[1] == b_tr.shape[1]
    result["raw_cosine"] = {e: cos(va[e], vb[e]) for e in emotions} if same_width else None
    result["raw_cosine_note"] = (
        RAW_COSINE_NOTE
        if same_width
        else f"widths differ ({a_tr.shape[1]} vs {b_tr.shape[1]}): no raw cosine exists. "
        + RAW_COSINE_NOTE
    )
    used = plugin_versions(
        "aligners", list(dict.fromkeys([*chosen, *([mapper.name] if mapper else [])]))
    )
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
        progress.task("align " + ", ".join(chosen), len(chosen) + 1)
        for i, (name, aligner) in enumerate(chosen.items()):
            progress.check()
            result["methods"][name] = score_aligner(aligner, data, int(p["draws"]), p["seed"])
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
        progress.update(len(chosen) + 1)
        if mapper is not None:
            from .align_transfer import transfer

            result["transfer"] = transfer(sb, p, mapper, data, vb, sc_b, progress)
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
