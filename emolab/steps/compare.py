"""Compare the emotion space of a base model with its fine-tuned checkpoints.

The source study found the geometry (cosine with the base vector, similarity within an
emotion, orthogonality between emotions, linear probes) nearly unchanged by classifier
fine-tuning while the steering sensitivity (label-logit rise per unit alpha under the list
prompt) fell for most emotions. This step measures both on sessions extracted from each
checkpoint with the same texts, steering each checkpoint with its own vector and with the
base model's, and names the emotions whose sensitivity falls, holds or rises.

It is logged in the base session (the first one), whose artifacts get the tables.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from .. import plugins
from ..errors import BadInput
from ..labels import LabelTokens, label_logits, prompt, resolve
from ..params import Param, defaults, validate
from ..progress import Progress
from ..session import Session
from ..tables import to_csv
from .align import check_same_texts
from .common import emotion_vector, session_model
from .finetune import checkpoint_info
from .guard import guarded
from .readout import binary_scores, multiclass_accuracy, unit

PARAMS = (
    Param("others", list, [], "checkpoint sessions, in training order", item=str),
    Param("layer", int, None, "steering layer (default: the base session's)", min=0),
    Param("alphas", list, [0.1, 0.2], "strengths", item=float),
    Param("n_texts", int, 8, "neutral test texts the label-logit rise is averaged over", min=1),
    Param("method", str, None, "which vector set"),
    Param(
        "fall",
        float,
        0.8,
        "last/base sensitivity below this: falls; above 1/fall: rises",
        min=0.0,
        max=1.0,
    ),
)
DEFAULTS = defaults(PARAMS)
CHART_WIDTH = 40


def check_compatible(base: Session, other: Session) -> None:
    """Same width and depth (one architecture), or a one-line pointer to `emolab align`."""
    ma, mb = base.manifest["model"], other.manifest["model"]
    if ma["d_model"] != mb["d_model"] or ma["layers"] != mb["layers"]:
        raise BadInput(
            f"{other.path} ({mb['name']}, {mb['layers']} layers x {mb['d_model']}) is not "
            f"the architecture of {base.path} ({ma['name']}, {ma['layers']} x {ma['d_model']}): "
            "compare needs checkpoints of one model; use `emolab align` across models"
        )


def training_step(session: Session) -> int:
    """The fine-tuning step of a session's model: its checkpoint's, 0 for a base model."""
    info = session_checkpoint(session)
    return int(info["step"]) if info else 0


def within_similarity(x: np.ndarray, mu: np.ndarray) -> float:
    """Mean pairwise cosine of one emotion's mean-centred activations (cluster tightness)."""
    u = unit(x - mu)
    n = len(u)
    if n < 2:
        return float("nan")
    s = u.sum(0)
    return float((s @ s - n) / (n * (n - 1)))


def geometry(s: Session, base_vecs: dict, emotions: list[str], baseline: str, method) -> list[dict]:
    """Rows per emotion and layer: cosine with the base vector, held-out probe accuracy,
    within-emotion similarity, and per layer the between-emotion |cosine| and 7-way accuracy."""
    arrays, meta = s.load_arrays("activations.safetensors")
    ex = s.read_json("examples.json")
    layers = list(meta.layers)
    n_layers = int(s.manifest["model"]["layers"])
    y_tr = np.array([lab for lab, _ in ex["train"]])
    y_te = np.array([lab for lab, _ in ex["test"]])
    vecs = {e: emotion_vector(s.load_vectors(method)[0], e, n_layers) for e in emotions}
    rows = []
    for li, layer in enumerate(layers):
        xt = arrays["train"][:, li].astype(np.float64)
        xe = arrays["test"][:, li].astype(np.float64)
        mu = xt.mean(0)
        units = [unit(vecs[e][layer].astype(np.float64)) for e in emotions]
        acc7 = multiclass_accuracy(units, xt, y_tr, xe, y_te, emotions, baseline)
        between = float(
            np.mean(
                [
                    abs(units[i] @ units[j])
                    for i in range(len(units))
                    for j in range(i + 1, len(units))
                ]
            )
            if len(units) > 1
            else float("nan")
        )
        for e, u in zip(emotions, units, strict=True):
            keep_tr = (y_tr == e) | (y_tr == baseline)
            keep_te = (y_te == e) | (y_te == baseline)
            acc, _, _ = binary_scores(
                u, xt[keep_tr], y_tr[keep_tr] == e, xe[keep_te], y_te[keep_te] == e
            )
            b = base_vecs[e][layer].astype(np.float64)
            rows.append(
                {
                    "emotion": e,
                    "layer": layer,
                    "cos_base": float(u @ unit(b)),
                    "probe_acc": acc,
                    "within": within_similarity(xt[y_tr == e], mu),
                    "between_abs_cos": between,
                    "acc7": acc7,
                }
            )
    return rows


