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
# where and how a push on the residual stream acts: the steering interventions' choices and
# the steer / sweep options alike
PUSH_POSITIONS = ("all", "prompt", "generated")
PUSH_SCALES = ("relative", "absolute")

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


def paired_rows(a, b, least: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """`a` and `b` as float64 `[n, d]` arrays of one row per pair, or one line saying why
    they cannot be aligned (an aligner's input check, shared by built-ins and plugins)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2:
        raise BadInput(f"aligners take [n, d] arrays, got {a.shape} and {b.shape}")
    if len(a) != len(b):
        raise BadInput(f"paired activations differ in length: {len(a)} vs {len(b)} rows")
    if len(a) < least:
        raise BadInput(f"need at least {least} paired rows to align, got {len(a)}")
    return a, b


class Aligner(Component):
    """Paired activations of the same texts in two models, `[n, d_a]` and `[n, d_b]` -> how
    much geometry the two share. The align step calls only what is declared here, so a
    plugin can do anything a built-in does; it adds the permutation baselines (the same
    scores with the pairing of rows shuffled) for every aligner alike.

    Two kinds, told apart by `learns_map`:

    - A map (Procrustes, CCA, ridge): `fit(a, b)` learns it from the train rows and returns
      self; `transform_a` / `transform_b` put rows of each model into one shared space (the
      same width for both), where `score` compares them. The step scores held-out texts
      and adds nearest-neighbour retrieval there (is a mapped A row's nearest B row the
      same text, the same label?).
    - Basis-free (CKA, RSA): nothing to learn (`fit` returns self); `score` compares the
      rows as they are, and the step gives it every text. No transforms are needed.

    `score(a, b) -> {metric: value}`: the step reports each metric (suffixed `_held_out`
    when scored on held-out rows, `_centroids` for centroid rows) beside its baseline.
    `pairs` says which rows the step passes: "texts" (one per text) or "centroids" (one per
    label: class means minus the overall mean, what a representational comparison needs).

    `maps_directions` says that `map_direction(v)` carries a direction of A's residual
    (`[d_a]`, a direction, so no offsets: the map must be linear) into B's basis (`[d_b]`).
    The step then reports the mapped emotion vector's cosine with B's own vector, and
    `align --transfer` can steer B with it; an aligner without it gets that row marked
    "not available" instead of an error.

    Baselines reuse work where they can: `fit_permuted(a, b, perm)` is `fit(a, b[perm])` on
    the aligner already fitted on `(a, b)` (override it to keep what the pairing does not
    change, such as each side's PCA); `permutation_baseline` scores a basis-free aligner
    under shuffles (override it when a shuffle can reuse work, as CKA's Gram matrices do).
    `details(a, b)` may add JSON-able extras to the step's record (per-component
    correlations, dissimilarity matrices).
    """

    learns_map: ClassVar[bool] = True
    maps_directions: ClassVar[bool] = False
    pairs: ClassVar[str] = "texts"

    def fit(self, a: np.ndarray, b: np.ndarray) -> Aligner:
        raise NotImplementedError

    def transform_a(self, a: np.ndarray) -> np.ndarray:
        """A rows `[n, d_a]` -> the shared space `[n, k]` (aligners that learn a map)."""
        raise NotImplementedError(f"aligner '{self.name}' has no transform_a")

    def transform_b(self, b: np.ndarray) -> np.ndarray:
        """B rows `[n, d_b]` -> the same shared space `[n, k]`."""
        raise NotImplementedError(f"aligner '{self.name}' has no transform_b")

    def score(self, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
        raise NotImplementedError

    def map_direction(self, v: np.ndarray) -> np.ndarray:
        """A direction `[d_a]` -> B's basis `[d_b]` (only when `maps_directions`)."""
        raise NotImplementedError(f"aligner '{self.name}' does not map directions")

    def details(self, a: np.ndarray, b: np.ndarray) -> dict:
        return {}

    def fit_permuted(self, a: np.ndarray, b: np.ndarray, perm: np.ndarray) -> Aligner:
        return self.with_params().fit(a, b[perm])

    def permutation_baseline(
        self, a: np.ndarray, b: np.ndarray, draws: int = 100, seed: int = 0
    ) -> dict[str, np.ndarray]:
        """Every metric of `score` on `draws` shuffled pairings of these same rows."""
        rng = np.random.default_rng(seed)
        null: dict[str, list[float]] = {}
        fitted = self.with_params().fit(a, b)
        for _ in range(draws):
            perm = rng.permutation(len(b))
            scores = fitted.fit_permuted(a, b, perm).score(a, b[perm])
            for key, value in scores.items():
                null.setdefault(key, []).append(value)
        return {key: np.asarray(values) for key, values in null.items()}


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
