"""The Python API for notebooks: a session you open or create, run steps on with keyword
arguments, and read back as pandas DataFrames and vector objects.

    import emolab
    lab = emolab.create("sessions/demo", model="smollm2-135m")
    lab.run("extract", emotions=["joy", "anger"], layers="all")
    lab.table("layers")                       # one row per (method, emotion, layer)
    with lab.vectors()["joy"].apply(my_hf_model, layer=15, alpha=0.3):
        my_hf_model.generate(...)

It is a face over the same steps the CLI and the TUI call; nothing here computes results.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BadInput, unknown
from .session import Session

if TYPE_CHECKING:
    import pandas as pd

    from .models import LoadedModel
    from .progress import Progress
    from .vectors import VectorSet


class Lab:
    """One session folder, as a notebook uses it."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def path(self) -> Path:
        return self.session.path

    @property
    def model(self) -> LoadedModel:
        """The session's model, loaded once per process."""
        from .steps.common import session_model

        return session_model(self.session)

    def __repr__(self) -> str:
        kinds = [e["kind"] for e in self.session.steps() if e.get("status") == "ok"]
        return f"Lab({str(self.path)!r}, model={self.session.model_name!r}, steps={kinds})"

    def run(self, step: str, progress: Progress | None = None, **params: Any) -> dict:
        """Run the step `step` ("extract", "layers", "steer", "sweep", "heads", "align", ...)
        with keyword parameters, exactly as the CLI would; returns the step's result. A Lab
        or Session given as a value (e.g. `session_b=other`) is passed as its path."""
        from .steps import STEPS

        if step not in STEPS:
            raise unknown("step", step, STEPS)
        given = {k: _plain(v) for k, v in params.items()}
        return STEPS[step](self.session, given, progress)

    def table(self, name: str, **filters: Any) -> pd.DataFrame:
        """A result table as a tidy DataFrame (`emolab.tables.TABLES` lists them); filters
        match the step's logged parameters, e.g. `table("heads", emotion="anger")`."""
        from .tables import table

        return table(self.session, name, **filters)

    def vectors(self, method: str | None = None) -> VectorSet:
        """The session's vectors of one method (default: the first extracted)."""
        from .vectors import VectorSet

        return VectorSet.from_session(self.session, method)

    def activations(self, split: str = "train") -> dict:
        """The extra hooks `extract --hooks` captured: `{hook name: array [n, ...]}` in
        examples.json order, for `split` (train or test)."""
        from . import results

        out = results.latest(self.session, "extract", suffix="hooks.safetensors")
        if out is None:
            raise BadInput(f"{self.path}: no extra hooks captured (run extract with hooks=[...])")
        arrays, _ = self.session.load_arrays(out.path.name)
        prefix = f"{split}/"
        got = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        if not got:
            raise unknown("split", split, sorted({k.split("/", 1)[0] for k in arrays}))
        return got


def _plain(value: Any) -> Any:
    if isinstance(value, Lab):
        return str(value.path)
    if isinstance(value, Session):
        return str(value.path)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def open(path: str | Path) -> Lab:  # noqa: A001 - emolab.open reads like the builtin
    """An existing session."""
    return Lab(Session.open(path))


def create(
    path: str | Path, model: str | LoadedModel = "smollm2-135m", device: str = "cpu", seed: int = 0
) -> Lab:
    """A new session at `path` for `model`: a registered name (`emolab models`) or a model
    from `emolab.wrap`."""
    from .models import LoadedModel
    from .steps.common import new_session

    if isinstance(model, LoadedModel):
        return Lab(new_session(path, model.name, model.device, seed=seed))
    return Lab(new_session(path, model, device, seed=seed))


def wrap(hf_model, tokenizer, name: str | None = None) -> LoadedModel:
    """An in-memory HF causal LM + tokenizer as an emolab model: steps, capture and the
    bridge run on it, and `create(path, model=wrapped)` makes sessions for it. The bridge
    gets a deep copy (booting mutates the model it wraps), so memory doubles only when a
    bridge-only hook is used. A session made on a wrapped model replays only where the
    same name is wrapped again."""
    from .models import LoadedModel, prepare_tokenizer, register_loaded

    param = next(hf_model.parameters())
    cfg = hf_model.config
    name = name or f"mem:{Path(getattr(cfg, '_name_or_path', '') or cfg.model_type).name}"
    ident = getattr(cfg, "_name_or_path", "") or cfg.model_type
    meta = {
        "id": ident,
        "source": "in-memory model (emolab.wrap)",
        "dtype": str(param.dtype).removeprefix("torch."),
        "device": str(param.device),
        "sha256": weights_sha256(hf_model),
        "bridge_name": ident,
    }
    hf_model.eval()
    loaded = LoadedModel(
        name,
        hf_model,
        prepare_tokenizer(tokenizer),
        meta,
        str(param.device),
        reload=lambda: copy.deepcopy(hf_model),
    )
    _ = loaded.arch  # an architecture without a hook mapping is refused here, in one line
    register_loaded(loaded)
    return loaded


def weights_sha256(hf_model) -> str:
    """sha256 over parameter names and bytes, so the manifest says which weights ran."""
    import torch

    h = hashlib.sha256()
    for key, tensor in sorted(hf_model.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()
