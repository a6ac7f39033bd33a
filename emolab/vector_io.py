"""Vector files in and out: llama.cpp control vectors (GGUF), safetensors with emolab's keys,
and plain PyTorch `{layer: tensor}` dicts, each stating what made it and how to apply it.

Layer numbering is the one thing to get right. emolab steers `blocks.L.hook_resid_post`,
the output of block L (0-based). llama.cpp reads `direction.N` into its control-vector
slot N (`common_control_vector_load_one` stores it at offset (N-1) * n_embd and
`llama_adapter_cvec::apply` fills slot il from offset (il-1) * n_embd) and adds slot il
at `build_cvec(cur, il)`, the output of block il of its 0-based layer loop. repeng's
`export_gguf` writes `direction.{i}` for its hidden layer i, which it reads from
`hidden_states[i + 1]`, the output of block i. So `direction.N` is emolab's
`blocks.N.hook_resid_post`, and block 0's output has no slot (llama.cpp refuses
`direction.0`).

Every file carries emolab's record (`emolab.metadata.FileMeta`, JSON under `emolab`) and,
for other tools, the same facts as flat strings: model, model_hint, d_model, hook,
operation, layers, scale, alpha, method, emotion (GGUF under `emolab.*` keys beside
llama.cpp's `controlvector.*`; pt in the dict's `_metadata`, which
`torch.load(weights_only=True)` keeps). Reading goes through `emolab.metadata.read`, so a
file with only flat strings (older exports, published sets, another tool's) reads too.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import metadata
from .errors import BadInput
from .metadata import FileMeta
from .units import layer_list

FORMATS = ("gguf", "safetensors", "pt")
SUFFIX = {"gguf": ".gguf", "safetensors": ".safetensors", "pt": ".pt"}
FORMAT_TAG = "emolab-vectors/1"
ARCH = "controlvector"
HOOK = "blocks.{layer}.hook_resid_post"


def hook_name(layer: int) -> str:
    return HOOK.format(layer=layer)


def split_key(key: str) -> tuple[str, int]:
    """'<emotion>/blocks.L.hook_resid_post' -> (emotion, L)."""
    emotion, hook = key.split("/", 1)
    parts = hook.split(".")
    if len(parts) != 3 or parts[0] != "blocks" or parts[2] != "hook_resid_post":
        raise BadInput(f"vector key '{key}' is not <emotion>/blocks.L.hook_resid_post")
    return emotion, int(parts[1])


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise BadInput(f"unknown vector format '{fmt}' (known: {', '.join(FORMATS)})")
    return fmt


def format_of(path: Path) -> str:
    """The format of an existing file, by its first bytes (the suffix can lie)."""
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:4] == b"GGUF":
        return "gguf"
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 1 << 27:
        return "safetensors"  # an 8-byte little-endian header length, then its JSON
    if head[:2] == b"PK" or head[:2] == b"\x80\x02":  # torch zip archive / legacy pickle
        return "pt"
    raise BadInput(f"{path}: not a gguf, safetensors or pt vector file")


# -- writing -------------------------------------------------------------------------
def _by_layer(vectors: dict[str, np.ndarray], emotion: str) -> dict[int, np.ndarray]:
    out = {}
    for key, v in vectors.items():
        e, layer = split_key(key)
        if e == emotion:
            out[layer] = np.ascontiguousarray(v, dtype=np.float32)
    return dict(sorted(out.items()))


def single_emotion(vectors: dict[str, np.ndarray], fmt: str) -> str:
    emotions = sorted({split_key(k)[0] for k in vectors})
    if len(emotions) != 1:
        raise BadInput(
            f"a {fmt} file holds one direction per layer: choose one emotion with --emotion "
            f"(this set has: {', '.join(emotions)})"
        )
    return emotions[0]


def to_bytes(vectors: dict[str, np.ndarray], rec: FileMeta, fmt: str) -> bytes:
    """Serialise emolab-keyed vectors in `fmt`. gguf and pt hold a single emotion."""
    check_format(fmt)
    if fmt == "safetensors":
        from safetensors.numpy import save

        arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in vectors.items()}
        return save(arrays, metadata={**rec.flat(), **rec.strings()})
    emotion = single_emotion(vectors, fmt)
    layers = _by_layer(vectors, emotion)
    rec = replace(rec, emotions=(emotion,), layers=tuple(layers)).with_extra(emotion=emotion)
    meta = {**rec.flat(), **rec.strings()}
    if fmt == "pt":
        import io

        import torch

        d: OrderedDict = OrderedDict((L, torch.from_numpy(v.copy())) for L, v in layers.items())
        d._metadata = meta  # type: ignore[attr-defined]
        buf = io.BytesIO()
        torch.save(d, buf)
        return buf.getvalue()
    return _gguf_bytes(layers, meta)


def _gguf_bytes(layers: dict[int, np.ndarray], meta: dict[str, str]) -> bytes:
    import tempfile

    import gguf

    if 0 in layers:
        raise BadInput(
            "a GGUF control vector cannot hold layer 0: llama.cpp's direction.N is the "
            "output of block N and has no slot for N = 0 (choose --layers from 1)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.gguf"
        writer = gguf.GGUFWriter(str(path), ARCH)
        hint = meta.get("model_hint") or meta.get("model") or "unknown"  # gguf drops ""
        writer.add_string(f"{ARCH}.model_hint", hint)
        writer.add_uint32(f"{ARCH}.layer_count", len(layers))
        for key, value in sorted(meta.items()):
            writer.add_string(f"emolab.{key}", value)
        for layer, v in layers.items():
            writer.add_tensor(f"direction.{layer}", v)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()


def write(vectors: dict[str, np.ndarray], rec: FileMeta, fmt: str, path: Path) -> Path:
    from .io import atomic_write

    data = to_bytes(vectors, rec, fmt)
    atomic_write(Path(path), data)
    return Path(path)


# -- reading -------------------------------------------------------------------------
def read(path: str | Path, emotion: str | None = None) -> tuple[dict[str, np.ndarray], FileMeta]:
    """Any of the three formats (emolab's own or another tool's: repeng / llama.cpp GGUF, a
    steering-vectors style `{layer: tensor}` .pt) -> emolab keys and the file's record
    (`extra` has `file_format`, and `emotion` for a one-emotion file). A file that names no
    emotion is keyed under `emotion` (default 'control')."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"vector file not found: {path}")
    fmt = format_of(path)
    try:
        if fmt == "safetensors":
            from .session import read_vectors

            vectors, rec = read_vectors(path)
            for k in vectors:
                split_key(k)
            return vectors, rec.with_extra(file_format=fmt)
        layers, raw = _read_gguf(path) if fmt == "gguf" else _read_pt(path)
        rec = metadata.read(raw, path)
    except BadInput:
        raise
    except Exception as exc:  # a damaged file: one line naming it
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInput(f"{path}: unreadable {fmt} vector file ({first})") from None
    if not layers:
        raise BadInput(f"{path}: holds no direction tensors")
    name = rec.extra.get("emotion") or emotion or "control"
    vectors = {f"{name}/{hook_name(L)}": v for L, v in sorted(layers.items())}
    return vectors, rec.with_extra(emotion=name, file_format=fmt)


