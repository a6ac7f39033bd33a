"""The sweep's table: its columns, how a cell is keyed, the resume cache every sweep with the
same settings shares, each step's own outputs, and the success columns of a cell.

A cell is `(emotion, intervention, layer, span, alpha)`: a residual cell steers layers
layer..layer+span-1 (span 1: one layer); circuit rows have layer -1 and span 0. Files from
before spans read span 1 (residual) or 0 (circuit), the cells they always were.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from ..session import Session
from . import success as sx
from .sweep_cells import JUDGE_COLUMNS, RESIDUAL

COLUMNS = (
    "source",
    "emotion",
    "intervention",
    "layer",
    "span",
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
    "surgical_dev",
    "surgical_test",
)
SUCCESS_COLUMNS = COLUMNS[COLUMNS.index("success_rate") :]
TEXT_COLUMNS = ("source", "emotion", "intervention", "regime", "heads", "error")
INT_COLUMNS = ("layer", "span")


def cell_key(cell: dict) -> tuple:
    return (cell["emotion"], cell["intervention"], cell["layer"], cell["span"], cell["alpha"])


def _text_key(r: dict) -> tuple:
    """The cell of a texts-file line (lines from before spans have none)."""
    span = r.get("span", 0 if r["intervention"].startswith("circuit-") else 1)
    return (r["emotion"], r["intervention"], r["layer"], span, r["alpha"])


def read_cells(session: Session, name: str, source: str | None = None) -> dict[tuple, dict]:
    """The cells of a sweep csv; `source` relabels them (a cache file is one source's)."""
    path = session.artifact(name)
    if not path.is_file():
        return {}
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    out = {}
    for r in rows:
        # files from before circuits, spans and sources
        r = {"intervention": RESIDUAL, "heads": "", "error": "", "source": "", **r}
        r.setdefault("span", "0" if r["intervention"].startswith("circuit-") else "1")
        # files from before success rates read NaN there (and are computed again)
        cell = {c: r[c] if c in TEXT_COLUMNS else float(r.get(c, "nan")) for c in COLUMNS}
        for c in INT_COLUMNS:
            cell[c] = int(cell[c])
        if source is not None:
            cell["source"] = source
        out[cell_key(cell)] = cell
    return out


def csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r[c] for c in COLUMNS})
    return buf.getvalue()


def write_cells(session: Session, name: str, cells: dict[tuple, dict]) -> None:
    session.write_artifact(name, csv_text([cells[key] for key in sorted(cells)]))


def step_outputs(session: Session, seq: int, parts: list[tuple[str, list, dict, str]]) -> list[str]:
    """This step's own table and texts (`sweep-<seq>.csv`, `-texts.jsonl`): exactly its grid
    for each source `(label, grid, cells, texts file)`, taken from the resume caches, so a
    later sweep never changes what an earlier one wrote."""
    rows, lines = [], []
    for label, grid, cells, texts_name in parts:
        rows += [cells[g] for g in sorted(grid)]
        texts: dict[tuple, str] = {}
        path = session.artifact(texts_name)
        for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else ():
            r = json.loads(line)
            texts[_text_key(r)] = json.dumps({"source": label, **r}) + "\n"
        lines += [texts[g] for g in grid if g in texts]
    session.write_artifact(f"sweep-{seq:03d}.csv", csv_text(rows))
    session.write_artifact(f"sweep-{seq:03d}-texts.jsonl", "".join(lines))
    return [f"artifacts/sweep-{seq:03d}.csv", f"artifacts/sweep-{seq:03d}-texts.jsonl"]


def success_columns(
    cell: dict, probs, labels, regimes, base_on: dict, randoms: dict, halves: dict, rkey
) -> dict:
    """The success columns of one cell (see steps/success.py): steered, unsteered and the
    random control `randoms[rkey]` (see `control_key`), on the dev and test prompt halves.
    NaN for a failed cell, and for a judge evaluator that reports no per-text probabilities
    (`run.extra["judge_probs"]`)."""
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
    if rkey is not None and rkey in randoms:
        r_probs, r_labels, r_regimes = randoms[rkey]
        flags = sx.success_flags(np.asarray(r_probs), list(r_labels).index(emo), r_regimes)
        out.update(sx.split_rates(flags, halves, "success_random"))
    out.update(sx.surgical_shares(regimes, halves))
    for h, idx in halves.items():
        out[f"p_target_{h}"] = round(float(probs[idx, col].mean()), 5) if idx else nan
    return out


def random_key(emotion: str, layer: int, span: int, alpha: float, scale: str) -> tuple:
    """Which random-direction control a residual cell is compared with: with relative alpha
    the random push is the same for every emotion (and every source), so one per
    (layer, span, alpha); with absolute alpha one per emotion too."""
    return (emotion if scale == "absolute" else "", layer, span, alpha)


def control_key(cell: tuple, residual: str, scale: str, units: dict) -> tuple:
    """The random control of a grid cell `(emotion, intervention, layer, span, alpha)`: a
    residual cell's random direction (`random_key`), or a circuit cell's random circuit,
    the same number of units of its kind drawn at random (`units[(emotion, 'random-' +
    intervention)]`) scaled by the same factor. Scaling units does not depend on the
    emotion, so a random circuit is generated once for every emotion that draws it."""
    emo, kind, layer, span, alpha = cell
    if kind == residual:
        return random_key(emo, layer, span, alpha, scale)
    rand = f"random-{kind}"
    return (rand.split("-top")[0], units[(emo, rand)], alpha)


def read_randoms(session: Session, name: str) -> dict[tuple, tuple]:
    """The random controls (directions and circuits, keyed by `control_key`) a sweep with
    the same settings computed before, so a resumed sweep does not generate them again (one
    per layer x span x alpha: a sixth of a six-emotion grid). A missing or unreadable cache
    is an empty one: it is only a cache."""
    path = session.artifact(name)
    if not path.is_file():
        return {}
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return {
            tuple(r["key"]): (
                np.asarray(r["probs"], dtype=float),
                list(r["labels"]),
                list(r["regimes"]) if r["regimes"] is not None else None,
            )
            for r in rows
        }
    except (ValueError, KeyError, TypeError):
        return {}


def write_randoms(session: Session, name: str, randoms: dict[tuple, tuple]) -> None:
    rows = [
        {
            "key": list(k),
            "probs": np.asarray(v[0]).tolist(),
            "labels": list(v[1]),
            "regimes": list(v[2]) if v[2] is not None else None,
        }
        for k, v in sorted(randoms.items(), key=lambda kv: json.dumps(kv[0]))
    ]
    session.write_artifact(name, json.dumps(rows))
