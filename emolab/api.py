"""Component contracts that plugins implement (built-ins follow them too).

Each component has a `name`, a one-line `description`, a typed parameter schema
(`params`) and a `version` filled in from its distribution when registered. Parameters
are set in the constructor and visible through `get_params()` (scikit-learn habit), so
the CLI, TUI and session log can show and record them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from .errors import BadInput
from .params import Param, validate

# train fits, dev chooses (layer, alpha, hyper-parameters), test only reports
SPLITS = ("train", "dev", "test")

if TYPE_CHECKING:
    import torch


class Model(Protocol):
    """What a component may rely on in a loaded model: the plain Hugging Face causal LM and
    its tokenizer, and the shape numbers. `emolab.models.Model` is one; the contracts
    name only this, so a plugin needs nothing outside this module."""

    name: str
    hf: Any
    tokenizer: Any
    device: str

    @property
    def config(self) -> Any: ...

    @property
    def n_layers(self) -> int: ...

    @property
    def d_model(self) -> int: ...

    @property
    def n_heads(self) -> int: ...


class Component:
    """Base of every plugin component: name, description, params, version."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    version: str = "0"

    def __init__(self, **kwargs: Any) -> None:
        for key, value in validate(self.params, kwargs, self.name).items():
            setattr(self, key, value)

    def get_params(self) -> dict[str, Any]:
        return {p.name: getattr(self, p.name) for p in self.params}

    def with_params(self, **kwargs: Any) -> Component:
        """A fresh copy with some parameters changed (registered instances stay pristine)."""
        clone = type(self)(**{**self.get_params(), **kwargs})
        clone.version = self.version
        return clone

    def schema(self) -> list[dict]:
        return [p.describe() for p in self.params]


class Extractor(Component):
    """Activations of an emotion and of its baseline -> one direction per layer.

    Inputs are `[n, layers, d]` and `[m, layers, d]`; the output is `[layers, d]`,
    pointing from the baseline toward the emotion. Override `fit` to batch over
    layers, or `fit_layer` to work on one layer at a time.

    An extractor that must run the model (DAS) sets `needs_model` and implements
    `fit_in_context(pos, neg, context)`; the extract step then passes a context dict:
    model, hooks (one per layer axis), labels, emotion, baseline, pos_texts, neg_texts, check.
    """

    needs_model: ClassVar[bool] = False

    def fit_in_context(self, pos: np.ndarray, neg: np.ndarray, context: dict) -> np.ndarray:
        return self.fit(pos, neg)

    def fit(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        return np.stack([self.fit_layer(pos[:, i], neg[:, i]) for i in range(pos.shape[1])])

    def fit_layer(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Aligner(Component):
    """Paired activations `[n, d_a]`, `[n, d_b]` of the same texts in two models -> a map.

    `fit` returns self; `transform` maps A-space rows into B-space (or a shared space);
    `score` measures how well paired rows correspond after fitting. The permutation
    baseline re-scores with the pairing shuffled, so every score has its chance level.
    """

    def fit(self, a: np.ndarray, b: np.ndarray) -> Aligner:
        raise NotImplementedError

    def transform(self, a: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score(self, a: np.ndarray, b: np.ndarray) -> float:
        raise NotImplementedError

    def permutation_baseline(
        self, a: np.ndarray, b: np.ndarray, draws: int = 100, seed: int = 0
    ) -> np.ndarray:
        """Scores of fresh fits on shuffled pairings."""
        rng = np.random.default_rng(seed)
        scores = []
        for _ in range(draws):
            perm = rng.permutation(len(b))
            scores.append(self.with_params().fit(a, b[perm]).score(a, b[perm]))
        return np.asarray(scores)


@dataclass
class HookContext:
    """What a hook function may need besides the activation: its name and the batch layout.

    `prompt_lengths` are real (unpadded) prompt lengths; `left_padded` says where padding
    sits; `new_tokens` is 0 on the prompt pass and >0 while generating one token at a time.
    """

    name: str
    attention_mask: torch.Tensor | None = None
    prompt_lengths: list[int] | None = None
    left_padded: bool = False
    new_tokens: int = 0
    extra: dict = field(default_factory=dict)


HookFn = Callable[["torch.Tensor", HookContext], "torch.Tensor | None"]


class Intervention(Component):
    """Params -> a list of `(hook_name, hook_fn)` pairs, applied in a context manager.

    Hook names are TransformerLens names (`blocks.{L}.hook_resid_post`, ...). A hook fn
    returns the new activation, or None to leave it unchanged. `prepare` gives the
    intervention the model (and the run's data) before hooks are asked for.
    """

    def hooks(self, model: Model, **context: Any) -> list[tuple[str, HookFn]]:
        raise NotImplementedError


@dataclass
class Run:
    """One intervention run, as evaluators see it.

    Evaluators may leave per-text results in `extra` for the step that called them: the
    perplexity evaluator puts `regimes` (one per steered text); a judge puts `judge_probs`
    (`[texts, labels]`) and `judge_labels`, from which the sweep counts success (top label =
    target and the text surgical). A judge without them still gives its metrics; the sweep's
    success columns are then NaN.
    """

    model: Model
    prompts: Sequence[str]
    baseline_texts: Sequence[str] = ()
    steered_texts: Sequence[str] = ()
    hooks: Sequence[tuple[str, HookFn]] = ()
    emotions: Sequence[str] = ()
    target: str | None = None
    extra: dict = field(default_factory=dict)


class Evaluator(Component):
    """A run -> named float metrics."""

    def evaluate(self, run: Run) -> dict[str, float]:
        raise NotImplementedError


class ModelSource(Component):
    """A named model (or a `prefix:` family of them) -> a loaded model (a `Model`).

    `spec` is the full name the user typed (e.g. `hf:gpt2`) for prefixed sources.
    """

    prefix: ClassVar[str | None] = None
    source: ClassVar[str] = ""

    def info(self, spec: str) -> dict:
        """layers, d_model, heads where cheap to know without loading; may be partial."""
        return {}

    def available(self, spec: str) -> tuple[bool, str]:
        return True, ""

    def load(self, spec: str, device: str = "cpu") -> Model:
        raise NotImplementedError


@dataclass(frozen=True)
class Example:
    text: str
    label: str


class DatasetSource(Component):
    """A named dataset (or a `prefix:` family) -> labelled examples per split."""

    prefix: ClassVar[str | None] = None
    splits: ClassVar[tuple[str, ...]] = SPLITS

    def labels(self, spec: str) -> list[str]:
        raise NotImplementedError

    def check_split(self, split: str) -> None:
        """The one error for a split this source does not have."""
        if split not in self.splits:
            raise BadInput(f"unknown split '{split}' (known: {', '.join(self.splits)})")

    def load(self, spec: str, split: str) -> list[Example]:
        raise NotImplementedError
