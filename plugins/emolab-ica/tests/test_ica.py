"""The ica extractor: a planted non-Gaussian source is found, and the registry hook works."""

import numpy as np
import pytest
from emolab_ica import FastICAExtractor, register_extractors

from emolab.errors import BadInput


def planted(seed=0, n=200, d=32):
    """Gaussian noise plus one heavy-tailed source along `direction`, shifted for pos."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)

    def make(shift):
        source = rng.laplace(size=n) + shift
        return rng.normal(scale=0.3, size=(n, d)) + source[:, None] * direction

    return make(1.5), make(0.0), direction


def test_finds_the_planted_direction():
    pos, neg, direction = planted()
    v = FastICAExtractor().fit_layer(pos, neg)
    cos = float(v @ direction / np.linalg.norm(v))
    assert cos > 0.9  # and it points toward the emotion


def test_batched_over_layers_and_signed():
    pos, neg, direction = planted(seed=1)
    out = FastICAExtractor(n_components=5).fit(np.stack([pos, -pos], 1), np.stack([neg, neg], 1))
    assert out.shape == (2, 32)
    assert out[0] @ direction > 0 and out[1] @ direction < 0


def test_too_few_texts_is_a_clear_error():
    with pytest.raises(BadInput, match="at least 2"):
        FastICAExtractor().fit_layer(np.ones((1, 4)), np.ones((3, 4)))


def test_hook_registers_the_extractor():
    got = []
    register_extractors(register=got.append)
    assert [c.name for c in got] == ["ica"]
    assert {p.name for p in got[0].params} == {"n_components", "max_iter", "seed"}


def test_runs_on_a_tiny_model_session(tiny_session):
    """End to end on real (tiny) activations: one finite direction per layer."""
    from safetensors.numpy import load_file

    acts = load_file(str(tiny_session.artifact("activations.safetensors")))["train"]
    half = len(acts) // 2
    out = FastICAExtractor(n_components=4).fit(
        acts[:half].astype(np.float32), acts[half:].astype(np.float32)
    )
    assert out.shape == acts.shape[1:] and np.isfinite(out).all()