def _read_gguf(path: Path) -> tuple[dict[int, np.ndarray], dict]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    meta: dict[str, str] = {}
    for name, field in reader.fields.items():
        if name.startswith("emolab.") or name in (
            "general.architecture",
            f"{ARCH}.model_hint",
            f"{ARCH}.layer_count",
        ):
            value = field.contents()
            meta[name.removeprefix("emolab.")] = str(value)
    arch = meta.pop("general.architecture", None)
    if arch != ARCH:
        raise BadInput(f"{path}: GGUF architecture is {arch!r}, not a control vector")
    meta.setdefault("model_hint", meta.pop(f"{ARCH}.model_hint", ""))
    meta.pop(f"{ARCH}.model_hint", None)
    meta.pop(f"{ARCH}.layer_count", None)
    layers = {}
    for t in reader.tensors:
        if not t.name.startswith("direction."):
            continue
        try:
            layer = int(t.name.split(".", 1)[1])
        except ValueError:
            raise BadInput(f"{path}: bad tensor name '{t.name}' (want direction.N)") from None
        if layer < 1:
            raise BadInput(f"{path}: {t.name}: llama.cpp control vectors start at direction.1")
        layers[layer] = np.array(t.data, dtype=np.float32).reshape(-1)
    meta.setdefault("operation", "add")
    meta.setdefault("hook", "blocks.{layer}.hook_resid_post")
    return layers, meta


def _read_pt(path: Path) -> tuple[dict[int, np.ndarray], dict]:
    import pickle

    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise BadInput(
            f"{path}: not a plain {{layer: tensor}} file ({str(exc).splitlines()[0]})"
        ) from None
    if not isinstance(obj, dict):
        raise BadInput(f"{path}: holds a {type(obj).__name__}, not a {{layer: tensor}} dict")
    layers = {}
    for key, t in obj.items():
        try:
            layer = int(key)
        except (TypeError, ValueError):
            raise BadInput(f"{path}: key {key!r} is not a layer number") from None
        if not isinstance(t, torch.Tensor):
            raise BadInput(f"{path}: layer {layer} holds a {type(t).__name__}, not a tensor")
        layers[layer] = t.detach().to(torch.float32).reshape(-1).numpy().copy()
    meta = {str(k): str(v) for k, v in (getattr(obj, "_metadata", None) or {}).items()}
    return layers, meta


def check_model(
    vectors: dict[str, np.ndarray],
    rec: FileMeta,
    path,
    model_name: str,
    d_model: int,
    n_layers: int,
) -> None:
    """Refuse a vector file that cannot steer this model, naming the model it was made for."""
    made_for = rec.model or rec.extra.get("model_hint") or "an unknown model"
    widths = {int(v.shape[-1]) for v in vectors.values()}
    if widths != {d_model}:
        raise BadInput(
            f"{path}: vectors of width {', '.join(map(str, sorted(widths)))} were made for "
            f"{made_for}; this model ({model_name}) has width {d_model}"
        )
    layers = sorted({split_key(k)[1] for k in vectors})
    if layers and layers[-1] >= n_layers:
        raise BadInput(
            f"{path}: has layer {layers[-1]} (made for {made_for}); this model ({model_name}) "
            f"has layers 0-{n_layers - 1}"
        )