def sensitivity(
    s: Session,
    vec_sets: dict[str, dict[str, np.ndarray]],
    labels: list[str],
    emotions: list[str],
    texts: list[str],
    layer: int,
    alphas: list[float],
    progress: Progress,
) -> tuple[list[dict], LabelTokens]:
    """Label-logit rise per alpha for each emotion and vector source, on one checkpoint.

    The slope is a least-squares fit through the origin of the target label's mean logit
    rise against alpha (alpha relative to the layer's mean residual norm).
    """
    model = session_model(s)
    tokens = resolve(model.tokenizer, labels, "en", model.name)
    prompts = [prompt(t, labels, "en") for t in texts]
    norms = np.asarray(s.read_json("layer_norms.json")["mean_resid_norm"])
    reg = plugins.registry()
    clean = label_logits(model, prompts, tokens, check=progress.check)
    a = np.asarray(alphas, dtype=np.float64)
    rows = []
    for source, vecs in vec_sets.items():
        for e in emotions:
            col = labels.index(e)
            rises, specific = [], []
            for alpha in alphas:
                progress.check()
                inter = reg.get(
                    "interventions",
                    "residual_add",
                    layer=layer,
                    alpha=alpha,
                    scale="relative",
                    positions="all",
                )
                hooks = guarded("interventions", inter, "hooks", model, vector=vecs[e], norms=norms)
                shift = (label_logits(model, prompts, tokens, hooks) - clean).mean(0)
                rises.append(float(shift[col]))
                others = [shift[i] for i, lab in enumerate(labels) if lab != e]
                specific.append(float(shift[col] - np.mean(others)))
            rows.append(
                {
                    "emotion": e,
                    "vector": source,
                    "slope": float(a @ np.asarray(rises) / (a @ a)),
                    "slope_specific": float(a @ np.asarray(specific) / (a @ a)),
                    **{f"rise@{alpha:g}": r for alpha, r in zip(alphas, rises, strict=True)},
                }
            )
    return rows, tokens


def verdicts(sens: list[dict], emotions: list[str], fall: float) -> dict[str, dict]:
    """Per emotion: own-vector sensitivity of the last checkpoint over the base model's."""
    steps = sorted({r["step"] for r in sens})
    first, last = steps[0], steps[-1]
    out = {}
    for e in emotions:
        own = {r["step"]: r["slope"] for r in sens if r["emotion"] == e and r["vector"] == "own"}
        b, z = own[first], own[last]
        if b <= 0:
            verdict = "no rise at base"
        elif z / b < fall:
            verdict = "falls"
        elif z / b > 1 / fall:
            verdict = "rises"
        else:
            verdict = "holds"
        out[e] = {
            "base": b,
            "last": z,
            "ratio": z / b if b > 0 else float("nan"),
            "verdict": verdict,
        }
    return out


def chart(sens: list[dict], emotions: list[str], names: dict[int, str]) -> str:
    """A text bar chart of own-vector sensitivity per emotion over training steps (the
    project ships no plotting library; the csv beside it holds the same numbers)."""
    own = [r for r in sens if r["vector"] == "own"]
    top = max((abs(r["slope"]) for r in own), default=0.0) or 1.0
    width = max(len(n) for n in names.values())
    lines = ["steering sensitivity (label-logit rise per alpha, own vector) over training", ""]
    for e in emotions:
        lines.append(e)
        for r in sorted((r for r in own if r["emotion"] == e), key=lambda r: r["step"]):
            n = int(round(abs(r["slope"]) / top * CHART_WIDTH))
            bar = ("#" if r["slope"] >= 0 else "-") * n
            lines.append(f"  {names[r['step']]:<{width}} {r['slope']:+9.3f} {bar}")
    return "\n".join(lines) + "\n"


