"""Steering sweep: emotions x layers x alphas on neutral prompts, each cell judged by the
external classifier, the label-logit shift and the perplexity regime.

Cells are written to a csv artifact as they finish (atomically), keyed by everything that
changes a cell's numbers; re-running the same sweep reads that file and computes only the
missing cells, so a sweep cut off on a laptop resumes where it stopped.

With `circuits` (top-k sizes) the same grid also runs circuit modulation: the emotion's k
strongest heads from the session's latest head map (`emolab heads`) scaled by each of
`circuit_factors` instead of adding the vector. Those rows have intervention
`circuit-top<k>`, layer -1 and alpha = the factor, so both kinds sit in one judged table.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json

import numpy as np

from .. import plugins
from ..api import Run
from ..data import NEUTRAL_PROMPTS, list_prompt
from ..errors import BadInput
from ..progress import Progress
from ..runner import generate, label_token_ids, last_logits
from ..session import Session
from . import success as sx
from .common import emotion_vector, guarded, parse_layers, plugin_versions, session_model
from .heads import circuit_heads
from .steer import vectors_for

DEFAULTS = {
    "emotions": ["anger", "disgust", "fear", "joy", "sadness", "surprise"],
    "layers": None,  # default: a third, half and two thirds of the depth
    "alphas": [0.15, 0.3, 0.5, 0.75],
    "scale": "relative",
    "positions": "all",
    "method": None,
    "vector_file": None,
    "prompts": list(NEUTRAL_PROMPTS),
    "max_new_tokens": 24,
    "batch_size": 20,
    "judge": "ensemble",
    "judge_train_limit": 16000,
    "max_ratio": 3.0,
    "min_distinct2": 0.5,
    "max_distinct_drop": 0.6,
    "min_surgical_share": 0.5,
    "circuits": [],  # top-k head counts for circuit modulation (empty: residual only)
    "circuit_factors": [2.0, 4.0],
}
GRID = ("emotions", "layers", "alphas", "min_surgical_share", "circuits", "circuit_factors")
RESIDUAL = "residual"
COLUMNS = (
    "emotion",
    "intervention",
    "layer",
    "alpha",
    "p_target_baseline",
    "p_target",
    "p_target_rise",
    "top_is_target",
    "p_target_minilm",
    "p_target_tfidf",
    "judge_agreement",
    "label_logit_shift",
    "label_logit_shift_vs_others",
    "perplexity_ratio",
    "distinct2",
    "distinct2_baseline",
    "regime",
    "surgical_share",
    "heads",
    "success",
    "success_dev",
    "success_test",
    "success_baseline_dev",
    "success_baseline_test",
    "success_random_dev",
    "success_random_test",
    "p_target_dev",
    "p_target_test",
)
TEXT_COLUMNS = ("emotion", "intervention", "regime", "heads")
REGIMES = ("surgical", "repetitive", "explosive")


def check_params(p: dict) -> None:
    """Bad grids fail before any model is loaded, with one line each."""
    if not p["emotions"]:
        raise BadInput("no emotions given")
    if not p["alphas"]:
        raise BadInput("alpha list is empty (give e.g. --alphas 0.1,0.3,0.5)")
    for a in p["alphas"]:
        if not np.isfinite(float(a)):
            raise BadInput(f"alpha must be a finite number, got {a!r}")
    prompts = [str(x) for x in p["prompts"]]
    if not prompts:
        raise BadInput("no prompts (the prompts file is empty)")
    if any(not x.strip() for x in prompts):
        raise BadInput("empty prompt")
    if int(p["max_new_tokens"]) < 2:
        raise BadInput("max_new_tokens must be at least 2")
    if any(int(k) < 1 for k in p["circuits"]):
        raise BadInput("circuit sizes must be at least 1 head")
    if p["circuits"] and not p["circuit_factors"]:
        raise BadInput("circuit factor list is empty (give e.g. --circuit-factors 2,4)")


def sweep_key(p: dict, vector_meta: dict) -> str:
    """What makes a cell's numbers: everything but the grid itself."""
    fixed = {k: p[k] for k in DEFAULTS if k not in GRID}
    h = hashlib.sha256(json.dumps([fixed, vector_meta], sort_keys=True, default=str).encode())
    return h.hexdigest()[:10]


