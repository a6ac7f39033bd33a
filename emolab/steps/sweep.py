"""Steering sweep: emotions x layers x spans x alphas on neutral prompts, each cell judged by
the external classifier, the label-logit shift and the perplexity regime.

Cells are written to a csv artifact as they finish (atomically), keyed by everything that
changes a cell's numbers; re-running the same sweep reads that file and computes only the
missing cells, so a sweep cut off on a laptop resumes where it stopped.

A span steers layers L..L+span-1, each with its own direction (the vector extracted at that
layer) and alpha split evenly over them, so a span pushes as hard in total as one layer with
the same alpha (residual_add `spread=split`); the dev prompts choose the span like the layer
and alpha.

Several vector sources (`method` a list, or several `vector_file`s: other sessions' vectors
of the same model) each run the same grid from their own resume cache; each source's best
cells are chosen on the dev prompts, and the source whose chosen cells succeed most on the
dev prompts wins. Test numbers are reported for every source, never used to choose.

With `circuits` (top-k sizes) the same grid also runs circuit modulation: the emotion's k
strongest heads (and/or MLP neurons, `circuit_kinds`) from the session's latest head map
(`emolab heads`, `--neurons` for neurons) scaled by each of `circuit_factors` instead of
adding the vector. Those rows have intervention `circuit-top<k>` (heads) or
`neurons-top<k>`, layer -1, span 0 and alpha = the factor, so every kind sits in one table;
their `heads` column holds the units scaled, and a cell whose units changed with a new map
is computed again. Beside each, k units of the same kind drawn at random (seeded) and
scaled by the same factor are judged the same way: the random control of circuit rows, as
the random direction is of residual rows.
"""

from __future__ import annotations

import functools
import hashlib
import json

import numpy as np

from ..api import Run
from ..data import EKMAN6, NEUTRAL_PROMPTS, list_prompt
from ..engine import Serial, group_order
from ..errors import BadInput
from ..params import Param, defaults, validate
from ..progress import Progress
from ..runner import generate, label_token_ids, last_logits
from ..session import Session
from ..units import parse_layers
from . import success as sx
from .common import configured, emotion_vector, guarded, plugin_versions, session_model
from .shared import CIRCUIT_KINDS, PUSH_PARAMS, circuit_name
from .steer import vectors_for
from .sweep_cells import RESIDUAL, SweepWork, check_range, failed_cell, span_params
from .sweep_choice import compare_sources, sweep_record
from .sweep_controls import circuit_grid, random_controls
from .sweep_table import (
    COLUMNS,
    cell_key,
    control_key,
    read_cells,
    read_randoms,
    step_outputs,
    success_columns,
    write_cells,
    write_randoms,
)

PARAMS = (
    Param("emotions", list, list(EKMAN6), "emotions of the grid", item=str),
    Param(
        "layers", (str, list), None, "layers of the grid (default: 1/3, 1/2, 2/3 depth)", item=int
    ),
    Param("alphas", list, [0.15, 0.3, 0.5, 0.75], "strengths of the grid", item=float),
    Param(
        "spans",
        list,
        [1],
        "layer counts of the grid: a span steers L..L+span-1, alpha split over them",
        item=int,
        min=1,
    ),
    *PUSH_PARAMS,
    Param(
        "method", (str, list), None, "the session's vector set(s); several are compared", item=str
    ),
    Param(
        "vector_file",
        (str, list),
        None,
        "vector file(s) instead of the session's (e.g. other sessions'); several are compared",
        item=str,
    ),
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
    Param("circuits", list, [], "top-k unit counts for circuit modulation", item=int, min=1),
    Param("circuit_factors", list, [2.0, 4.0], "multipliers for the circuit units", item=float),
    Param(
        "circuit_kinds",
        list,
        ["heads"],
        f"which units circuit modulation scales: {' and/or '.join(CIRCUIT_KINDS)}",
        item=str,
    ),
    Param("intervention", str, "residual_add", "the registered intervention of the grid"),
    Param("intervention_params", dict, {}, "that intervention's own fixed parameters"),
)
DEFAULTS = defaults(PARAMS)
# added after sweeps were first keyed: left out of the key at their defaults, so older
# sweep files still resume
LATER = ("judge_evaluator", "judge_params", "intervention", "intervention_params")
GRID = (
    "emotions",
    "layers",
    "alphas",
    "spans",
    "min_surgical_share",
    "circuits",
    "circuit_factors",
    "circuit_kinds",
)


