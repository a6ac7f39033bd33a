"""Transfer steering for the align step: steer model B with A's vector carried into B by an
aligner's direction map, beside B's own vector and a random one."""

from __future__ import annotations

import numpy as np

from .. import plugins
from ..api import Aligner
from ..progress import Progress
from ..session import Session
from .align_scores import Pairs, Scaler, mapped
from .common import guarded, session_model
from .guard import Guarded


def transfer(
    sb: Session,
    p: dict,
    mapper: Aligner,
    data: Pairs,
    vb: dict[str, np.ndarray],
    sc_b: Scaler,
    progress: Progress,
) -> dict:
    """Steer model B with A's vector mapped into B (by `mapper`, fitted on the train rows),
    beside B's own vector and a random one of the same norm, each at the same relative
    strength, judged by the classifier evaluator when it is installed, else by the
    label-logit shift. `data` is in the (possibly standardised) alignment space, `vb` in B's
    raw space; the mapped vector goes back to B's raw space through `sc_b`."""
    from ..api import Run
    from ..data import NEUTRAL_PROMPTS
    from ..runner import generate

    reg = plugins.registry()
    judge = p["transfer_judge"]
    if judge == "auto":
        judge = "classifier" if "classifier" in reg.names("evaluators") else "label_logit_shift"
    evaluators = [
        reg.get("evaluators", name) for name in dict.fromkeys([judge, "label_logit_shift"])
    ]
    a_fit, b_fit, _ = data.split(mapper.pairs, "train")
    fitted = Guarded("aligners", mapper).fit(a_fit, b_fit)
    model = session_model(sb)
    norms = np.asarray(sb.read_json("layer_norms.json")["mean_resid_norm"])
    prompts = list(NEUTRAL_PROMPTS[: int(p["transfer_prompts"])])
    rng = np.random.default_rng(int(p["seed"]))
    lb = int(p["layer_b"])
    d_b = data.b_tr.shape[1]
    rows, metrics = [], {}
    progress.task(f"transfer steering ({judge})", len(data.emotions) * 3 + 1)
    base = generate(model, prompts, (), 24, check=progress.check)
    done = 1
    for e in data.emotions:
        candidates = {
            "mapped": sc_b.back(mapped(fitted, data.va[e], d_b)),
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
            run_ = Run(model, prompts, base, steered, hooks, data.emotions, e)
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
        "aligner": mapper.name,
        "alpha": p["transfer_alpha"],
        "layer_b": lb,
        "rows": rows,
        "metrics": metrics,
    }
