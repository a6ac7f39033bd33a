"""Replay: re-run a session's log into a new session and compare every metric and vector."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import plugins
from ..errors import BadInput, SessionError
from ..models import load, tolerance
from ..progress import Progress
from ..session import Session


@dataclass
class Comparison:
    rows: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r["ok"] for r in self.rows)

    def add(self, what: str, original, replayed, diff: float, ok: bool) -> None:
        self.rows.append(
            {"what": what, "original": original, "replayed": replayed, "diff": diff, "ok": ok}
        )


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
) -> tuple[Session, Comparison]:
    from . import STEPS

    progress = progress or Progress()
    original = Session.open(src)
    if original.status().startswith("interrupted"):
        progress.task(f"note: original session {original.status()}", 0)
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
    cmp = Comparison()
    for ev in steps:
        STEPS[ev["kind"]](new, dict(ev["params"]), progress)
        mine = new.steps()[-1]
        for key, value in sorted(ev.get("metrics", {}).items()):
            got = mine.get("metrics", {}).get(key)
            if got is None:
                cmp.add(f"{ev['kind']}#{ev['seq']} {key}", value, None, math.inf, False)
                continue
            diff = abs(float(got) - float(value))
            ok = (math.isnan(value) and math.isnan(got)) or diff <= atol + rtol * abs(float(value))
            cmp.add(f"{ev['kind']}#{ev['seq']} {key}", value, got, diff, ok)
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
    return new, cmp
