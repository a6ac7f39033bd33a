"""TL hook names on the plain HF model: equal to the bridge, removed after any exit."""

import pytest
import torch

from emolab.hooks import apply_hooks
from emolab.runner import generate, last_logits


def hook_count(model):
    mods = [model.hf, *model.hf.modules()]
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in mods)


def test_hooks_are_removed_even_after_an_exception(tiny_model):
    before = hook_count(tiny_model)

    def boom(h, ctx):
        raise RuntimeError("inside a hook")

    with pytest.raises(RuntimeError, match="inside a hook"):
        last_logits(tiny_model, ["hello there"], [("blocks.1.hook_resid_post", boom)])
    assert hook_count(tiny_model) == before
    with pytest.raises(KeyError), apply_hooks(tiny_model, [("blocks.0.attn.hook_z", boom)]):
        raise KeyError("outside")
    assert hook_count(tiny_model) == before


def test_zeroing_a_head_matches_the_bridge(tiny_model):
    def zero_head_2(z, ctx):
        z = z.clone()
        z[:, :, 2] = 0
        return z

    ids, mask = tiny_model.encode(["the cat sat on the mat"])
    ours = last_logits(
        tiny_model, ["the cat sat on the mat"], [("blocks.1.attn.hook_z", zero_head_2)]
    )
    bridge = tiny_model.bridge()
    with torch.no_grad():
        ref = bridge.run_with_hooks(
            ids,
            attention_mask=mask,
            fwd_hooks=[("blocks.1.attn.hook_z", lambda z, hook: zero_head_2(z, None))],
        )[0, -1]
    torch.testing.assert_close(torch.tensor(ours[0]), ref, atol=1e-4, rtol=0)
    plain = last_logits(tiny_model, ["the cat sat on the mat"])
    assert abs(plain - ours).max() > 1e-4


def test_resid_pre_and_post_agree_across_blocks(tiny_model):
    seen = {}

    def keep(h, ctx):
        seen[ctx.name] = h.detach().clone()

    last_logits(
        tiny_model,
        ["a short text"],
        [("blocks.1.hook_resid_post", keep), ("blocks.2.hook_resid_pre", keep)],
    )
    torch.testing.assert_close(seen["blocks.1.hook_resid_post"], seen["blocks.2.hook_resid_pre"])


def test_batched_left_padded_generation_equals_one_by_one(tiny_model):
    prompts = ["Tell me a story about a cat", "Hi", "What is the weather like today?"]
    batched = generate(tiny_model, prompts, max_new_tokens=6, batch_size=3)
    single = [generate(tiny_model, [p], max_new_tokens=6)[0] for p in prompts]
    assert batched == single


def test_streamed_text_grows_to_the_final_text(tiny_model):
    prompts = ["Tell me a story about a cat", "Hi", "What is the weather like today?"]
    seen: dict[int, list[str]] = {}
    out = generate(
        tiny_model,
        prompts,
        max_new_tokens=6,
        batch_size=2,
        on_text=lambda i, t: seen.setdefault(i, []).append(t),
    )
    assert sorted(seen) == [0, 1, 2]
    for i, texts in seen.items():
        assert len(texts) == 6  # one report per generated token, both batches
        assert texts[-1] == out[i]


def test_generation_context_counts_new_tokens(tiny_model):
    seen = []

    def watch(h, ctx):
        seen.append((ctx.new_tokens, h.shape[1]))

    generate(tiny_model, ["Hello there"], [("blocks.0.hook_resid_post", watch)], max_new_tokens=3)
    assert seen[0][0] == 0 and seen[0][1] > 1  # the prompt pass
    assert [n for n, _ in seen[1:]] == [1, 2] and all(s == 1 for _, s in seen[1:])
