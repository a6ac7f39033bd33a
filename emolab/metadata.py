"""What made a vector or activation file: one typed record, stored as JSON under one key.

safetensors metadata is a flat str -> str map. Up to commit f9c0477 emolab wrote each fact
as its own key with lists comma-joined (`"emotions": "anger,joy"`, `"layers": "0,1,2"`),
and about ten readers split them again, so an emotion label holding a comma came back as
two labels. Now `FileMeta.strings()` writes the whole record as JSON under `emolab`, and
`read` is the only place that turns file metadata back into facts. A file without that key
(a session made before the change, a published set, another tool's vector file) is read
from its flat keys the way the old readers read them, so old sessions still open.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import SessionError

KEY = "emolab"


@dataclass(frozen=True)
class FileMeta:
    """The facts a session file records about how it was made. `extra` keeps any other
    string field: a step's own notes (the neuron map's metric), a published set's scores
    (`peak_layer`, `mean_acc_by_layer`), an exported file's interop keys (`operation`,
    `scale`, `model_hint`), so nothing a file says is dropped on reading."""

    model: str = ""
    method: str = ""
    dataset: str = ""
    position: str = ""
    baseline: str = "neutral"
    source: str = "comprehension"
    contrast: str = ""
    emotions: tuple[str, ...] = ()
    layers: tuple[int, ...] = ()
    hooks: tuple[str, ...] = ()
    paths: Mapping[str, str] = field(default_factory=dict)  # requested hook -> fast / bridge
    extra: Mapping[str, str] = field(default_factory=dict)

    def strings(self) -> dict[str, str]:
        """The safetensors metadata to write: the record as JSON under `KEY`."""
        return {KEY: json.dumps(self.record(), sort_keys=True)}

    def record(self) -> dict:
        """The record as plain JSON types (lists for tuples)."""
        out = dataclasses.asdict(self)
        for name in ("emotions", "layers", "hooks"):
            out[name] = list(out[name])
        return out

    def with_extra(self, **more: object) -> FileMeta:
        return dataclasses.replace(
            self, extra={**self.extra, **{k: str(v) for k, v in more.items()}}
        )

    def flat(self) -> dict[str, str]:
        """The record in the flat form emolab wrote up to f9c0477: one string per non-empty
        field, lists comma-joined, `paths` as `name=path,...`, and `extra`. Other tools read
        it beside the JSON in an exported file (llama.cpp's `emolab.*` GGUF keys, a .pt's
        `_metadata`), and the sweep hashes it, so a sweep resumes under the key it had
        before the change. emolab never reads it back where the JSON is present."""
        out = {k: getattr(self, k) for k in sorted(_SCALARS) if getattr(self, k)}
        lists = {
            "emotions": ",".join(self.emotions),
            "layers": ",".join(map(str, self.layers)),
            "hooks": ",".join(self.hooks),
            "paths": ",".join(f"{k}={v}" for k, v in self.paths.items()),
        }
        return {**out, **{k: v for k, v in lists.items() if v}, **self.extra}


FIELDS = {f.name for f in dataclasses.fields(FileMeta)}
_SCALARS = FIELDS - {"emotions", "layers", "hooks", "paths", "extra"}


def read(raw: Mapping[str, str] | None, where: object = "vector file") -> FileMeta:
    """The record a file's metadata holds: the JSON under `KEY`, else the flat keys emolab
    wrote up to f9c0477. Flat keys beside the JSON (an exported file's interop strings) land
    in `extra`. A record that cannot be read is one SessionError naming `where`."""
    raw = dict(raw or {})
    if KEY in raw:
        return _from_json(raw.pop(KEY), raw, where)
    return _from_flat(raw, where)


def _from_json(text: str, flat: dict[str, str], where: object) -> FileMeta:
    try:
        rec = json.loads(text)
    except ValueError:
        raise SessionError(f"{where}: corrupt '{KEY}' metadata (not valid JSON)") from None
    if not isinstance(rec, dict):
        raise SessionError(f"{where}: '{KEY}' metadata is not a JSON object")
    try:
        extra = {str(k): str(v) for k, v in (rec.get("extra") or {}).items()}
        extra.update({k: v for k, v in flat.items() if k not in FIELDS})
        return FileMeta(
            **{k: str(rec[k]) for k in _SCALARS if k in rec},
            emotions=tuple(_strings(rec.get("emotions", []))),
            layers=tuple(_ints(rec.get("layers", []))),
            hooks=tuple(_strings(rec.get("hooks", []))),
            paths={str(k): str(v) for k, v in (rec.get("paths") or {}).items()},
            extra=extra,
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise SessionError(f"{where}: '{KEY}' metadata does not hold a record ({exc})") from None


def _strings(value) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("a list of strings was expected")
    return value


def _ints(value) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise TypeError("layers must be a list of whole numbers")
    return value


def _from_flat(raw: dict[str, str], where: object) -> FileMeta:
    """The flat form: lists comma-joined, `paths` as `name=path,...`."""

    def items(key: str) -> list[str]:
        return [v for v in raw.get(key, "").split(",") if v]

    try:
        layers = tuple(int(v) for v in items("layers"))
    except ValueError:
        raise SessionError(
            f"{where}: metadata 'layers' is not a list of layer numbers ({raw['layers']!r})"
        ) from None
    paths = dict(p.split("=", 1) for p in items("paths") if "=" in p)
    return FileMeta(
        **{k: raw[k] for k in _SCALARS if k in raw},
        emotions=tuple(items("emotions")),
        layers=layers,
        hooks=tuple(items("hooks")),
        paths=paths,
        extra={k: v for k, v in raw.items() if k not in FIELDS},
    )