# -- choosing what to export ---------------------------------------------------------
def _peak_layer(session, method: str) -> int | None:
    """The peak layer the session's latest `layers` step records for `method`."""
    import json

    from . import results

    out = results.latest(session, "layers", suffix=".json")
    if out is None:
        return None
    summary = json.loads(out.path.read_text(encoding="utf-8")).get("summary", {})
    return int(summary[method]["peak_layer"]) if method in summary else None


def _parse_layers(spec: str, have: list[int]) -> list[int]:
    if spec == "all":
        return have
    out = layer_list(spec)
    missing = [L for L in out if L not in have]
    if missing:
        raise BadInput(
            f"no vector at layer {missing[0]} in this set (it has layers {have[0]}-{have[-1]})"
            if have
            else "this set holds no vectors"
        )
    return out


def select(
    source,
    fmt: str,
    method: str | None = None,
    emotion: str | None = None,
    layers: str | None = None,
    alpha: float | None = None,
) -> tuple[dict[str, np.ndarray], FileMeta, list[str]]:
    """The vectors and metadata to export from a session (or a vector file), and notes
    worth telling the user. Default layer: the peak the source records, else all layers.

    With `alpha`, the file holds the push emolab's `steer --alpha A` adds (relative scale:
    A x the layer's mean residual norm x unit(v)), so llama.cpp's `--control-vector` at
    strength 1 matches it; without, the raw direction (use `--control-vector-scaled`)."""
    from .session import Session

    check_format(fmt)
    notes: list[str] = []
    if isinstance(source, Session):
        method = method or (source.methods() or [None])[0]
        if method is None:
            raise BadInput(f"{source.path}: holds no vectors (run emolab extract first)")
        if method not in source.methods():
            raise BadInput(
                f"no '{method}' vectors in {source.path} (it has: {', '.join(source.methods())})"
            )
        vectors, rec = source.load_vectors(method)
        model = source.manifest["model"]
        rec = replace(rec, model=source.model_name).with_extra(
            d_model=model.get("d_model", ""),
            n_layers=model.get("layers", ""),
            session=source.path.name,
        )
        peak = _peak_layer(source, method)
        if not rec.extra.get("model_hint"):  # llama.cpp ignores it; repeng needs it non-empty
            rec = rec.with_extra(
                model_hint=model.get("model_type") or model.get("id") or source.model_name
            )
    else:
        vectors, rec = read(Path(source))
        rec = replace(rec, extra={k: v for k, v in rec.extra.items() if k != "file_format"})
        given = rec.extra.get("peak_layer", "")
        peak = int(given) if given.isdigit() else None
        if method and rec.method and rec.method != method:
            raise BadInput(f"{source} holds {rec.method} vectors, not {method}")
    emotions = sorted({split_key(k)[0] for k in vectors})
    if emotion is not None:
        if emotion not in emotions:
            raise BadInput(f"unknown emotion '{emotion}' (this set has: {', '.join(emotions)})")
        vectors = {k: v for k, v in vectors.items() if split_key(k)[0] == emotion}
    have = sorted({split_key(k)[1] for k in vectors})
    if layers is None:
        chosen = [peak] if peak is not None and peak in have else have
        if fmt == "gguf" and chosen == [0]:
            raise BadInput("the peak layer is 0, which a GGUF control vector cannot hold "
                           "(choose --layers from 1)")  # fmt: skip
    else:
        chosen = _parse_layers(layers, have)
    if fmt == "gguf" and 0 in chosen and (layers in (None, "all")):
        chosen = [L for L in chosen if L != 0]
        notes.append("layer 0 left out: a GGUF control vector has no slot for block 0's output")
    vectors = {k: v for k, v in vectors.items() if split_key(k)[1] in chosen}
    kept = {split_key(k)[0] for k in vectors}
    rec = replace(
        rec,
        layers=tuple(chosen),
        emotions=tuple(e for e in rec.emotions if e in kept) or tuple(sorted(kept)),
        method=rec.method or method or "",
    ).with_extra(format=FORMAT_TAG, hook=HOOK, operation="add")
    if alpha is None:
        rec = rec.with_extra(scale="relative", alpha="")
    else:
        if not isinstance(source, Session):
            raise BadInput("--alpha needs a session: it scales by the layer norms it records")
        norms = np.asarray(source.read_json("layer_norms.json")["mean_resid_norm"])
        baked = {}
        for k, v in vectors.items():
            n = float(np.linalg.norm(v))
            if n == 0:
                raise BadInput(f"the vector {k} is zero")
            baked[k] = (float(alpha) * float(norms[split_key(k)[1]]) / n * v).astype(np.float32)
        vectors = baked
        rec = rec.with_extra(
            scale="absolute",
            alpha="1",
            baked_alpha=f"{alpha:g}",
            baked_from="relative: alpha x the layer's mean residual norm x unit(v)",
        )
    return vectors, rec, notes
