"""What a sweep chooses on the dev prompts: each source's best cells, the winning source,
and what the log records of both (its metrics and its choices, which `steer` defaults to and
replay checks). The test prompts are reported beside every choice, never used for one.
Circuit rows are chosen per kind (heads, neurons) the same way, beside the residual ones."""

from __future__ import annotations

import numpy as np

from . import success as sx
from .shared import CIRCUIT_KINDS, circuit_kind

# each circuit kind's best rows per emotion, under these keys (heads kept their old one)
CIRCUIT_BEST = {"heads": "best_circuit", "neurons": "best_neurons"}
CIRCUIT_SUCCESS = ("success_test", "success_random_test")


def compare_sources(done: list[dict], residual: str, min_share: float = 0.5) -> dict:
    """Per source its best cells (chosen on the dev prompts) and their headline; the winner
    is the source whose chosen cells have the highest mean dev success (ties: mean dev
    P(target), then the order given). Test numbers ride along as the report."""
    out = []
    for d in done:
        best = sx.best_on_dev([r for r in d["rows"] if r["intervention"] == residual], min_share)
        chosen = [b for b in best.values() if b is not None]

        def mean(key: str, chosen=chosen) -> float:
            vals = [float(b[key]) for b in chosen if np.isfinite(float(b[key]))]
            return float(np.mean(vals)) if vals else float("nan")

        out.append(
            {
                "source": d["label"],
                "best": best,
                **{
                    CIRCUIT_BEST[kind]: sx.best_on_dev(
                        [
                            r
                            for r in d["rows"]
                            if r["intervention"] != residual
                            and circuit_kind(r["intervention"]) == kind
                        ],
                        min_share,
                    )
                    for kind in CIRCUIT_KINDS
                },
                "headline": sx.headline(best),
                "success_dev": mean("success_dev"),
                "p_target_dev": mean("p_target_dev"),
            }
        )

    def rank(i: int) -> tuple:
        s = out[i]
        return tuple(
            v if np.isfinite(v) else -np.inf for v in (s["success_dev"], s["p_target_dev"])
        )

    winner = max(range(len(out)), key=lambda i: (rank(i), -i))
    return {"sources": out, "winner": out[winner]}


def sweep_record(compared: dict, n_cells: int) -> tuple[dict, dict]:
    """The log's metrics and choices: the winner's best cells under the plain names (what
    `steer` defaults to), every source's under `<source>/`, and with several sources which
    one won on the dev prompts."""
    metrics: dict[str, float] = {"cells": float(n_cells)}
    choices: dict[str, dict] = {}
    several = len(compared["sources"]) > 1
    for s in compared["sources"]:
        prefixes = [f"{s['source']}/"] if several else []
        if s is compared["winner"]:
            prefixes.append("")
        for pre in prefixes:
            for emo, b in s["best"].items():
                if b is None:
                    continue
                metrics[f"{pre}best_p_target_rise/{emo}"] = float(b["p_target_rise"])
                metrics[f"{pre}best_layer/{emo}"] = float(b["layer"])
                metrics[f"{pre}best_alpha/{emo}"] = float(b["alpha"])
                metrics[f"{pre}best_span/{emo}"] = float(b["span"])
                for k in ("success_test", "success_random_test", "success_baseline_test"):
                    metrics[f"{pre}{k}/{emo}"] = float(b[k])
                choices[f"best_cell/{pre}{emo}"] = {
                    "value": [b["layer"], b["alpha"]],
                    "chosen_on": "dev prompts",
                }
                if b["span"] != 1:
                    choices[f"best_span/{pre}{emo}"] = {
                        "value": b["span"],
                        "chosen_on": "dev prompts",
                    }
            for k, v in s["headline"].items():
                if k != "emotions":
                    metrics[f"{pre}{k}_mean"] = v
            if several:
                metrics[f"{pre}success_dev_mean"] = s["success_dev"]
            for best in CIRCUIT_BEST.values():
                for emo, b in s[best].items():
                    if b is None:
                        continue
                    for k in ("p_target_rise", "top_is_target", *CIRCUIT_SUCCESS):
                        metrics[f"{pre}{best}_{k}/{emo}"] = float(b[k])
    if several:
        choices["best_source"] = {"value": compared["winner"]["source"], "chosen_on": "dev prompts"}
    return metrics, choices
