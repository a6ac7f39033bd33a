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

from ..api import Run
from ..data import EKMAN6, NEUTRAL_PROMPTS, list_prompt
from ..engine import Serial
from ..errors import BadInput
from ..params import Param, defaults, validate
from ..progress import Progress
from ..runner import generate, label_token_ids, last_logits
from ..session import Session
from ..units import parse_layers
from . import success as sx
from .common import configured, emotion_vector, guarded, plugin_versions, session_model
from .shared import STEERING_PARAMS, circuit_heads
from .steer import vectors_for
from .sweep_cells import JUDGE_COLUMNS, RANDOM, RESIDUAL, SweepWork, failed_cell

PARAMS = (
    Param("emotions", list, list(EKMAN6), "emotions of the grid", item=str),
    Param(
        "layers", (str, list), None, "layers of the grid (default: 1/3, 1/2, 2/3 depth)", item=int
    ),
    Param("alphas", list, [0.15, 0.3, 0.5, 0.75], "strengths of the grid", item=float),
    *STEERING_PARAMS,
    Param("prompts", list, list(NEUTRAL_PROMPTS), "prompts to continue", item=str),
    Param("max_new_tokens", int, 24, "tokens generated per prompt"),
    Param("batch_size", int, 20, "prompts per generate call", min=1),
    Param(
        "judge", str, "ensemble", "the classifier evaluator's judge (judge_evaluator=classifier)"
    ),
    Param("judge_train_limit", int, 16000, "MiniLM head training texts", min=1),
    Param("judge_evaluator", str, "classifier", "the registered evaluator that judges P(target)"),
    Param("judge_params", dict, {}, "that evaluator's own parameters"),
    Param("max_ratio", float, 3.0, "perplexity ratio above which a text is explosive"),
    Param("min_distinct2", float, 0.5, "distinct-2 below which a text is repetitive"),
    Param("max_distinct_drop", float, 0.6, "distinct-2 drop that counts as repetitive"),
    Param(
        "min_surgical_share",
        float,
        0.5,
        "share of single texts that must be surgical",
        min=0.0,
        max=1.0,
    ),
    Param("circuits", list, [], "top-k head counts for circuit modulation", item=int, min=1),
    Param("circuit_factors", list, [2.0, 4.0], "multipliers for the circuit heads", item=float),
    Param("intervention", str, "residual_add", "the registered intervention of the grid"),
    Param("intervention_params", dict, {}, "that intervention's own fixed parameters"),
)
DEFAULTS = defaults(PARAMS)
# added after sweeps were first keyed: left out of the key at their defaults, so older
# sweep files still resume
LATER = ("judge_evaluator", "judge_params", "intervention", "intervention_params")
GRID = ("emotions", "layers", "alphas", "min_surgical_share", "circuits", "circuit_factors")
COLUMNS = (
    "emotion",
    "intervention",
    "layer",
    "alpha",
    *JUDGE_COLUMNS,
    "label_logit_shift",
    "label_logit_shift_vs_others",
    "perplexity_ratio",
    "distinct2",
    "distinct2_baseline",
    "regime",
    "surgical_share",
    "heads",
    "error",
    "success_rate",
    "success_dev",
    "success_test",
    "success_baseline_dev",
    "success_baseline_test",
    "success_random_dev",
    "success_random_test",
    "p_target_dev",
    "p_target_test",
)
SUCCESS_COLUMNS = COLUMNS[COLUMNS.index("success_rate") :]
TEXT_COLUMNS = ("emotion", "intervention", "regime", "heads", "error")


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
    fixed = {
        k: p[k] for k in DEFAULTS if k not in GRID and not (k in LATER and p[k] == DEFAULTS[k])
    }
    h = hashlib.sha256(json.dumps([fixed, vector_meta], sort_keys=True, default=str).encode())
    return h.hexdigest()[:10]


def read_cells(session: Session, name: str) -> dict[tuple, dict]:
    path = session.artifact(name)
    if not path.is_file():
        return {}
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    out = {}
    for r in rows:
        r = {"intervention": RESIDUAL, "heads": "", "error": "", **r}  # files from before circuits
        # files from before success rates read NaN there (and are computed again)
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


