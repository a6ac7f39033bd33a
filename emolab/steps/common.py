"""What several steps share: the session's model, datasets by name, plugin versions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import plugins
from ..errors import BadInput, UnknownName
from ..models import LoadedModel
from ..plugins import load_model as load
from ..session import Session
from .guard import guarded  # noqa: F401 - steps import it from here


def session_model(session: Session) -> LoadedModel:
    meta = session.manifest["model"]
    return load(meta["name"], meta.get("device", "cpu"), meta.get("dtype", "float32"))


def plugin_versions(kind: str, names: Sequence[str]) -> dict[str, dict]:
    """What the log records about each component used: its plugin, package and version."""
    reg = plugins.registry()
    out = {}
    for name in names:
        info = reg.plugin_of(kind, name)
        comp = reg.get(kind, name)
        out[f"{kind}:{comp.name}"] = {
            "plugin": info.name,
            "package": info.package,
            "version": info.version,
        }
    return out


def configured(kind: str, name: str, own: dict, given: dict):
    """The registered component `name`, set from the step's values that it declares (`own`:
    layer, alpha, ... as the step knows them) and then the user's own parameters (`given`,
    e.g. from `--param`), validated against its declaration before any model loads."""
    reg = plugins.registry()
    declared = {p.name for p in reg.get(kind, name).params}
    values = {k: v for k, v in own.items() if k in declared and v is not None}
    return reg.get(kind, name, **{**values, **given})


def emotion_vector(vectors: dict[str, np.ndarray], emotion: str, n_layers: int) -> np.ndarray:
    """`[layers, d]` for one emotion from `<emotion>/blocks.L.hook_resid_post` keys (NaN rows
    where a layer was not extracted)."""
    keys = [k for k in vectors if k.split("/", 1)[0] == emotion]
    if not keys:
        have = sorted({k.split("/", 1)[0] for k in vectors})
        raise UnknownName(f"unknown emotion '{emotion}' (this session has: {', '.join(have)})")
    d = vectors[keys[0]].shape[-1]
    out = np.full((n_layers, d), np.nan, dtype=np.float32)
    for k in keys:
        hook = k.split("/", 1)[1]
        layer = int(hook.split(".")[1])
        out[layer] = vectors[k]
    return out


def dataset_source(dataset: str, seed: int, dataset_params: dict | None = None):
    """The dataset component, set from the user's `dataset_params` (text_column, ...) and its
    split shuffle seeded with the session's seed when it has one (user files: the split is
    then reproducible and recorded)."""
    source = plugins.get("datasets", dataset, **(dataset_params or {}))
    if any(prm.name == "seed" for prm in getattr(source, "params", ())):
        source = source.with_params(seed=int(seed))
    return source


def record_dataset(session: Session, rec: dict, dataset: str, role: str = "dataset") -> None:
    """A user file behind a `csv:` / `jsonl:` dataset goes into the step's input hashes, so
    replay can tell when the file changed since."""
    for prefix in ("csv:", "jsonl:"):
        if dataset.startswith(prefix):
            session.add_input(rec, role, dataset[len(prefix) :])


def new_session(
    path, model_name: str, device: str = "cpu", seed: int = 0, dtype: str = "float32"
) -> Session:
    """Create a session for `model_name` (loading it first, so a bad name fails early); the
    manifest records the dtype, the device it resolved to and any device map."""
    from pathlib import Path

    if Path(path).exists() and not Path(path).is_dir():
        from ..errors import SessionError

        raise SessionError(f"{path}: is a file, not a session folder")
    model = load(model_name, device, dtype)
    return Session.create(path, {**model.describe(), "name": model_name}, seed=seed)


def open_or_create(path, model_name: str, device: str = "cpu", dtype: str = "float32") -> Session:
    """An existing session (whose model must match) or a new one at `path`."""
    from pathlib import Path

    if Path(path).is_dir() and (Path(path) / "manifest.json").exists():
        s = Session.open(path)
        if s.model_name != model_name:
            raise BadInput(f"{path}: session is for model '{s.model_name}', not '{model_name}'")
        if s.steps():
            raise BadInput(f"{path}: session already holds an extraction; use a new --session")
        return s
    return new_session(path, model_name, device, dtype=dtype)
