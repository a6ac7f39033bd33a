"""Replay: re-run a session's log into a new session and compare everything it can:
metrics, choices, vectors, generated texts, input file hashes and plugin versions
(`replay_compare`). Steps cut off by a crash or failed in the original are skipped and
named. The comparison is written into the replayed session too."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .. import plugins
from ..errors import BadInput, SessionError
from ..models import tolerance
from ..plugins import load_model as load
from ..progress import Progress
from ..session import Session
from . import replay_compare as rc
from .replay_compare import Comparison

COMPARISON = "replay-comparison.json"
__all__ = ["Comparison", "replay", "missing_plugins", "free_replay_path"]


def missing_plugins(session: Session) -> list[str]:
    """Components the session used that no installed plugin provides, with their package."""
    reg = plugins.registry()
    out = []
    for key, info in session.manifest.get("plugins", {}).items():
        kind, name = key.split(":", 1)
        if name not in reg.components.get(kind, {}):
            out.append(
                f"{name} ({kind[:-1]}) from package '{info.get('package') or info['plugin']}'"
                f" {info.get('version', '')}".strip()
            )
    return out


def free_replay_path(path: Path) -> Path:
    """`<name>-replay`, or `-replay-2`, `-replay-3`...: replaying again never overwrites."""
    out, n = path.with_name(path.name + "-replay"), 1
    while out.exists():
        n += 1
        out = path.with_name(f"{path.name}-replay-{n}")
    return out


def replay(
    src: str | Path,
    out: str | Path | None = None,
    device: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    progress: Progress | None = None,
    strict: bool = False,
) -> tuple[Session, Comparison]:
    """Re-run every finished step of `src` into a new session and compare. `strict`: a
    plugin whose version differs from the original's is a mismatch, not just a note."""
    from . import PARAMS, STEPS

    progress = progress or Progress()
    original = Session.open(src)
    cmp = Comparison()
    for ev in original.interrupted():
        progress.task(f"note: step #{ev['seq']} ({ev['kind']}) was interrupted: skipped", 0)
        cmp.add(f"{ev['kind']}#{ev['seq']}", "interrupted", "skipped", 0.0, True, "interrupted")
    for ev in original.steps():
        if ev["status"] == "failed":
            cmp.add(f"{ev['kind']}#{ev['seq']}", "failed", "skipped", 0.0, True, "failed")
    steps = [e for e in original.steps() if e["status"] == "ok"]
    if not steps:
        raise SessionError(f"{original.path}: nothing to replay (no finished step)")
    unknown = [e["kind"] for e in steps if e["kind"] not in STEPS]
    if unknown:
        raise SessionError(f"{original.path}: cannot replay step kind(s) {', '.join(unknown)}")
    missing = missing_plugins(original)
    if missing:
        raise BadInput(
            "replay needs plugins that are not installed: "
            + "; ".join(missing)
            + " (install them with `emolab install`)"
        )
    meta = original.manifest["model"]
    device = device or "cpu"
    dtype = meta.get("dtype", "float32")
    model = load(meta["name"], device, dtype)
    dt_rtol, dt_atol = tolerance(dtype)  # unless given: what the session's dtype allows
    rtol = dt_rtol if rtol is None else rtol
    atol = dt_atol if atol is None else atol
    if meta.get("sha256") and model.meta.get("sha256") != meta["sha256"]:
        raise BadInput(
            f"model '{meta['name']}' weights differ from the session's "
            f"(sha256 {model.meta.get('sha256', '?')[:12]} vs {meta['sha256'][:12]})"
        )
    out = Path(out) if out else free_replay_path(original.path)
    new = Session.create(
        out,
        {**meta, "device": device},
        seed=original.manifest.get("seed", 0),
        replay_of=str(original.path.resolve()),
    )

    def tokenize(text: str) -> list[str]:
        ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
        return [model.tokenizer.decode([i]) for i in ids]

    for ev in steps:
        declared = {q.name for q in PARAMS.get(ev["kind"], ())} or set(ev["params"])
        params = {k: v for k, v in ev["params"].items() if k in declared}
        STEPS[ev["kind"]](new, params, progress)
        mine = new.steps()[-1]
        tag = f"{ev['kind']}#{ev['seq']}"
        rc.metrics(cmp, tag, ev.get("metrics") or {}, mine.get("metrics") or {}, rtol, atol)
        rc.choices(cmp, tag, ev.get("choices") or {}, mine.get("choices") or {})
        rc.inputs(cmp, tag, ev.get("inputs") or {}, mine.get("inputs") or {})
        rc.plugins(cmp, tag, ev.get("plugins") or {}, mine.get("plugins") or {}, strict)
        rc.texts(
            cmp,
            tag,
            [original.path / o for o in ev.get("outputs") or []],
            [new.path / o for o in mine.get("outputs") or []],
            tokenize,
        )
    for method in original.methods():
        a, _ = original.load_vectors(method)
        b, _ = new.load_vectors(method)
        for key in sorted(a):
            if key not in b:
                cmp.add(f"vector {method}:{key}", "present", "missing", math.inf, False)
                continue
            scale = float(np.linalg.norm(a[key])) or 1.0
            diff = float(np.linalg.norm(a[key] - b[key])) / scale
            cmp.add(f"vector {method}:{key}", f"|v|={scale:.4g}", "", diff, diff <= max(rtol, 1e-6))
    record(new, cmp, strict)
    return new, cmp


def record(new: Session, cmp: Comparison, strict: bool) -> None:
    """The comparison goes into the replayed session (artifacts/replay-comparison.json,
    summarised in its manifest), so the replay carries its own verdict."""
    new.write_artifact(COMPARISON, json.dumps({**cmp.as_dict(), "strict": strict}, default=str))
    summary = {k: v for k, v in cmp.as_dict().items() if k != "rows"}
    new.update_manifest(
        lambda m: m.update(replay_comparison={**summary, "path": f"artifacts/{COMPARISON}"})
    )
