"""A multi-model study, the 20-emotion study as one step: for each model, extract
(comprehension), read the layer curve with its baselines and the generation-based
directions beside it, sweep steering at the peak layer; then one combined table.

The study folder holds `study.json` (the parameters and each model's session) and the
combined `study.csv` / `study.json` rows; every model's work is an ordinary session under
it (`<out>/<model>/`), so each can be opened, shown and replayed alone. Nothing is done
twice: a step already logged `ok` with the same parameters is read back, and the sweep
resumes cell by cell, so a killed study continues where it stopped.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np

from .. import plugins
from ..data import EKMAN6, NEUTRAL_PROMPTS
from ..errors import BadInput
from ..progress import Progress
from ..session import Session, atomic_write
from . import extract, layers, sweep
from . import success as sx
from .common import new_session

DEFAULTS = {
    "models": ["smollm2-135m"],
    "emotions": None,  # default: the `n_emotions` labels with the most single-label texts
    "n_emotions": 20,
    "dataset": "goemotions",
    "baseline": "neutral",
    "method": "mean_diff",
    "layers": "all",
    "limit": 100,
    "test_limit": 50,
    "samples": 20,  # generated texts per label for the generation-based directions
    "gen_tokens": 24,
    "alphas": [0.15, 0.3, 0.5],
    "prompts": 20,  # the first N shipped neutral prompts
    "max_new_tokens": 24,
    "judge_train_limit": 16000,
    "seed": 0,
    "device": "cpu",
    "dtype": "float32",
}
COLUMNS = (
    "model",
    "layers",
    "peak_layer",
    "peak_chosen_on",
    "peak_depth",
    "peak_acc",
    "acc_random",
    "acc_shuffled",
    "acc_generation",
    "wilcoxon_p",
    "sweep_layer",
    "success_test",
    "success_baseline_test",
    "success_random_test",
    "best_p_target_rise",
    "surgical",
    "repetitive",
    "explosive",
    "failed",
    "session",
)


def default_emotions(dataset: str, baseline: str, n: int) -> list[str]:
    """The `n` labels with the most single-label training texts (the study used 20)."""
    counts = Counter(ex.label for ex in plugins.get("datasets", dataset).load(dataset, "train"))
    counts.pop(baseline, None)
    return [label for label, _ in counts.most_common(n)]


def session_dir(out: Path, model: str) -> Path:
    return out / model.replace(":", "_").replace("/", "_")


def logged(session: Session, kind: str, params: dict) -> dict | None:
    """The newest `ok` step of `kind` whose logged parameters include `params`."""
    want = json.loads(json.dumps(params))
    for ev in reversed(session.steps()):
        if ev["kind"] != kind or ev["status"] != "ok":
            continue
        got = ev.get("params", {})
        if all(got.get(k) == v for k, v in want.items()):
            return ev
    return None


def output_of(session: Session, event: dict, suffix: str) -> Path:
    """The file a logged step wrote with this suffix (read through the log, not by name)."""
    rel = next(o for o in event.get("outputs", []) if o.endswith(suffix))
    return session.path / rel


def check(p: dict) -> None:
    if not p["models"]:
        raise BadInput("no models given (e.g. --models smollm2-135m,gemma3-270m)")
    if len(set(p["models"])) != len(p["models"]):
        raise BadInput("a model is listed twice")
    for m in p["models"]:
        plugins.get("models", m)  # unknown names fail before anything loads
    if p["emotions"] is not None and not p["emotions"]:
        raise BadInput("no emotions given")
    if not 1 <= int(p["prompts"]) <= len(NEUTRAL_PROMPTS):
        raise BadInput(f"prompts must be 1-{len(NEUTRAL_PROMPTS)} (the shipped neutral prompts)")
    if not p["alphas"]:
        raise BadInput("alpha list is empty (give e.g. --alphas 0.15,0.3)")


def run(out: str | Path, params: dict, progress: Progress | None = None, engine=None) -> dict:
    """Run (or continue) the study in folder `out`. `engine` runs the sweep cells."""
    progress = progress or Progress()
    p = {**DEFAULTS, **params}
    check(p)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out}: is a file, not a study folder")
    plan = out / "study.json"
    if p["emotions"] is None:
        p["emotions"] = default_emotions(p["dataset"], p["baseline"], int(p["n_emotions"]))
    p["emotions"] = list(p["emotions"])
    out.mkdir(parents=True, exist_ok=True)
    sessions = {m: str(session_dir(out, m)) for m in p["models"]}
    atomic_write(plan, json.dumps({"params": p, "sessions": sessions}, indent=1).encode())
    rows = []
    for i, model in enumerate(p["models"]):
        progress.task(f"study: model {i + 1}/{len(p['models'])} {model}", 0)
        rows.append(run_model(Path(sessions[model]), model, p, progress, engine))
        write_table(out, rows)
    progress.done()
    return {"out": str(out), "params": p, "rows": rows, "csv": str(out / "study.csv")}


def run_model(path: Path, model: str, p: dict, progress: Progress, engine) -> dict:
    """Extract, layer curve (with generation-based directions), sweep at the peak: each
    read back from the session when already done."""
    if (path / "manifest.json").is_file():
        session = Session.open(path)
        if session.model_name != model:
            raise BadInput(f"{path}: session is for model '{session.model_name}', not '{model}'")
    else:
        session = new_session(path, model, p["device"], int(p["seed"]), dtype=p["dtype"])
    ext = {
        "dataset": p["dataset"],
        "emotions": p["emotions"],
        "baseline": p["baseline"],
        "methods": [p["method"]],
        "layers": p["layers"],
        "limit": int(p["limit"]),
        "test_limit": int(p["test_limit"]),
        "seed": int(p["seed"]),
    }
    if logged(session, "extract", ext) is None:
        extract.run(session, ext, progress)
    lay = {"source": "generation", "samples": int(p["samples"]), "gen_tokens": int(p["gen_tokens"])}
    if logged(session, "layers", lay) is None:
        layers.run(session, lay, progress)
    curve = json.loads(output_of(session, logged(session, "layers", lay), ".json").read_text())
    summary = curve["summary"][p["method"]]
    peak = int(summary["peak_layer"])
    sw = {
        "emotions": p["emotions"],
        "layers": [peak],
        "alphas": [float(a) for a in p["alphas"]],
        "method": p["method"],
        "prompts": list(NEUTRAL_PROMPTS[: int(p["prompts"])]),
        "max_new_tokens": int(p["max_new_tokens"]),
        "judge_train_limit": int(p["judge_train_limit"]),
        "judge_params": {} if set(p["emotions"]) <= set(EKMAN6) else {"task": "goemotions"},
    }
    done = logged(session, "sweep", sw)
    if done is None:
        cells = sweep.run(session, sw, progress, engine=engine)["rows"]
    else:
        cells = list(sweep.read_cells(session, output_of(session, done, ".csv").name).values())
    return summarise(model, session, curve, peak, cells, p)


def summarise(model: str, session: Session, curve: dict, peak: int, cells, p: dict) -> dict:
    """One row: where the emotions are best read (with chance levels), how the
    generation-based directions read there, and how steering at that layer went."""
    method = p["method"]
    at_peak = [r for r in curve["rows"] if r["method"] == method and r["layer"] == peak]
    src = (curve.get("sources") or {}).get("rows") or []
    gen = [r["acc_generation"] for r in src if r["method"] == method and r["layer"] == peak]
    tests = (curve.get("sources") or {}).get("tests", {}).get(method, {})
    residual = [c for c in cells if c["intervention"] == sweep.RESIDUAL]
    best = sx.best_on_dev(residual)  # chosen on the dev prompts, reported on the test ones
    head = sx.headline(best)
    regimes = Counter(c["regime"] for c in residual)
    n_layers = int(session.manifest["model"]["layers"])

    def mean(key: str) -> float:
        return round(float(np.mean([r[key] for r in at_peak])), 4)

    return {
        "model": model,
        "layers": n_layers,
        "peak_layer": peak,
        # the layer is chosen on this split; the accuracies are the test split's
        "peak_chosen_on": curve["summary"][method].get("chosen_on", "test"),
        "peak_depth": round(peak / max(n_layers - 1, 1), 3),
        "peak_acc": mean("acc"),
        "acc_random": mean("acc_random"),
        "acc_shuffled": mean("acc_shuffled"),
        "acc_generation": round(float(np.mean(gen)), 4) if gen else float("nan"),
        "wilcoxon_p": round(float(tests.get("acc_wilcoxon_p", float("nan"))), 4),
        "sweep_layer": peak,
        # steps/success.py: judge's top label is the target and the text stayed surgical, at
        # each emotion's dev-chosen alpha, on the test prompts, beside unsteered and random
        **{
            k: round(float(head.get(k, float("nan"))), 4)
            for k in ("success_test", "success_baseline_test", "success_random_test")
        },
        "best_p_target_rise": round(
            float(np.mean([b["p_target_rise"] for b in best.values() if b] or [np.nan])), 4
        ),
        **{k: regimes.get(k, 0) for k in ("surgical", "repetitive", "explosive", "failed")},
        "session": str(session.path),
    }


def write_table(out: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r[c] for c in COLUMNS})
    atomic_write(out / "study.csv", buf.getvalue().encode())
    atomic_write(out / "study-rows.json", json.dumps(rows, indent=1).encode())