def run(session: Session, params: dict, progress: Progress | None = None) -> dict:
    progress = progress or Progress()
    p = validate(PARAMS, params, "compare")
    others = [str(o) for o in p["others"]]
    if not others:
        raise BadInput("compare needs the base session and at least one checkpoint session")
    alphas = [float(a) for a in p["alphas"]]
    if not alphas or any(a == 0 for a in alphas):
        raise BadInput("alphas must be non-zero numbers")
    sessions = [session] + [Session.open(o) for o in others]
    for s in sessions[1:]:
        check_compatible(session, s)
        check_same_texts(session, s)
    _, meta = session.load_vectors(p["method"])
    emotions, baseline = list(meta.emotions), meta.baseline
    for s in sessions[1:]:
        m = s.load_vectors(p["method"])[1]
        if m.emotions != meta.emotions or m.baseline != baseline:
            raise BadInput(
                f"{s.path} holds vectors for {','.join(m.emotions)} vs {m.baseline}, the base "
                f"session {','.join(emotions)} vs {baseline}: extract both with the same emotions"
            )
    n_layers = int(session.manifest["model"]["layers"])
    layers = list(meta.layers)
    if p["layer"] is None:
        from .align import default_layer

        p["layer"] = default_layer(session, layers)
    layer = int(p["layer"])
    if layer not in layers:
        raise BadInput(f"layer {layer} was not extracted (extracted: {','.join(map(str, layers))})")
    base_vecs = {
        e: emotion_vector(session.load_vectors(p["method"])[0], e, n_layers) for e in emotions
    }
    ex = session.read_json("examples.json")
    texts = [t for lab, t in ex["test"] if lab == baseline][: int(p["n_texts"])]
    if not texts:
        raise BadInput(f"the base session has no '{baseline}' test texts to steer")
    steps = [training_step(s) for s in sessions]
    if len(set(steps)) != len(steps):
        raise BadInput(
            "two sessions are of the same training step ("
            + ", ".join(f"{s.path}: {st}" for s, st in zip(sessions, steps, strict=True))
            + "); give the base session first, then one session per checkpoint"
        )
    names = {st: ("base" if st == 0 else f"step-{st}") for st in steps}
    labels = prompt_labels(sessions, emotions + [baseline])

    with session.step("compare", p) as rec, threadpool_limits(1, user_api="blas"):
        geo, sens = [], []
        progress.task("geometry", len(sessions))
        for i, (s, st) in enumerate(zip(sessions, steps, strict=True)):
            progress.check()
            for r in geometry(s, base_vecs, emotions, baseline, p["method"]):
                geo.append({"session": str(s.path), "step": st, **r})
            progress.update(i + 1)
        progress.task(f"steering sensitivity at L{layer}", len(sessions))
        collisions = {}
        for i, (s, st) in enumerate(zip(sessions, steps, strict=True)):
            own = {e: emotion_vector(s.load_vectors(p["method"])[0], e, n_layers) for e in emotions}
            vec_sets = {"own": own} if s is session else {"own": own, "base": base_vecs}
            rows, tokens = sensitivity(
                s, vec_sets, labels, emotions, texts, layer, alphas, progress
            )
            if tokens.collisions:
                collisions[names[st]] = tokens.collision_note()
            for r in rows:
                sens.append({"session": str(s.path), "step": st, **r})
            if s is session:  # the base model with its own vector is also the base-vector row
                sens += [{**r, "vector": "base"} for r in sens[-len(rows) :]]
            progress.update(i + 1)
        found = verdicts(sens, emotions, float(p["fall"]))
        text_chart = chart(sens, emotions, names)
        wide = [
            {
                "step": st,
                "checkpoint": names[st],
                **{
                    f"{e}/{v}": next(
                        r["slope"]
                        for r in sens
                        if r["step"] == st and r["emotion"] == e and r["vector"] == v
                    )
                    for e in emotions
                    for v in ("own", "base")
                },
            }
            for st in steps
        ]
        tag = f"compare-{rec['seq']:03d}"
        session.write_artifact(f"{tag}-geometry.csv", to_csv(geo))
        session.write_artifact(f"{tag}-sensitivity.csv", to_csv(sens))
        session.write_artifact(f"{tag}-sensitivity-by-step.csv", to_csv(wide))
        session.write_artifact(f"{tag}-chart.txt", text_chart)
        summary = summarise(geo, sens, steps, names, layer, emotions, sessions)
        session.write_json(
            f"{tag}.json",
            {
                "summary": summary,
                "verdicts": found,
                "geometry": geo,
                "sensitivity": sens,
                "layer": layer,
                "emotions": emotions,
            },
        )
        rec["outputs"] = [
            f"artifacts/{n}"
            for n in (
                f"{tag}-geometry.csv",
                f"{tag}-sensitivity.csv",
                f"{tag}-sensitivity-by-step.csv",
                f"{tag}-chart.txt",
                f"{tag}.json",
            )
        ]
        for row in summary:
            tag = row["checkpoint"]
            for key in ("cos_base", "within", "between_abs_cos", "probe_acc", "acc7"):
                rec["metrics"][f"{key}/{tag}"] = row[key]
            for r in sens:
                if r["step"] == row["step"]:
                    rec["metrics"][f"sensitivity/{r['vector']}/{r['emotion']}/{tag}"] = r["slope"]
    progress.done()
    return {
        "base": str(session.path),
        "layer": layer,
        "alphas": alphas,
        "emotions": emotions,
        "checkpoints": [names[st] for st in steps],
        "summary": summary,
        "verdicts": found,
        "sensitivity": sens,
        "chart": text_chart,
        "collisions": collisions,
        "n_texts": len(texts),
        "artifacts": rec["outputs"],
    }


