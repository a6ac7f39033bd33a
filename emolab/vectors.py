"""Emotion vectors as objects: read from a session, steer any HF model with `apply`.

The steering-vectors / repeng habit: the vector knows its emotion, method, layers and the
residual norms alpha is relative to, and `apply(model, layer=, alpha=)` is a context
manager. It builds its hooks through the registered `residual_add` intervention (the very
code `emolab steer` runs) and removes them on exit, even on an exception.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .errors import BadInput, unknown
from .metadata import FileMeta
from .session import Session


@dataclass
class Vector:
    """One emotion's direction at every extracted layer (`array[layer]`, NaN rows where a
    layer was not extracted), with the mean residual norm per layer."""

    emotion: str
    method: str
    array: np.ndarray
    norms: np.ndarray | None = None
    meta: FileMeta = field(default_factory=FileMeta)

    @property
    def layers(self) -> list[int]:
        return [i for i, row in enumerate(self.array) if np.isfinite(row).all()]

    def at(self, layer: int) -> np.ndarray:
        """The `[d]` direction at `layer` (what `<emotion>/blocks.L.hook_resid_post` holds)."""
        if layer not in self.layers:
            raise BadInput(
                f"'{self.emotion}' ({self.method}) has no vector at layer {layer} "
                f"(extracted: {_span(self.layers)})"
            )
        return self.array[layer]

    def __repr__(self) -> str:
        return (
            f"Vector({self.emotion!r}, method={self.method!r}, layers={_span(self.layers)}, "
            f"d={self.array.shape[-1]})"
        )

    @contextmanager
    def apply(
        self,
        model,
        layer: int,
        alpha: float = 0.3,
        scale: str = "relative",
        positions: str = "all",
        to_layer: int = -1,
    ) -> Iterator[object]:
        """Steer `model` (a plain HF causal LM, or an emolab LoadedModel) inside the block:
        h' = h + alpha * v after block `layer` (through `to_layer`). With `scale='relative'`
        alpha is a fraction of the session's mean residual norm at that layer, as in
        `emolab steer`. The attention mask of the model's first call is read so padding in
        the user's own batch is left alone."""
        from . import plugins
        from .hooks import apply_hooks
        from .models import LoadedModel

        loaded = model if isinstance(model, LoadedModel) else as_loaded(model)
        last = layer if to_layer < 0 else to_layer
        for lay in range(layer, last + 1):
            self.at(lay)
        intervention = plugins.get(
            "interventions",
            "residual_add",
            layer=layer,
            to_layer=to_layer,
            alpha=alpha,
            scale=scale,
            positions=positions,
        )
        hooks = intervention.hooks(loaded, vector=self.array, norms=self.norms)
        with apply_hooks(loaded, hooks) as ctx:
            seen = loaded.hf.register_forward_pre_hook(_read_mask(ctx), with_kwargs=True)
            try:
                yield model
            finally:
                seen.remove()


def _read_mask(ctx):
    def hook(_module, _args, kwargs):
        if ctx.new_tokens == 0 and kwargs.get("attention_mask") is not None:
            ctx.attention_mask = kwargs["attention_mask"]

    return hook


def as_loaded(hf):
    """A plain HF model as the minimal LoadedModel hooks need (no tokenizer, no bridge)."""
    from .models import LoadedModel

    param = next(hf.parameters())
    name = getattr(hf.config, "_name_or_path", "") or hf.config.model_type
    loaded = LoadedModel(name, hf, None, {}, str(param.device))
    _ = loaded.arch  # an architecture without a hook mapping fails here, in one line
    return loaded


class VectorSet(Mapping):
    """Every emotion's Vector from one method of a session: `vs["joy"]`."""

    def __init__(self, method: str, vectors: dict[str, Vector], meta: FileMeta) -> None:
        self.method, self.meta, self._vectors = method, meta, vectors

    @classmethod
    def from_session(cls, session: Session, method: str | None = None) -> VectorSet:
        from .steps.common import emotion_vector

        methods = session.methods()
        if not methods:
            raise BadInput(f"{session.path}: no vectors yet (run extract first)")
        method = method or methods[0]
        if method not in methods:
            raise unknown("method", method, methods)
        raw, meta = session.load_vectors(method)
        n_layers = int(session.manifest["model"]["layers"])
        norms = _norms(session)
        emotions = list(dict.fromkeys(k.split("/", 1)[0] for k in raw))
        vectors = {
            e: Vector(e, method, emotion_vector(raw, e, n_layers), norms, meta) for e in emotions
        }
        return cls(method, vectors, meta)

    @classmethod
    def from_file(cls, path, emotion: str | None = None, norms=None) -> VectorSet:
        """A vector file in any format `emolab vectors export` writes (safetensors, a
        llama.cpp / repeng GGUF control vector, a `{layer: tensor}` .pt). A file has no
        residual norms: pass `norms` (per layer) for relative alpha, or apply with
        `scale="absolute"` (a file exported with `--alpha` holds the push itself)."""
        from . import vector_io
        from .steps.common import emotion_vector

        raw, meta = vector_io.read(path, emotion)
        n_layers = 1 + max(vector_io.split_key(k)[1] for k in raw)
        if meta.extra.get("n_layers", "").isdigit():
            n_layers = max(n_layers, int(meta.extra["n_layers"]))
        arr = None if norms is None else np.asarray(norms, dtype=np.float64)
        method = meta.method or meta.extra.get("file_format", "file")
        emotions = list(dict.fromkeys(k.split("/", 1)[0] for k in raw))
        vectors = {
            e: Vector(e, method, emotion_vector(raw, e, n_layers), arr, meta) for e in emotions
        }
        return cls(method, vectors, meta)

    def __getitem__(self, emotion: str) -> Vector:
        if emotion not in self._vectors:
            raise unknown("emotion", emotion, self._vectors)
        return self._vectors[emotion]

    def __iter__(self):
        return iter(self._vectors)

    def __len__(self) -> int:
        return len(self._vectors)

    def __repr__(self) -> str:
        return f"VectorSet(method={self.method!r}, emotions={list(self._vectors)})"


def _norms(session: Session) -> np.ndarray | None:
    """Mean residual norm per layer from the latest extraction (relative alpha needs it)."""
    from . import results

    out = results.latest(session, "extract", suffix="layer_norms.json")
    if out is None:
        return None
    import json

    return np.asarray(json.loads(out.path.read_text())["mean_resid_norm"], dtype=np.float64)


def _span(layers: list[int]) -> str:
    if not layers:
        return "none"
    if layers == list(range(layers[0], layers[-1] + 1)) and len(layers) > 1:
        return f"{layers[0]}-{layers[-1]}"
    return ",".join(map(str, layers))
