import numpy as np
import pytest

from emolab.capture import capture
from emolab.errors import BadInput, UnknownName

TEXTS = [
    "I feel, great today",
    "Hello there friend, how are you doing this fine morning",
    "ok, fine",
    "Sad, sad news from home",
    "What a day",
]


@pytest.mark.parametrize("position", ["last", "mean", "commas"])
def test_batched_padded_capture_equals_one_by_one(tiny_model, position):
    texts = TEXTS[:4] if position == "commas" else TEXTS
    batched = capture(tiny_model, texts, position=position, batch_size=3)
    single = np.stack([capture(tiny_model, [t], position=position)[0] for t in texts])
    assert batched.shape == (len(texts), tiny_model.n_layers, tiny_model.d_model)
    assert batched.dtype == np.float32
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_capture_matches_the_transformer_bridge(tiny_model):
    ids, mask = tiny_model.encode(TEXTS[:1])
    _, cache = tiny_model.bridge().run_with_cache(
        ids, attention_mask=mask, names_filter=lambda n: n.endswith("hook_resid_post")
    )
    ours = capture(tiny_model, TEXTS[:1])[0]
    for layer in range(tiny_model.n_layers):
        ref = cache[f"blocks.{layer}.hook_resid_post"][0, -1].detach().numpy()
        np.testing.assert_allclose(ours[layer], ref, atol=1e-5)


def test_hook_z_capture_and_all_positions(tiny_model):
    z = capture(tiny_model, TEXTS[:2], hooks=["blocks.1.attn.hook_z"])
    assert z.shape == (2, 1, tiny_model.n_heads * tiny_model.d_head)
    alias = capture(tiny_model, TEXTS[:2], hooks=["blocks.1.attn.o.hook_in"])
    np.testing.assert_allclose(z, alias)
    rows = capture(tiny_model, TEXTS[:2], position="all")
    lengths = [len(tiny_model.tokenizer(t)["input_ids"]) for t in TEXTS[:2]]
    assert [r.shape[0] for r in rows] == lengths


def test_mean_skips_position_zero(tiny_model):
    text = TEXTS[1]
    rows = capture(tiny_model, [text], position="all")[0]
    mean = capture(tiny_model, [text], position="mean")[0]
    np.testing.assert_allclose(mean, rows[1:].mean(0), atol=1e-6)


def test_bad_capture_inputs(tiny_model):
    with pytest.raises(BadInput, match="single token"):
        capture(tiny_model, ["a"])
    with pytest.raises(BadInput, match="empty"):
        capture(tiny_model, ["ok then", "  "])
    with pytest.raises(BadInput, match="no comma"):
        capture(tiny_model, ["no commas here"], position="commas")
    with pytest.raises(BadInput, match="out of range"):
        capture(tiny_model, TEXTS, hooks=["blocks.9.hook_resid_post"])
    with pytest.raises(UnknownName, match="unknown hook"):
        capture(tiny_model, TEXTS, hooks=["blocks.1.hook_nope"])
    with pytest.raises(BadInput, match="unknown position"):
        capture(tiny_model, TEXTS, position="first")