def run(session: Session, params: dict, progress: Progress | None = None, engine=None) -> dict:
    """`engine`: how cells run (engine.Serial by default, Batched, RayExecutor); it never
    changes a number, so it is not a parameter of the sweep."""
    progress = progress or Progress()
    p = validate(PARAMS, params, "sweep")
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
    all_emotions = list(meta.emotions) or sorted(vecs)
    norms = np.asarray(session.read_json("layer_norms.json")["mean_resid_norm"])
    judge = configured(
        "evaluators",
        p["judge_evaluator"],
        {"judge": p["judge"], "train_limit": p["judge_train_limit"]},
        p["judge_params"],
    )
    residual = RESIDUAL if p["intervention"] == "residual_add" else p["intervention"]
    # an unknown intervention or parameter fails here, before the model loads
    configured(
        "interventions",
        p["intervention"],
        cell_params(p, p["layers"][0], 0.0),
        p["intervention_params"],
    )
    key = sweep_key(p, {k: v for k, v in meta.flat().items() if k != "created"})
    name = f"sweep-{key}.csv"
    texts_name = f"sweep-{key}-texts.jsonl"
    cells = read_cells(session, name)
    grid = [
        (e, residual, layer, a) for e in p["emotions"] for layer in p["layers"] for a in p["alphas"]
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
        or cells[g]["error"]  # a failed cell is computed again
        or cells[g]["heads"] != circuit_specs.get((g[0], g[1]), "")
        or not np.isfinite(cells[g]["success_rate"])  # a cell from before success rates
    ]
    kinds = [p["intervention"]] + (["enhance"] if p["circuits"] else [])
    used = {
        **plugin_versions("interventions", kinds),
        **plugin_versions("evaluators", [p["judge_evaluator"], "perplexity_ratio"]),
    }
    with session.step("sweep", p, used) as rec:
        if p["vector_file"]:
            session.add_input(rec, "vector_file", p["vector_file"])
        model = session_model(session)
        base_path = session.artifact(f"sweep-{key}-baseline.json")
        if base_path.is_file():
            base = session.read_json(base_path.name)["texts"]
        else:
            progress.task(f"generate baseline ({len(prompts)} prompts)", len(prompts))
            base = generate(
                model, prompts, (), p["max_new_tokens"], p["batch_size"], check=progress.check
            )
            session.write_json(base_path.name, {"prompts": prompts, "texts": base})
        progress.task(f"judge: load {p['judge_evaluator']}", 0)
        # the judge on the unsteered texts, once per emotion: it loads (or trains) once and
        # travels with the work; an emotion it has no label for fails before any cell
        base_on: dict[str, np.ndarray] = {}  # per emotion: unsteered text's top label is it
        for emo in p["emotions"]:
            base_run = Run(model, prompts, base, base, (), all_emotions, emo)
            judged_base = guarded("evaluators", judge, "evaluate", base_run)
            if "judge_probs" in base_run.extra:
                col = list(base_run.extra["judge_labels"]).index(emo)
                base_on[emo] = np.asarray(base_run.extra["judge_probs"]).argmax(1) == col
        label_ids = label_token_ids(model, all_emotions)
        lists = [list_prompt(q, all_emotions) for q in prompts]
        cols = [label_ids[e] for e in all_emotions]
        base_logits = last_logits(model, lists)[:, cols]
        work = SweepWork(
            session.model_name,
            session.manifest["model"].get("device", "cpu"),
            session.manifest["model"].get("dtype", "float32"),
            {k: p[k] for k in DEFAULTS if k != "prompts"},
            prompts,
            lists,
            vecs,
            norms,
            circuit_specs,
            all_emotions,
            cols,
            base,
            base_logits,
            judge,
            residual,
        )
        engine = engine or Serial()
        rec["engine"] = engine.describe()
        halves = sx.prompt_halves(len(prompts))
        randoms = random_controls(work, engine, todo, p, progress, residual)
        progress.task(f"sweep {len(todo)} cells ({len(grid) - len(todo)} done before)", len(todo))
        for i, cell in engine.map(work, todo, progress.check):
            if "error" in cell and len(cell) == 1:
                cell = failed_cell(todo[i], circuit_specs.get(todo[i][:2], ""), cell["error"])
            steered = cell.pop("steered")
            cell.update(
                success_columns(
                    cell,
                    cell.pop("probs", None),
                    cell.pop("labels", None),
                    cell.pop("regimes", None),
                    base_on,
                    randoms,
                    halves,
                    p["scale"],
                    residual,
                )
            )
            line = {k: cell[k] for k in ("emotion", "intervention", "heads", "layer", "alpha")}
            old = session.artifact(texts_name)
            prev = old.read_text(encoding="utf-8") if old.is_file() else ""
            # texts before the cell: a kill in between only recomputes the cell
            session.write_artifact(
                texts_name, prev + json.dumps({**line, "steered": steered}) + "\n"
            )
            cells[cell_key(cell)] = cell
            write_cells(session, name, cells)
            progress.update(i + 1)
        rows = [cells[g] for g in grid]
        # the best cell per emotion is chosen on the dev prompts and reported on the test ones
        best = sx.best_on_dev([r for r in rows if r["intervention"] == residual])
        best_circuit = sx.best_on_dev([r for r in rows if r["intervention"] != residual])
        head = sx.headline(best)
        table = step_outputs(session, rec["seq"], grid, cells, texts_name)
        rec["outputs"] = [*table, f"artifacts/{base_path.name}"]
        metrics: dict[str, float] = {"cells": float(len(grid))}
        choices: dict[str, dict] = {}
        for emo, b in best.items():
            if b is not None:
                metrics[f"best_p_target_rise/{emo}"] = float(b["p_target_rise"])
                metrics[f"best_layer/{emo}"] = float(b["layer"])
                metrics[f"best_alpha/{emo}"] = float(b["alpha"])
                for k in ("success_test", "success_random_test", "success_baseline_test"):
                    metrics[f"{k}/{emo}"] = float(b[k])
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
        "csv": str(session.path / table[0]),
        "rows": rows,
        "best": best,
        "best_circuit": best_circuit,
        "headline": head,
        "prompt_halves": halves,
        "resumed": len(grid) - len(todo),
        "computed": len(todo),
        "judge": {
            "name": p["judge"] if p["judge_evaluator"] == "classifier" else p["judge_evaluator"],
            "accuracy": float(judged_base.get("judge_accuracy", np.nan)),
            "macro_f1": float(judged_base.get("judge_macro_f1", np.nan)),
        },
    }