def read_cells(session: Session, name: str) -> dict[tuple, dict]:
    path = session.artifact(name)
    if not path.is_file():
        return {}
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    out = {}
    for r in rows:
        r = {"intervention": RESIDUAL, "heads": "", **r}  # files from before circuits
        # files from before success rates read NaN there
        cell = {c: r[c] if c in TEXT_COLUMNS else float(r.get(c, "nan")) for c in COLUMNS}
        cell["layer"] = int(cell["layer"])
        out[cell_key(cell)] = cell
    return out


def cell_key(cell: dict) -> tuple:
    return (cell["emotion"], cell["intervention"], cell["layer"], cell["alpha"])


def write_cells(session: Session, name: str, cells: dict[tuple, dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for key in sorted(cells):
        w.writerow({c: cells[key][c] for c in COLUMNS})
    session.write_artifact(name, buf.getvalue())


def best_surgical(cells: list[dict], min_share: float = 0.5) -> dict[str, dict | None]:
    """Per emotion, the surgical cell with the largest rise in P(target). The cell's regime
    is judged on all its texts pooled, so at least `min_share` of its single texts must be
    surgical too: a pooled ratio can hide a few degenerate continuations. Callers pass one
    intervention kind at a time."""
    out: dict[str, dict | None] = {}
    for c in cells:
        out.setdefault(c["emotion"], None)
        if c["regime"] != "surgical" or float(c["surgical_share"]) < min_share:
            continue
        best = out[c["emotion"]]
        if best is None or float(c["p_target_rise"]) > float(best["p_target_rise"]):
            out[c["emotion"]] = c
    return out


def run(session: Session, params: dict, progress: Progress | None = None) -> dict:
    progress = progress or Progress()
    p = {**DEFAULTS, **params}
    p["alphas"] = [float(a) for a in p["alphas"]]
    p["emotions"] = list(p["emotions"])
    p["circuits"] = [int(k) for k in p["circuits"]]
    p["circuit_factors"] = [float(f) for f in p["circuit_factors"]]
    check_params(p)
    n_layers = int(session.manifest["model"]["layers"])
    if p["layers"] is None:
        p["layers"] = sorted({n_layers // 3, n_layers // 2, 2 * n_layers // 3})
    p["layers"] = parse_layers(
        p["layers"] if isinstance(p["layers"], list) else str(p["layers"]), n_layers
    )
    prompts = [str(x) for x in p["prompts"]]
    vectors, meta = vectors_for(session, p["method"], p["vector_file"])
    vecs = {e: emotion_vector(vectors, e, n_layers) for e in p["emotions"]}
    for e, v in vecs.items():
        for layer in p["layers"]:
            if not np.isfinite(v[layer]).all():
                raise BadInput(f"no '{e}' vector at layer {layer} in this vector set")
    circuit_specs = circuit_grid(session, p)
    all_emotions = [e for e in meta.get("emotions", "").split(",") if e] or sorted(vecs)
    norms = np.asarray(session.read_json("layer_norms.json")["mean_resid_norm"])
    reg = plugins.registry()
    judge = reg.get(
        "evaluators", "classifier", judge=p["judge"], train_limit=p["judge_train_limit"]
    )
    ppl = reg.get(
        "evaluators",
        "perplexity_ratio",
        max_ratio=p["max_ratio"],
        min_distinct2=p["min_distinct2"],
        max_distinct_drop=p["max_distinct_drop"],
    )
    key = sweep_key(p, {k: v for k, v in meta.items() if k != "created"})
    name = f"sweep-{key}.csv"
    texts_name = f"sweep-{key}-texts.jsonl"
    cells = read_cells(session, name)
    grid = [
        (e, RESIDUAL, layer, a) for e in p["emotions"] for layer in p["layers"] for a in p["alphas"]
    ] + [
        (e, f"circuit-top{k}", -1, f)
        for e in p["emotions"]
        for k in p["circuits"]
        for f in p["circuit_factors"]
    ]
    # a circuit cell is stale when the head map behind it changed
    todo = [
        g
        for g in grid
        if g not in cells
        or cells[g]["heads"] != circuit_specs.get((g[0], g[1]), "")
        or not np.isfinite(cells[g]["success"])  # a cell from before success rates
    ]
    kinds = ["residual_add"] + (["enhance"] if p["circuits"] else [])
    used = {
        **plugin_versions("interventions", kinds),
        **plugin_versions("evaluators", ["classifier", "perplexity_ratio"]),
    }
    with session.step("sweep", p, used) as rec:
        model = session_model(session)
        progress.task("judge: load or train the classifier", 0)
        j = guarded("evaluators", judge, "judge_obj")
        base_path = session.artifact(f"sweep-{key}-baseline.json")
        if base_path.is_file():
            base = session.read_json(base_path.name)["texts"]
        else:
            progress.task(f"generate baseline ({len(prompts)} prompts)", len(prompts))
            base = generate(
                model, prompts, (), p["max_new_tokens"], p["batch_size"], check=progress.check
            )
            session.write_json(base_path.name, {"prompts": prompts, "texts": base})
        base_probs = j.proba(base, p["judge"])
        halves = sx.prompt_halves(len(prompts))
        randoms: dict[tuple, tuple[np.ndarray, list[str]]] = {}

        def random_control(emo: str, layer: int, alpha: float):
            """Judge probabilities and regimes of a random direction of the same size."""
            rkey = (layer, alpha, emo if p["scale"] == "absolute" else "")
            if rkey not in randoms:
                inter = reg.get(
                    "interventions",
                    "residual_add",
                    layer=layer,
                    alpha=alpha,
                    scale=p["scale"],
                    positions=p["positions"],
                )
                rvec = sx.random_like(vecs[emo])
                rhooks = guarded("interventions", inter, "hooks", model, vector=rvec, norms=norms)
                texts = generate(
                    model,
                    prompts,
                    rhooks,
                    p["max_new_tokens"],
                    p["batch_size"],
                    check=progress.check,
                )
                rrun = Run(model, prompts, base, texts, rhooks, all_emotions, emo)
                guarded("evaluators", ppl, "evaluate", rrun)
                randoms[rkey] = (j.proba(texts, p["judge"]), rrun.extra["regimes"])
            return randoms[rkey]

        label_ids = label_token_ids(model, all_emotions)
        lists = [list_prompt(q, all_emotions) for q in prompts]
        cols = [label_ids[e] for e in all_emotions]
        base_logits = last_logits(model, lists)[:, cols]
        lines = []
        progress.task(f"sweep {len(todo)} cells ({len(grid) - len(todo)} done before)", len(todo))
        for i, (emo, kind, layer, alpha) in enumerate(todo):
            progress.check()
            heads = circuit_specs.get((emo, kind), "")
            if kind == RESIDUAL:
                inter = reg.get(
                    "interventions",
                    "residual_add",
                    layer=layer,
                    alpha=alpha,
                    scale=p["scale"],
                    positions=p["positions"],
                )
            else:
                inter = reg.get(
                    "interventions", "enhance", heads=heads, factor=alpha, positions=p["positions"]
                )
            hooks = guarded("interventions", inter, "hooks", model, vector=vecs[emo], norms=norms)
            steered = generate(
                model, prompts, hooks, p["max_new_tokens"], p["batch_size"], check=progress.check
            )
            col = j.labels.index(emo) if emo in j.labels else None
            if col is None:
                from ..errors import UnknownName

                raise UnknownName(f"the judge has no label '{emo}' (labels: {', '.join(j.labels)})")
            parts = j.proba_parts(steered)
            probs = (
                np.mean(list(parts.values()), axis=0)
                if p["judge"] == "ensemble"
                else parts[p["judge"]]
            )
            agree = float((parts["minilm"].argmax(1) == parts["tfidf"].argmax(1)).mean())
            shift = (last_logits(model, lists, hooks)[:, cols] - base_logits).mean(0)
            k = all_emotions.index(emo)
            others = np.delete(shift, k).mean() if len(shift) > 1 else 0.0
            run_ = Run(model, prompts, base, steered, hooks, all_emotions, emo)
            m = guarded("evaluators", ppl, "evaluate", run_)
            ok = sx.success_flags(probs, col, run_.extra["regimes"])
            ok_base = sx.success_flags(base_probs, col, None)
            rand = {"success_random_dev": float("nan"), "success_random_test": float("nan")}
            if kind == RESIDUAL:
                r_probs, r_regimes = random_control(emo, layer, alpha)
                rand = sx.split_rates(
                    sx.success_flags(r_probs, col, r_regimes), halves, "success_random"
                )
            cells[(emo, kind, layer, alpha)] = {
                "emotion": emo,
                "intervention": kind,
                "layer": layer,
                "alpha": alpha,
                "p_target_baseline": round(float(base_probs[:, col].mean()), 5),
                "p_target": round(float(probs[:, col].mean()), 5),
                "p_target_rise": round(float(probs[:, col].mean() - base_probs[:, col].mean()), 5),
                "top_is_target": round(float((probs.argmax(1) == col).mean()), 5),
                "p_target_minilm": round(float(parts["minilm"][:, col].mean()), 5),
                "p_target_tfidf": round(float(parts["tfidf"][:, col].mean()), 5),
                "judge_agreement": round(agree, 5),
                "label_logit_shift": round(float(shift[k]), 5),
                "label_logit_shift_vs_others": round(float(shift[k] - others), 5),
                "perplexity_ratio": round(m["perplexity_ratio"], 5),
                "distinct2": round(m["distinct2"], 5),
                "distinct2_baseline": round(m["distinct2_baseline"], 5),
                "regime": REGIMES[int(m["regime_code"])],
                "surgical_share": round(m["surgical_share"], 5),
                "heads": heads,
                "success": round(float(ok.mean()), 5),
                **sx.split_rates(ok, halves, "success"),
                **sx.split_rates(ok_base, halves, "success_baseline"),
                **rand,
                **{
                    f"p_target_{h}": round(float(probs[idx, col].mean()), 5) if idx else np.nan
                    for h, idx in halves.items()
                },
            }
            write_cells(session, name, cells)
            lines.append(
                json.dumps(
                    {
                        "emotion": emo,
                        "intervention": kind,
                        "heads": heads,
                        "layer": layer,
                        "alpha": alpha,
                        "steered": steered,
                    }
                )
                + "\n"
            )
            old = session.artifact(texts_name)
            prev = old.read_text(encoding="utf-8") if old.is_file() else ""
            session.write_artifact(texts_name, prev + lines[-1])
            progress.update(i + 1)
        rows = [cells[g] for g in grid]
        # the best cell per emotion is chosen on the dev prompts and reported on the test ones
        best = sx.best_on_dev([r for r in rows if r["intervention"] == RESIDUAL])
        best_circuit = sx.best_on_dev([r for r in rows if r["intervention"] != RESIDUAL])
        head = sx.headline(best)
        rec["outputs"] = [
            f"artifacts/{name}",
            f"artifacts/{texts_name}",
            f"artifacts/{base_path.name}",
        ]
        metrics: dict[str, float] = {"cells": float(len(grid))}
        choices: dict[str, dict] = {}
        for emo, b in best.items():
            if b is not None:
                metrics[f"best_p_target_rise/{emo}"] = float(b["p_target_rise"])
                metrics[f"best_layer/{emo}"] = float(b["layer"])
                metrics[f"best_alpha/{emo}"] = float(b["alpha"])
                metrics[f"success_test/{emo}"] = float(b["success_test"])
                metrics[f"success_random_test/{emo}"] = float(b["success_random_test"])
                metrics[f"success_baseline_test/{emo}"] = float(b["success_baseline_test"])
                choices[f"best_cell/{emo}"] = {
                    "value": [b["layer"], b["alpha"]],
                    "chosen_on": "dev prompts",
                }
        for k, v in head.items():
            if k != "emotions":
                metrics[f"{k}_mean"] = v
        rec["choices"] = choices
        for emo, b in best_circuit.items():
            if b is not None:
                metrics[f"best_circuit_p_target_rise/{emo}"] = float(b["p_target_rise"])
                metrics[f"best_circuit_top_is_target/{emo}"] = float(b["top_is_target"])
        rec["metrics"] = metrics
    progress.done()
    return {
        "params": p,
        "csv": str(session.artifact(name)),
        "rows": rows,
        "best": best,
        "best_circuit": best_circuit,
        "headline": head,
        "prompt_halves": halves,
        "resumed": len(grid) - len(todo),
        "computed": len(todo),
        "judge": {
            "name": p["judge"],
            "accuracy": j.accuracy(p["judge"]),
            "macro_f1": j.scores[p["judge"]]["macro_f1"],
        },
    }


def circuit_grid(session: Session, p: dict) -> dict[tuple[str, str], str]:
    """(emotion, 'circuit-top<k>') -> the head spec from the session's latest head map."""
    return {
        (e, f"circuit-top{k}"): circuit_heads(session, e, k)[0]
        for e in p["emotions"]
        for k in p["circuits"]
    }
