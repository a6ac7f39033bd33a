"""What replay compares between an original step and its re-run: metrics (nulls too),
choices, generated texts (the first differing token shown), input file hashes and plugin
versions. Each check adds rows to a `Comparison`; a row that is only a note (a different
plugin version without --strict, a skipped interrupted step) has ok=True and says so."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

# keys under which steps store generated text (steer, sweep, layers --source generation)
TEXT_KEYS = ("text", "texts", "steered", "baseline")


@dataclass
class Comparison:
    rows: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r["ok"] for r in self.rows)

    def add(self, what: str, original, replayed, diff: float, ok: bool, note: str = "") -> None:
        row = {"what": what, "original": original, "replayed": replayed, "diff": diff, "ok": ok}
        if note:
            row["note"] = note
        self.rows.append(row)

    def as_dict(self) -> dict:
        bad = [r for r in self.rows if not r["ok"]]
        return {
            "ok": self.ok,
            "compared": len(self.rows),
            "mismatches": len(bad),
            "rows": self.rows,
        }


def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def metrics(cmp: Comparison, tag: str, a: dict, b: dict, rtol: float, atol: float) -> None:
    """Every metric of the original; null equals null, NaN equals NaN, a number within
    atol + rtol*|x|, anything else must be equal."""
    for key in sorted(a):
        want, got = a[key], b.get(key)
        what = f"{tag} {key}"
        if key not in b:
            cmp.add(what, want, None, math.inf, False, "missing in the replay")
            continue
        x, y = _number(want), _number(got)
        if x is None or y is None:
            same = want == got
            cmp.add(what, want, got, 0.0 if same else math.inf, same)
            continue
        if not (math.isfinite(x) and math.isfinite(y)):  # nan = nan, inf = inf, nothing else
            same = (math.isnan(x) and math.isnan(y)) or x == y
            cmp.add(what, want, got, 0.0 if same else math.inf, same)
            continue
        diff = abs(x - y)
        cmp.add(what, want, got, diff, diff <= atol + rtol * abs(x))


def choices(cmp: Comparison, tag: str, a: dict, b: dict) -> None:
    """What a step chose (a layer, an alpha) and on which split: must come out equal."""
    for key, choice in sorted(a.items()):
        got = b.get(key)
        cmp.add(f"{tag} choice {key}", choice, got, 0.0 if got == choice else 1.0, got == choice)


def inputs(cmp: Comparison, tag: str, a: dict, b: dict) -> None:
    """Input files by sha256 (a dataset, a --vectors file, the other session of align) and
    content hashes of the examples: a changed file is a mismatch naming it."""
    for role in sorted(a):
        want, got = a[role], b.get(role)
        if isinstance(want, dict) and "sha256" in want:
            have = got.get("sha256") if isinstance(got, dict) else None
            same = have == want["sha256"]
            cmp.add(
                f"{tag} input {role} sha256",
                want["sha256"][:12],
                (have or "missing")[:12],
                0.0 if same else 1.0,
                same,
                "" if same else f"{want.get('path')} changed since the original ran",
            )
        else:
            cmp.add(f"{tag} input {role}", want, got, 0.0 if want == got else 1.0, want == got)


def plugins(cmp: Comparison, tag: str, a: dict, b: dict, strict: bool) -> None:
    """Plugin versions: a different version is reported; with `strict` it is a mismatch."""
    for key in sorted(a):
        want = (a[key] or {}).get("version")
        got = (b.get(key) or {}).get("version")
        if key not in b:
            cmp.add(f"{tag} plugin {key}", want, None, 1.0, False, "not used by the replay")
        elif want != got:
            note = "different plugin version" + ("" if strict else " (ok without --strict)")
            cmp.add(f"{tag} plugin {key} version", want, got, 1.0, not strict, note)


def _texts(obj, under: str = "") -> list[str]:
    """String leaves stored under a text key, in file order."""
    if isinstance(obj, dict):
        return [t for k, v in obj.items() for t in _texts(v, k if k in TEXT_KEYS else under)]
    if isinstance(obj, list):
        return [t for v in obj for t in _texts(v, under)]
    return [obj] if isinstance(obj, str) and under else []


def file_texts(path: Path) -> list[str] | None:
    """Generated texts in a json or jsonl artifact (None for other files)."""
    if not path.is_file() or path.suffix not in (".json", ".jsonl"):
        return None
    raw = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            return [
                t for line in raw.splitlines() if line.strip() for t in _texts(json.loads(line))
            ]
        return _texts(json.loads(raw))
    except ValueError:
        return None


def first_difference(a: str, b: str, tokenize) -> str:
    """'token 7: ' happy' vs ' sad'' for two texts that differ."""
    ta, tb = tokenize(a), tokenize(b)
    for i, (x, y) in enumerate(zip(ta, tb)):
        if x != y:
            return f"token {i}: {x!r} vs {y!r}"
    n = min(len(ta), len(tb))
    return f"token {n}: " + (f"{ta[n]!r} vs end" if len(ta) > n else f"end vs {tb[n]!r}")


def texts(cmp: Comparison, tag: str, a: list[Path], b: list[Path], tokenize) -> None:
    """The generated texts of each output file, paired by position in the step's outputs."""
    for pa, pb in zip(a, b):
        ta = file_texts(pa)
        if ta is None:
            continue
        tb = file_texts(pb) or []
        what = f"{tag} texts {pa.name}"
        if len(ta) != len(tb):
            cmp.add(what, f"{len(ta)} texts", f"{len(tb)} texts", 1.0, False)
            continue
        bad = [i for i, (x, y) in enumerate(zip(ta, tb)) if x != y]
        if not bad:
            cmp.add(what, f"{len(ta)} texts", "identical", 0.0, True)
            continue
        i = bad[0]
        cmp.add(
            what,
            ta[i][:60],
            tb[i][:60],
            len(bad) / len(ta),
            False,
            f"{len(bad)} of {len(ta)} differ; first: text {i}, "
            + first_difference(ta[i], tb[i], tokenize),
        )
