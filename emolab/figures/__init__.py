"""Publication figures of a session's results, one function per result kind.

Every figure reads what a real step wrote, found through the session log
(`emolab.results`), never by globbing: `plot(session, "layers")` draws the latest
`layers` step of the session. Each builder returns `Figure`s; `plot` saves them as png,
svg or pdf. A session that lacks the asked result is a `BadInput` naming the step to run.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from .. import results
from ..errors import BadInput, SessionError
from ..session import Session
from . import accuracy, causal, geometry
from .style import FORMATS, save, style


@dataclass(frozen=True)
class Drawn:
    """One figure of a session: its file stem, what it shows, and the step it came from."""

    name: str
    caption: str
    seq: int
    figure: Figure


def _json(out: results.Output) -> dict:
    try:
        return json.loads(out.path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SessionError(f"{out.path}: corrupt (not valid JSON)") from None


def _need(session: Session, kind: str, suffix: str, run: str) -> results.Output:
    out = results.latest(session, kind, suffix=suffix)
    if out is None:
        raise BadInput(f"{session.path}: no {kind} results to plot (run: {run} first)")
    return out


def _layers_out(session: Session) -> results.Output:
    return _need(session, "layers", ".json", f"emolab layers {session.path}")


def draw_layers(session: Session) -> list[Drawn]:
    out = _layers_out(session)
    data = _json(out)
    dataset = out.params.get("dataset")
    title = "Emotion vs baseline, mean over emotions" + (f" ({dataset} test)" if dataset else "")
    split = accuracy.peak_split(next(iter(data["summary"].values())))
    cap = (
        "Held-out balanced accuracy per layer (mean over emotions) for each method; grey band: "
        "random directions; dotted, method-coloured band: shuffled-label refits (±1 sd); "
        f"dash-dot: surface features; dashed: chance; star: peak layer, chosen on the {split} "
        "split."
    )
    return [Drawn("layers", cap, out.seq, accuracy.layer_curve(data, title))]


def draw_cosines(session: Session) -> list[Drawn]:
    out = _layers_out(session)
    data = _json(out)
    emotions = list(dict.fromkeys(r["emotion"] for r in data["rows"]))
    method, layer = accuracy.cosine_layer(data)
    cap = (
        f"Cosine similarity between emotions at layer {layer} ({method}'s peak): class "
        "centroids raw, the same after subtracting the mean activation, and the directions."
    )
    return [Drawn("cosines", cap, out.seq, accuracy.cosines(data, emotions))]


def draw_heads(session: Session) -> list[Drawn]:
    latest: dict[str, results.Output] = {}
    for out in results.outputs(session, "heads", suffix=".json"):
        if out.path.is_file():
            latest[out.params.get("emotion", "")] = out
    if not latest:
        raise BadInput(
            f"{session.path}: no heads results to plot "
            f"(run: emolab heads {session.path} --emotion E first)"
        )
    drawn = []
    for emo, out in latest.items():
        data = _json(out)
        cap = (
            f"Effect of each attention head on {data['metric']} for {emo} (clean minus patched "
            "to the neutral mean; red raises, blue lowers, 0 white); top heads by |effect| "
            "outlined and ranked."
        )
        drawn.append(Drawn(f"heads-{emo}", cap, out.seq, causal.head_map(data)))
    return drawn


def read_csv(path: Path) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    for r in rows:
        for k, v in r.items():
            try:
                r[k] = float(v)
            except (TypeError, ValueError):
                pass
    return rows


def draw_sweep(session: Session) -> list[Drawn]:
    out = _need(session, "sweep", ".csv", f"emolab sweep {session.path} --emotion E")
    rows = read_csv(out.path)
    if not any(r.get("intervention", "residual") == "residual" for r in rows):
        raise BadInput(f"{out.path}: the sweep has no residual (layer x alpha) cells to plot")
    key, label = causal.sweep_value(rows)
    choices = out.event.get("choices") or {}
    chosen = {}  # emotion -> (layer, span, alpha) the dev prompts chose (winner's unprefixed)
    for name, c in choices.items():
        emo = name.removeprefix("best_cell/")
        if name.startswith("best_cell/") and "/" not in emo:
            span = (choices.get(f"best_span/{emo}") or {}).get("value", 1)
            chosen[emo] = (int(c["value"][0]), int(span), float(c["value"][1]))
    outlined = "the cell chosen on the dev prompts" if chosen else "best surgical cell"
    cap = (
        f"Steering sweep: {label} per layer and alpha for each emotion; the unsteered value "
        "in each title; R repetitive, E explosive (perplexity ratio), unmarked surgical; "
        f"outlined: {outlined}."
    )
    judge = str(out.params.get("judge", ""))
    source = (choices.get("best_source") or {}).get("value")
    fig = causal.sweep_grid(rows, judge, chosen or None, source)
    return [Drawn("sweep", cap, out.seq, fig)]


def draw_align(session: Session) -> list[Drawn]:
    out = _need(session, "align", ".json", f"emolab align {session.path} SESSION_B")
    data = _json(out)
    cap = (
        f"Alignment of {data['model_a']} (A) and {data['model_b']} (B): linear CKA between "
        "every layer pair with the best depth-monotone correspondence; every score at "
        f"A L{data['layer_a']} / B L{data['layer_b']} beside its permutation baseline."
    )
    return [Drawn("align", cap, out.seq, geometry.alignment(data))]


def draw_checkpoints(session: Session) -> list[Drawn]:
    out = _need(session, "compare", ".json", f"emolab compare {session.path} CHECKPOINT...")
    data = _json(out)
    cap = (
        "Steering sensitivity (least-squares slope of the target label's logit rise against "
        f"alpha) at layer {data['layer']} over fine-tune steps; solid: each checkpoint's own "
        "vector, dashed: the base model's vector."
    )
    return [Drawn("checkpoints", cap, out.seq, geometry.checkpoints(data))]


def draw_crosslingual(session: Session) -> list[Drawn]:
    out = _need(session, "crosslingual", ".json", "emolab crosslingual")
    data = _json(out)
    cap = (
        "Cross-lingual carry-over: the target label's specific logit rise when steering with "
        "the prompt language's own vectors, the other language's, and random directions."
    )
    return [Drawn("crosslingual", cap, out.seq, geometry.crosslingual(data))]


# WHAT -> (the step kind it reads, its builder)
KINDS: dict[str, tuple[str, Callable[[Session], list[Drawn]]]] = {
    "layers": ("layers", draw_layers),
    "cosines": ("layers", draw_cosines),
    "heads": ("heads", draw_heads),
    "sweep": ("sweep", draw_sweep),
    "align": ("align", draw_align),
    "checkpoints": ("compare", draw_checkpoints),
    "crosslingual": ("crosslingual", draw_crosslingual),
}


def available(session: Session) -> list[str]:
    """The figure kinds this session has results for, in KINDS order."""
    kinds = {e.get("kind") for e in session.steps() if e.get("status") == "ok"}
    return [what for what, (kind, _) in KINDS.items() if kind in kinds]


def draw(session: Session, what: str | None = None) -> list[Drawn]:
    """Every figure of one kind (or of every kind the session has), built in the house
    style. Unknown kinds and missing results are BadInput."""
    check_what(what)
    wanted = [what] if what else available(session)
    if not wanted:
        raise BadInput(f"{session.path}: no results to plot (the log has no step with a figure)")
    drawn: list[Drawn] = []
    with style():
        for w in wanted:
            drawn += KINDS[w][1](session)
    return drawn


def check_what(what: str | None) -> None:
    if what is not None and what not in KINDS:
        raise BadInput(f"unknown figure '{what}' (known: {', '.join(KINDS)})")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise BadInput(f"unknown figure format '{fmt}' (known: {', '.join(FORMATS)})")
    return fmt


def plot_file(path: Path, fmt: str = "png", out: Path | None = None) -> list[Path]:
    """The figure of a vector file (a published set): its recorded accuracy by layer and
    the cosines between its emotion directions at the recorded peak."""
    from ..session import read_vectors

    check_format(fmt)
    vectors, meta = read_vectors(Path(path))
    if "mean_acc_by_layer" not in meta.extra or "peak_layer" not in meta.extra:
        raise BadInput(
            f"{path}: records no accuracy by layer (only vectors/publish.py sets do); "
            "plot the session it came from instead"
        )
    folder = Path(out) if out is not None else Path(path).parent
    with style():
        fig = accuracy.vector_set(vectors, meta, Path(path).stem)
        return [save(fig, folder / f"{Path(path).stem}.{fmt}", fmt)]


def plot(
    session: Session, what: str | None = None, fmt: str = "png", out: Path | None = None
) -> list[Path]:
    """Draw and save; returns the files written (`out`, default SESSION/figures)."""
    check_format(fmt)
    folder = Path(out) if out is not None else session.path / "figures"
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"{folder}: is a file, not a folder for figures")
    paths = []
    drawn = draw(session, what)
    with style():
        for d in drawn:
            paths.append(save(d.figure, folder / f"{d.name}.{fmt}", fmt))
    return paths
