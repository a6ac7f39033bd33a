"""emolab: a plugin-based lab bench for emotion directions in language models.

The notebook API (`docs/api.md`): `emolab.open(path)`, `emolab.create(path, model=...)`,
`emolab.wrap(hf_model, tokenizer)`. Importing emolab stays cheap: torch, transformers and
pandas load only when one of these is called.
"""

from .version import __version__  # noqa: F401 - emolab.__version__


def open(path):  # noqa: A001 - emolab.open reads like the builtin it shadows only here
    """An existing session as a `Lab`: `.run(step, **params)`, `.table(name)`, `.vectors()`."""
    from .lab import open as open_lab

    return open_lab(path)


def create(path, model="smollm2-135m", device="cpu", seed=0):
    """A new session at `path` for `model` (a registered name, or a model from `wrap`)."""
    from .lab import create as create_lab

    return create_lab(path, model, device, seed)


def wrap(hf_model, tokenizer, name=None):
    """An in-memory Hugging Face causal LM + tokenizer as an emolab model (a LoadedModel)."""
    from .lab import wrap as wrap_model

    return wrap_model(hf_model, tokenizer, name)