def check_params(p: dict) -> None:
    """Bad grids fail before any model is loaded, with one line each."""
    if not p["emotions"]:
        raise BadInput("no emotions given")
    if not p["alphas"]:
        raise BadInput("alpha list is empty (give e.g. --alphas 0.1,0.3,0.5)")
    for a in p["alphas"]:
        if not np.isfinite(float(a)):
            raise BadInput(f"alpha must be a finite number, got {a!r}")
    if not p["spans"]:
        raise BadInput("span list is empty (give e.g. --spans 1,3)")
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
    for kind in p["circuit_kinds"]:
        if kind not in CIRCUIT_KINDS:
            raise BadInput(f"unknown circuit kind '{kind}' (known: {', '.join(CIRCUIT_KINDS)})")
    if p["circuits"] and not p["circuit_kinds"]:
        raise BadInput("circuit kind list is empty (give e.g. --circuit-kind heads,neurons)")


def sweep_key(p: dict, vector_meta: dict) -> str:
    """What makes a cell's numbers: everything but the grid itself."""
    fixed = {
        k: p[k] for k in DEFAULTS if k not in GRID and not (k in LATER and p[k] == DEFAULTS[k])
    }
    h = hashlib.sha256(json.dumps([fixed, vector_meta], sort_keys=True, default=str).encode())
    return h.hexdigest()[:10]


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


def _one_or_list(value) -> list:
    """A parameter given as one name, a list, or nothing -> a list (`[None]` for nothing)."""
    if value is None:
        return [None]
    return list(value) if isinstance(value, list) else [value]


def source_specs(session: Session, p: dict) -> list[tuple[str, str | None, str | None]]:
    """(label, method, vector_file) of every source the sweep compares: the vector files
    when given, else the methods (the session's first when none is named). A single
    source is logged as a plain name, as before several could be given."""
    files = [f for f in _one_or_list(p["vector_file"]) if f]
    methods = _one_or_list(p["method"])
    for key, items in (("vector_file", files), ("method", methods)):
        if len(set(items)) != len(items):
            raise BadInput(f"--{key.replace('_', '-')} names a source twice")
        if len(items) == 1:
            p[key] = items[0]
    if files:
        return [(f, None, f) for f in files]
    first = (session.methods() or ["vectors"])[0]
    return [(m or first, m, None) for m in methods]


def check_spans(p: dict, n_layers: int) -> None:
    """Every span fits the model, and the intervention can steer a layer range."""
    for layer in p["layers"]:
        for span in p["spans"]:
            if layer + span - 1 >= n_layers:
                raise BadInput(
                    f"span {span} from layer {layer} runs past the last layer ({n_layers - 1})"
                )
    if max(p["spans"]) > 1:
        check_range(p["intervention"])


def load_source(session: Session, p: dict, spec: tuple, n_layers: int) -> dict:
    """One source's vectors per emotion, checked at every layer its cells steer, its label
    set and its resume-cache key."""
    label, method, vector_file = spec
    vectors, meta = vectors_for(session, method, vector_file)
    vecs = {e: emotion_vector(vectors, e, n_layers) for e in p["emotions"]}
    for e, v in vecs.items():
        for layer in p["layers"]:
            for span in p["spans"]:
                for li in range(layer, layer + span):
                    if not np.isfinite(v[li]).all():
                        where = f" (span {span} from layer {layer})" if span > 1 else ""
                        raise BadInput(f"no '{e}' vector at layer {li}{where} in {label}")
    own = {**p, "method": method, "vector_file": vector_file}
    key = sweep_key(own, {k: v for k, v in meta.flat().items() if k != "created"})
    return {
        "label": label,
        "vector_file": vector_file,
        "vecs": vecs,
        "emotions": list(meta.emotions) or sorted(vecs),
        "key": key,
    }