def step_outputs(
    session: Session, seq: int, grid: list[tuple], cells: dict, texts_name: str
) -> list[str]:
    """This step's own table and texts (`sweep-<seq>.csv`, `-texts.jsonl`): exactly its
    grid, taken from the resume cache that every sweep with the same settings shares, so a
    later sweep never changes what an earlier one wrote."""
    write_cells(session, f"sweep-{seq:03d}.csv", {g: cells[g] for g in grid})
    texts: dict[tuple, str] = {}
    path = session.artifact(texts_name)
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else ():
        r = json.loads(line)
        texts[(r["emotion"], r["intervention"], r["layer"], r["alpha"])] = line + "\n"
    session.write_artifact(
        f"sweep-{seq:03d}-texts.jsonl", "".join(texts[g] for g in grid if g in texts)
    )
    return [f"artifacts/sweep-{seq:03d}.csv", f"artifacts/sweep-{seq:03d}-texts.jsonl"]


def cell_params(p: dict, layer: int, alpha: float) -> dict:
    """What the sweep knows about one residual cell; its intervention takes what it declares."""
    return {"layer": layer, "alpha": alpha, "scale": p["scale"], "positions": p["positions"]}


def circuit_grid(session: Session, p: dict) -> dict[tuple[str, str], str]:
    """(emotion, 'circuit-top<k>') -> the head spec from the session's latest head map."""
    return {
        (e, f"circuit-top{k}"): circuit_heads(session, e, k)[0]
        for e in p["emotions"]
        for k in p["circuits"]
    }


def random_controls(
    work, engine, todo: list[tuple], p: dict, progress: Progress, residual: str
) -> dict:
    """Judge probabilities and per-text regimes of a random direction of the same size for
    every (layer, alpha) a residual cell to compute needs. With relative alpha the random
    push is the same for every emotion (the hook rescales it), so it runs once per
    (layer, alpha); with absolute alpha once per emotion too."""
    per_emotion = p["scale"] == "absolute"
    need = sorted({(c[0] if per_emotion else "", c[2], c[3]) for c in todo if c[1] == residual})
    cells = [(e or p["emotions"][0], RANDOM, layer, a) for e, layer, a in need]
    if not cells:
        return {}
    progress.task(f"random-direction controls ({len(cells)})", len(cells))
    out = {}
    for i, res in engine.map(work, cells, progress.check):
        if res.get("probs") is not None:
            out[need[i]] = (res["probs"], list(res["labels"]), res["regimes"])
        progress.update(i + 1)
    return out


def success_columns(
    cell: dict,
    probs,
    labels,
    regimes,
    base_on: dict,
    randoms: dict,
    halves: dict,
    scale: str,
    residual: str,
) -> dict:
    """The success columns of one cell (see steps/success.py): steered, unsteered and the
    random control, on the dev and test prompt halves. NaN for a failed cell, and for a
    judge evaluator that reports no per-text probabilities (`run.extra["judge_probs"]`)."""
    nan = float("nan")
    emo = cell["emotion"]
    if probs is None or emo not in base_on:
        return {c: nan for c in SUCCESS_COLUMNS}
    probs = np.asarray(probs)
    col = list(labels).index(emo)
    ok = sx.success_flags(probs, col, regimes)
    out = {
        "success_rate": round(float(ok.mean()), 5),
        **sx.split_rates(ok, halves, "success"),
        **sx.split_rates(base_on[emo], halves, "success_baseline"),
        "success_random_dev": nan,
        "success_random_test": nan,
    }
    rkey = (emo if scale == "absolute" else "", cell["layer"], cell["alpha"])
    if cell["intervention"] == residual and rkey in randoms:
        r_probs, r_labels, r_regimes = randoms[rkey]
        flags = sx.success_flags(np.asarray(r_probs), list(r_labels).index(emo), r_regimes)
        out.update(sx.split_rates(flags, halves, "success_random"))
    for h, idx in halves.items():
        out[f"p_target_{h}"] = round(float(probs[idx, col].mean()), 5) if idx else nan
    return out