def session_checkpoint(s: Session) -> dict | None:
    name = s.model_name
    return checkpoint_info(name[3:]) if name.startswith("hf:") else None


def prompt_labels(sessions: list[Session], wanted: list[str]) -> list[str]:
    """The labels the list prompt names: the fine-tune's own list (its order) when it covers
    the session's emotions, so checkpoints are scored under the prompt they learnt."""
    for s in sessions:
        info = session_checkpoint(s)
        if info and set(wanted) <= set(info.get("labels", [])):
            return list(info["labels"])
    return wanted


def test_accuracies(sessions: list[Session], steps: list[int]) -> dict[int, float]:
    """Each checkpoint's test accuracy from its fine-tune record (step 0: the base model's)."""
    out = {}
    for s in sessions:
        info = session_checkpoint(s)
        if info:
            for h in info.get("history", []):
                out[int(h["step"])] = h["accuracy"]
    return {st: out[st] for st in steps if st in out}


def summarise(geo, sens, steps, names, layer, emotions, sessions) -> list[dict]:
    """One row per checkpoint at the steering layer: geometry means and mean sensitivities."""
    out = []
    accs = test_accuracies(sessions, steps)
    for s, st in zip(sessions, steps, strict=True):
        g = [r for r in geo if r["step"] == st and r["layer"] == layer]
        own = [r["slope"] for r in sens if r["step"] == st and r["vector"] == "own"]
        base = [r["slope"] for r in sens if r["step"] == st and r["vector"] == "base"]
        out.append(
            {
                "checkpoint": names[st],
                "step": st,
                "model": s.model_name,
                "test_accuracy": accs.get(st),
                "cos_base": float(np.mean([r["cos_base"] for r in g])),
                "within": float(np.mean([r["within"] for r in g])),
                "between_abs_cos": g[0]["between_abs_cos"],
                "probe_acc": float(np.mean([r["probe_acc"] for r in g])),
                "acc7": g[0]["acc7"],
                "sensitivity_own": float(np.mean(own)),
                "sensitivity_base_vector": float(np.mean(base)),
            }
        )
    return out
