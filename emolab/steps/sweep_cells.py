"""One sweep cell's computation, as a `engine.Work`: steered texts, their judge scores, the
label-logit shift and the perplexity regime for (emotion, intervention, layer, span, alpha).

The driver (steps/sweep.py) computes what every cell shares once — baseline texts, the
judge evaluator loaded (it remembers its baseline scores), the label-list logits, the
vectors — and puts it here; an executor then
runs cells in this process or on Ray workers, which load the model once (`start`). Cells of
one group share a pass: `generate_cells` and `last_logits_cells` give each cell's rows its
own hooks, the perplexity evaluator scores the prompts and baseline once for the group and
each cell's texts in a forward of their own, and the judge scores each cell as alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..api import Run
from ..runner import generate_cells, last_logits_cells

RESIDUAL = "residual"
# the judge evaluator's metrics that become cell columns (NaN where it reports none)
JUDGE_COLUMNS = (
    "p_target_baseline",
    "p_target",
    "p_target_rise",
    "top_is_target",
    "p_target_minilm",
    "p_target_tfidf",
    "judge_agreement",
)
RANDOM = "random"  # the control: a random direction of the vector's size
REGIMES = ("surgical", "repetitive", "explosive")

Cell = tuple  # (emotion, intervention, layer, span, alpha)
# intervention: RESIDUAL (the sweep's own), RANDOM, a circuit row ('circuit-top<k>' heads,
# 'neurons-top<k>') or its random control ('random-' + the row's name)


@dataclass
class SweepWork:
    model_name: str
    device: str
    dtype: str
    p: dict
    prompts: list[str]
    lists: list[str]
    vecs: dict[str, np.ndarray]
    norms: np.ndarray
    heads: dict[tuple[str, str], str]  # (emotion, circuit row or its random control) -> units
    all_emotions: list[str]
    cols: list[int]
    base: list[str]
    base_logits: np.ndarray
    judge: Any  # the judge evaluator, loaded: it travels with the work, so no worker trains one
    residual: str  # the grid's name for cells of the sweep's intervention (not circuits)
    _live: dict = field(default_factory=dict, repr=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_live"] = {}  # the loaded model and components stay in their process
        return state

    def start(self) -> None:
        if self._live:
            return
        from .. import plugins
        from ..plugins import load_model as load

        p = self.p
        reg = plugins.registry()
        self._live = {
            "model": load(self.model_name, self.device, self.dtype),
            "reg": reg,
            "ppl": reg.get(
                "evaluators",
                "perplexity_ratio",
                max_ratio=p["max_ratio"],
                min_distinct2=p["min_distinct2"],
                max_distinct_drop=p["max_distinct_drop"],
            ),
        }

    def group(self, cell: Cell) -> tuple:
        return cell[1], cell[2], cell[3]

    def hooks(self, cell: Cell) -> list:
        from .common import guarded

        emo, kind, layer, span, alpha = cell
        p, reg, model = self.p, self._live["reg"], self._live["model"]
        vector = self.vecs[emo]
        if kind == RANDOM:
            from .success import random_like

            vector = random_like(vector)
        if kind in (self.residual, RANDOM):
            from .common import configured

            own = span_params(layer, span, alpha, p["scale"], p["positions"])
            inter = configured("interventions", p["intervention"], own, p["intervention_params"])
        else:  # a circuit (or its random control): its heads or neurons scaled by alpha
            from .shared import circuit_kind

            inter = reg.get(
                "interventions",
                "enhance",
                **{circuit_kind(kind): self.heads[(emo, kind)]},
                factor=alpha,
                positions=p["positions"],
            )
        return guarded("interventions", inter, "hooks", model, vector=vector, norms=self.norms)

    def run(self, cells: list[Cell]) -> list[dict]:
        from .common import guarded

        self.start()
        p, model = self.p, self._live["model"]
        hooks = [self.hooks(c) for c in cells]
        steered = generate_cells(model, self.prompts, hooks, p["max_new_tokens"], p["batch_size"])
        # the label-list readout reads a prompt: with the push only on generated tokens it
        # is the unsteered readout, so it is not measured (NaN) rather than a false 0.00
        generated_only = p["positions"] == "generated"
        logits = (
            [None] * len(cells) if generated_only else last_logits_cells(model, self.lists, hooks)
        )
        runs = [
            Run(model, self.prompts, self.base, texts, h, self.all_emotions, c[0])
            for c, h, texts in zip(cells, hooks, steered)
        ]
        # the unsteered model scores the prompts and the baseline once for the whole batch
        ppl = guarded("evaluators", self._live["ppl"], "evaluate_runs", runs)
        return [
            self.score(c, run, None if lg is None else lg[:, self.cols], m)
            for c, run, lg, m in zip(cells, runs, logits, ppl)
        ]

    def score(self, cell: Cell, run: Run, logits: np.ndarray | None, m: dict) -> dict:
        from .common import guarded

        emo, kind, layer, span, alpha = cell
        judged = guarded("evaluators", self.judge, "evaluate", run)
        k = self.all_emotions.index(emo)
        if logits is None:  # not measured (see run)
            shift, others = np.full(len(self.all_emotions), np.nan), np.nan
        else:
            shift = (logits - self.base_logits).mean(0)
            others = np.delete(shift, k).mean() if len(shift) > 1 else 0.0
        return {
            "emotion": emo,
            "intervention": kind,
            "layer": layer,
            "span": span,
            "alpha": alpha,
            **{c: round(float(judged.get(c, np.nan)), 5) for c in JUDGE_COLUMNS},
            "label_logit_shift": round(float(shift[k]), 5),
            "label_logit_shift_vs_others": round(float(shift[k] - others), 5),
            "perplexity_ratio": round(m["perplexity_ratio"], 5),
            "distinct2": round(m["distinct2"], 5),
            "distinct2_baseline": round(m["distinct2_baseline"], 5),
            "regime": REGIMES[int(m["regime_code"])],
            "surgical_share": round(m["surgical_share"], 5),
            "heads": self.heads.get((emo, kind), ""),
            "error": "",
            "steered": list(run.steered_texts),
            # per text, for the success rate the driver computes (popped, never written):
            # the judge's probabilities (from an evaluator that reports them, see api.Run)
            # and the perplexity evaluator's regimes
            "probs": run.extra.get("judge_probs"),
            "labels": run.extra.get("judge_labels"),
            "regimes": run.extra.get("regimes"),
        }


def span_params(layer: int, span: int, alpha: float, scale: str, positions: str) -> dict:
    """What a residual cell sets on its intervention: one layer, or layers
    layer..layer+span-1 with alpha split over them (the same total push, see residual_add)."""
    own = {"layer": layer, "alpha": alpha, "scale": scale, "positions": positions}
    if span > 1:
        own.update(to_layer=layer + span - 1, spread="split")
    return own


def check_range(intervention: str) -> None:
    """A span over several layers needs an intervention that steers a layer range: one
    line otherwise, rather than a span silently steering one layer."""
    from .. import plugins
    from ..errors import BadInput

    declared = {q.name for q in plugins.registry().get("interventions", intervention).params}
    if not {"to_layer", "spread"} <= declared:
        raise BadInput(
            f"intervention '{intervention}' cannot steer a layer range "
            "(it declares no to_layer / spread): use a span of 1"
        )


def failed_cell(cell: Cell, heads: str, error: str) -> dict:
    """The row of a cell that could not be computed: NaN numbers, regime 'failed', the error
    (a resumed sweep computes it again)."""
    emo, kind, layer, span, alpha = cell
    nan = float("nan")
    return {
        "emotion": emo,
        "intervention": kind,
        "layer": layer,
        "span": span,
        "alpha": alpha,
        **{
            c: nan
            for c in (
                *JUDGE_COLUMNS,
                "label_logit_shift",
                "label_logit_shift_vs_others",
                "perplexity_ratio",
                "distinct2",
                "distinct2_baseline",
                "surgical_share",
            )
        },
        "regime": "failed",
        "heads": heads,
        "error": error,
        "steered": [],
    }
