"""What several steps share: the session's model, datasets by name, plugin versions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import plugins
from ..errors import BadInput, UnknownName
from ..models import LoadedModel, load
from ..session import Session


def session_model(session: Session) -> LoadedModel:
    meta = session.manifest["model"]
    return load(meta["name"], meta.get("device", "cpu"))


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


def parse_layers(spec: str | Sequence[int] | None, n_layers: int) -> list[int]:
    """'all', '3', '2,5,8', '10-20' or a list -> layer indices, range-checked."""
    if spec is None or spec == "all":
        return list(range(n_layers))
    if isinstance(spec, str):
        out: list[int] = []
        for part in spec.split(","):
            part = part.strip()
            try:
                if "-" in part[1:]:
                    a, b = part.split("-", 1)
                    out.extend(range(int(a), int(b) + 1))
                else:
                    out.append(int(part))
            except ValueError:
                raise BadInput(f"bad layer list '{spec}' (use all, 5, 2,5,8 or 10-20)") from None
    else:
        out = list(spec)
    for layer in out:
        if not 0 <= layer < n_layers:
            raise BadInput(f"layer {layer} out of range: the model has layers 0-{n_layers - 1}")
    return out


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


def dataset_source(dataset: str, seed: int):
    """The dataset component, its split shuffle seeded with the session's seed when it has
    one (user files: the split is then reproducible and recorded)."""
    source = plugins.get("datasets", dataset)
    if any(prm.name == "seed" for prm in getattr(source, "params", ())):
        source = source.with_params(seed=int(seed))
    return source


def record_dataset(session: Session, rec: dict, dataset: str, role: str = "dataset") -> None:
    """A user file behind a `csv:` / `jsonl:` dataset goes into the step's input hashes, so
    replay can tell when the file changed since."""
    for prefix in ("csv:", "jsonl:"):
        if dataset.startswith(prefix):
            session.add_input(rec, role, dataset[len(prefix) :])


def guarded(kind: str, component, method: str, *args, **kwargs):
    """Call a plugin component; an exception from its code becomes one clear line naming it."""
    from ..errors import EmolabError, PluginFailed

    try:
        return getattr(component, method)(*args, **kwargs)
    except EmolabError:
        raise
    except Exception as exc:
        owner = plugins.registry().plugin_of(kind, component.name)
        raise PluginFailed(
            f"{kind[:-1]} '{component.name}' (plugin {owner.name} {owner.version}) raised "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def new_session(path, model_name: str, device: str = "cpu", seed: int = 0) -> Session:
    """Create a session for `model_name` (loading it first, so a bad name fails early)."""
    from pathlib import Path

    if Path(path).exists() and not Path(path).is_dir():
        from ..errors import SessionError

        raise SessionError(f"{path}: is a file, not a session folder")
    model = load(model_name, device)
    return Session.create(
        path, {**model.describe(), "name": model_name, "device": device}, seed=seed
    )


def open_or_create(path, model_name: str, device: str = "cpu") -> Session:
    """An existing session (whose model must match) or a new one at `path`."""
    from pathlib import Path

    from ..errors import BadInput

    if Path(path).is_dir() and (Path(path) / "manifest.json").exists():
        s = Session.open(path)
        if s.model_name != model_name:
            raise BadInput(f"{path}: session is for model '{s.model_name}', not '{model_name}'")
        if s.steps():
            raise BadInput(f"{path}: session already holds an extraction; use a new --session")
        return s
    return new_session(path, model_name, device)