def run(session: Session, params: dict, progress: Progress | None = None, engine=None) -> dict:
    """`engine`: how cells run (engine.Serial by default, Batched, RayExecutor); it never
    changes a number, so it is not a parameter of the sweep."""
    progress = progress or Progress()
    p = validate(PARAMS, params, "sweep")
    p["alphas"] = [float(a) for a in p["alphas"]]
    p["emotions"] = list(p["emotions"])
    p["spans"] = [int(k) for k in p["spans"]]
    p["circuits"] = [int(k) for k in p["circuits"]]
    p["circuit_factors"] = [float(f) for f in p["circuit_factors"]]
    p["circuit_kinds"] = list(dict.fromkeys(str(k) for k in p["circuit_kinds"]))
    check_params(p)
    n_layers = int(session.manifest["model"]["layers"])
    if p["layers"] is None:
        p["layers"] = sorted({n_layers // 3, n_layers // 2, 2 * n_layers // 3})
    p["layers"] = parse_layers(
        p["layers"] if isinstance(p["layers"], list) else str(p["layers"]), n_layers
    )
    prompts = [str(x) for x in p["prompts"]]
    specs = source_specs(session, p)
    check_spans(p, n_layers)
    sources = [load_source(session, p, spec, n_layers) for spec in specs]
    circuit_specs = circuit_grid(session, p)
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
        span_params(p["layers"][0], max(p["spans"]), 0.0, p["scale"], p["positions"]),
        p["intervention_params"],
    )
    grid = [
        (e, residual, layer, span, a)
        for e in p["emotions"]
        for layer in p["layers"]
        for span in p["spans"]
        for a in p["alphas"]
    ] + [
        (e, circuit_name(kind, k), -1, 0, f)
        for e in p["emotions"]
        for kind in p["circuit_kinds"]
        for k in p["circuits"]
        for f in p["circuit_factors"]
    ]
    kinds = [p["intervention"]] + (["enhance"] if p["circuits"] else [])
    used = {
        **plugin_versions("interventions", kinds),
        **plugin_versions("evaluators", [p["judge_evaluator"], "perplexity_ratio"]),
    }
    with session.step("sweep", p, used) as rec:
        for i, src in enumerate(sources):
            if src["vector_file"]:
                role = "vector_file" if len(sources) == 1 else f"vector_file_{i + 1}"
                session.add_input(rec, role, src["vector_file"])
        model = session_model(session)
        base = baseline_texts(session, sources, prompts, p, model, progress)
        progress.task(f"judge: load {p['judge_evaluator']}", 0)
        # the judge on the unsteered texts, once per emotion: it loads (or trains) once and
        # travels with the work; an emotion it has no label for fails before any cell
        base_on: dict[str, np.ndarray] = {}  # per emotion: unsteered text's top label is it
        for emo in p["emotions"]:
            base_run = Run(model, prompts, base, base, (), sources[0]["emotions"], emo)
            judged_base = guarded("evaluators", judge, "evaluate", base_run)
            if "judge_probs" in base_run.extra:
                col = list(base_run.extra["judge_labels"]).index(emo)
                base_on[emo] = np.asarray(base_run.extra["judge_probs"]).argmax(1) == col
        engine = engine or Serial()
        rec["engine"] = engine.describe()
        halves = sx.prompt_halves(len(prompts))
        # relative alpha: one random push serves every source, and is kept for a resume
        rand_name = f"sweep-random-{sweep_key({**p, 'method': None, 'vector_file': None}, {})}.json"
        shared_randoms = read_randoms(session, rand_name) if p["scale"] == "relative" else {}
        done = []
        try:  # workers kept between the random controls and the cells, freed here
            for src in sources:
                all_emotions = src["emotions"]
                label_ids = label_token_ids(model, all_emotions)
                lists = [list_prompt(q, all_emotions) for q in prompts]
                cols = [label_ids[e] for e in all_emotions]
                work = SweepWork(
                    session.model_name,
                    session.manifest["model"].get("device", "cpu"),
                    session.manifest["model"].get("dtype", "float32"),
                    {k: p[k] for k in DEFAULTS if k != "prompts"},
                    prompts,
                    lists,
                    src["vecs"],
                    norms,
                    circuit_specs,
                    all_emotions,
                    cols,
                    base,
                    last_logits(model, lists)[:, cols],
                    judge,
                    residual,
                )
                if p["scale"] == "relative":
                    randoms = shared_randoms
                    save = functools.partial(write_randoms, session, rand_name, shared_randoms)
                else:
                    randoms, save = {}, None
                done.append(
                    sweep_source(session, src, work, engine, grid, p, progress, residual,
                                 base_on, randoms, halves, circuit_specs, save)
                )  # fmt: skip
        finally:
            engine.release()
        table = step_outputs(
            session,
            rec["seq"],
            [(d["label"], grid, d["cells"], d["texts_name"]) for d in done],
        )
        rec["outputs"] = [*table, *(f"artifacts/sweep-{s['key']}-baseline.json" for s in sources)]
        compared = compare_sources(done, residual, p["min_surgical_share"])
        rec["metrics"], rec["choices"] = sweep_record(compared, len(grid) * len(done))
    progress.done()
    win = compared["winner"]
    return {
        "params": p,
        "csv": str(session.path / table[0]),
        "rows": [r for d in done for r in d["rows"]],
        "best": win["best"],
        "best_circuit": win["best_circuit"],
        "best_neurons": win["best_neurons"],
        "headline": win["headline"],
        "sources": compared["sources"],
        "winner": win["source"] if len(done) > 1 else None,
        "prompt_halves": halves,
        "resumed": sum(d["resumed"] for d in done),
        "computed": sum(d["computed"] for d in done),
        "judge": {
            "name": p["judge"] if p["judge_evaluator"] == "classifier" else p["judge_evaluator"],
            "accuracy": float(judged_base.get("judge_accuracy", np.nan)),
            "macro_f1": float(judged_base.get("judge_macro_f1", np.nan)),
        },
    }


def baseline_texts(session: Session, sources, prompts, p, model, progress) -> list[str]:
    """The unsteered continuations, generated once and kept beside each source's cache."""
    paths = [session.artifact(f"sweep-{s['key']}-baseline.json") for s in sources]
    have = next((path for path in paths if path.is_file()), None)
    if have is not None:
        base = session.read_json(have.name)["texts"]
    else:
        progress.task(f"generate baseline ({len(prompts)} prompts)", len(prompts))
        base = generate(
            model, prompts, (), p["max_new_tokens"], p["batch_size"], check=progress.check
        )
    for path in paths:
        if not path.is_file():
            session.write_json(path.name, {"prompts": prompts, "texts": base})
    return base


def sweep_source(
    session,
    src,
    work,
    engine,
    grid,
    p,
    progress,
    residual,
    base_on,
    randoms,
    halves,
    heads,
    save_randoms=None,
) -> dict:
    """One source's grid: the cells its resume cache lacks are computed (with the random
    controls they need, kept through `save_randoms` when they can serve a resume) and
    written to the cache as they finish."""
    name, texts_name = f"sweep-{src['key']}.csv", f"sweep-{src['key']}-texts.jsonl"
    cells = read_cells(session, name, src["label"])
    # a circuit cell is stale when the head map behind it changed
    todo = [
        g
        for g in grid
        if g not in cells
        or cells[g]["error"]  # a failed cell is computed again
        or cells[g]["heads"] != heads.get((g[0], g[1]), "")
        or not np.isfinite(cells[g]["success_rate"])  # a cell from before success rates
        or not np.isfinite(cells[g]["surgical_dev"])  # ... or before per-half regimes
    ]
    todo = group_order(work, todo)  # each batch written as it finishes
    random_controls(work, engine, todo, p, progress, residual, randoms, save_randoms)
    what = f" of {src['label']}" if src["label"] else ""
    progress.task(f"sweep {len(todo)} cells{what} ({len(grid) - len(todo)} done before)", len(todo))
    for i, cell in engine.map(work, todo, progress.check):
        if "error" in cell and len(cell) == 1:
            cell = failed_cell(todo[i], heads.get(todo[i][:2], ""), cell["error"])
        steered = cell.pop("steered")
        cell["source"] = src["label"]
        cell.update(
            success_columns(
                cell,
                cell.pop("probs", None),
                cell.pop("labels", None),
                cell.pop("regimes", None),
                base_on,
                randoms,
                halves,
                control_key(todo[i], residual, p["scale"], heads),
            )
        )
        cell = {c: cell[c] for c in COLUMNS}  # the order a resumed cell reads back in
        line = {k: cell[k] for k in ("emotion", "intervention", "heads", "layer", "span", "alpha")}
        old = session.artifact(texts_name)
        prev = old.read_text(encoding="utf-8") if old.is_file() else ""
        # texts before the cell: a kill in between only recomputes the cell
        session.write_artifact(texts_name, prev + json.dumps({**line, "steered": steered}) + "\n")
        cells[cell_key(cell)] = cell
        write_cells(session, name, cells)
        progress.update(i + 1)
    return {
        "label": src["label"],
        "cells": cells,
        "rows": [cells[g] for g in grid],
        "texts_name": texts_name,
        "resumed": len(grid) - len(todo),
        "computed": len(todo),
    }
