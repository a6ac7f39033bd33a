"""The full TransformerLens vocabulary: fast points on plain HF, every other name through the
bridge, the two equal where both exist, and the bridge checked against HF itself."""

import numpy as np
import pytest
import torch

from emolab.capture import capture, capture_named
from emolab.errors import BadInput, UnknownName
from emolab.hooks import BRIDGE, FAST, POINTS, apply_hooks, path_of, route
from emolab.runner import generate, last_logits

TEXTS = ["the cat sat on the mat", "hi there you", "a much longer sentence, with a comma in it"]


def hook_count(module):
    mods = [module, *module.modules()]
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in mods)


@pytest.mark.parametrize("point", list(POINTS))
@pytest.mark.parametrize("position", ["last", "mean"])
def test_fast_path_equals_the_bridge_at_every_fast_point(tiny_model, point, position):
    name = f"blocks.2.{point}"
    fast = capture(tiny_model, TEXTS, [name], position=position, batch_size=2)
    bridge = capture(tiny_model, TEXTS, [name], position=position, batch_size=2, via=BRIDGE)
    np.testing.assert_allclose(fast, bridge, atol=1e-5, rtol=0)
    named = capture_named(tiny_model, TEXTS, [name], position=position, via=BRIDGE)[name]
    np.testing.assert_allclose(fast[:, 0], named.reshape(len(TEXTS), -1), atol=1e-5, rtol=0)


def test_attention_pattern_through_the_bridge_equals_hf_output_attentions(tiny_model):
    name = "blocks.1.attn.hook_pattern"
    assert path_of(tiny_model, name) == BRIDGE
    got = capture_named(tiny_model, TEXTS, [name], batch_size=2)[name]
    ids, mask = tiny_model.encode(TEXTS)
    hf = tiny_model.reload()  # a plain HF copy (eager attention gives its weights)
    with torch.no_grad():
        att = hf(input_ids=ids, attention_mask=mask, output_attentions=True).attentions[1]
    assert got.shape == (len(TEXTS), tiny_model.n_heads, int(mask.sum(1).max()))
    for i in range(len(TEXTS)):
        n = int(mask[i].sum())
        np.testing.assert_allclose(got[i, :, :n], att[i, :, n - 1, :n].numpy(), atol=1e-6)
        assert not got[i, :, n:].any()  # keys past the text: 0, as softmax gives a masked key
        np.testing.assert_allclose(got[i].sum(-1), 1.0, atol=1e-5)


def test_other_tl_names_capture_in_their_own_shapes(tiny_model):
    names = ["blocks.1.attn.hook_q", "blocks.1.attn.hook_k", "ln_final.hook_normalized"]
    got = capture_named(tiny_model, TEXTS, names)
    kv_heads = tiny_model.config.num_key_value_heads
    assert got[names[0]].shape == (3, tiny_model.n_heads, tiny_model.d_head)
    assert got[names[1]].shape == (3, kv_heads, tiny_model.d_head)
    assert got[names[2]].shape == (3, tiny_model.d_model)
    alls = capture_named(tiny_model, TEXTS, ["blocks.0.attn.hook_pattern"], position="all")
    lens = [int(n) for n in tiny_model.encode(TEXTS)[1].sum(1)]
    assert [a.shape for a in alls["blocks.0.attn.hook_pattern"]] == [(n, 4, n) for n in lens]


def test_an_intervention_at_a_bridge_name_equals_transformer_lens_run_with_hooks(tiny_model):
    def zero_head_2(pattern, ctx):
        pattern = pattern.clone()
        pattern[:, 2] = 0
        return pattern

    name = "blocks.1.attn.hook_pattern"
    ours = last_logits(tiny_model, TEXTS, [(name, zero_head_2)])
    ids, mask = tiny_model.encode(TEXTS)
    with torch.no_grad():
        ref = tiny_model.bridge().run_with_hooks(
            ids, attention_mask=mask, fwd_hooks=[(name, lambda p, hook: zero_head_2(p, None))]
        )
    last = mask.sum(1) - 1
    torch.testing.assert_close(torch.tensor(ours), ref[torch.arange(3), last], atol=1e-5, rtol=0)
    assert np.abs(ours - last_logits(tiny_model, TEXTS)).max() > 1e-3


def test_generation_through_the_bridge_equals_plain_hf(tiny_model):
    seen = []

    def watch(pattern, ctx):
        seen.append(ctx.name)

    plain = generate(tiny_model, TEXTS, max_new_tokens=5, batch_size=2)
    bridged = generate(
        tiny_model, TEXTS, [("blocks.1.attn.hook_pattern", watch)], max_new_tokens=5, batch_size=2
    )
    assert bridged == plain
    assert seen and set(seen) == {"blocks.1.attn.hook_pattern"}


def test_bridge_hooks_are_removed_even_after_an_exception(tiny_model):
    bridge_hf = tiny_model.bridge().original_model
    before = hook_count(bridge_hf), hook_count(tiny_model.hf)

    def boom(act, ctx):
        raise RuntimeError("inside a bridge hook")

    with pytest.raises(RuntimeError, match="inside a bridge hook"):
        last_logits(tiny_model, TEXTS, [("blocks.2.attn.hook_attn_scores", boom)])
    with pytest.raises(KeyError), apply_hooks(tiny_model, [("hook_embed", boom)], via=BRIDGE):
        raise KeyError("outside")
    assert (hook_count(bridge_hf), hook_count(tiny_model.hf)) == before
    assert not any(p.fwd_hooks for p in tiny_model.bridge().hook_dict.values())


def test_unknown_and_misrouted_hook_names_are_one_line_errors(tiny_model):
    with pytest.raises(UnknownName, match="did you mean blocks.1.attn.hook_pattern"):
        path_of(tiny_model, "blocks.1.attn.hook_patern")
    with pytest.raises(UnknownName, match="runs only through the TransformerBridge"):
        route(tiny_model, ["blocks.1.attn.hook_pattern"], FAST)
    with pytest.raises(UnknownName, match="runs only through the TransformerBridge"):
        capture(tiny_model, TEXTS, ["ln_final.hook_normalized"])
    with pytest.raises(BadInput, match="'blocks.1.attn.hook_result' never ran"):
        capture_named(tiny_model, TEXTS, ["blocks.1.attn.hook_result"])
    assert route(tiny_model, ["blocks.1.hook_resid_post"]) == FAST
    assert route(tiny_model, ["blocks.1.hook_resid_post", "hook_embed"]) == BRIDGE


def test_hooks_command_lists_every_name_with_its_path(run_cli):
    import json

    res = run_cli("hooks", "--model", "tiny-llama", "--json")
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["blocks.3.hook_resid_post"]["path"] == "fast"
    assert rows["blocks.3.attn.hook_pattern"]["path"] == "bridge"
    assert rows["blocks.3.attn.hook_pattern"]["shape"] == ["batch", 4, "pos", "pos"]
    assert rows["ln_final.hook_normalized"]["path"] == "bridge"
    assert sum(r["path"] == "fast" for r in rows.values()) == 4 * 8  # 6 points + 2 aliases
    table = run_cli("hooks", "--model", "tiny-llama")
    assert "blocks.{L}.attn.hook_pattern" in table.output and "211 bridge" in table.output
    bad = run_cli("hooks", "--model", "nosuch")
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1


def test_extract_hooks_captures_the_pattern_through_the_bridge(run_cli, tmp_path, tiny_model):
    from emolab import results
    from emolab.session import Session

    path = tmp_path / "s"
    name = "blocks.1.attn.hook_pattern"
    res = run_cli(
        "extract", "--model", "tiny-llama", "--emotions", "joy,anger", "--limit", "4",
        "--test-limit", "2", "--hooks", f"{name},blocks.2.hook_resid_mid", "--session", path,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    session = Session.open(path)
    out = results.latest(session, "extract", suffix="hooks.safetensors")
    arrays, meta = session.load_arrays(out.path.name)
    assert meta.paths == {name: "bridge", "blocks.2.hook_resid_mid": "bridge"}
    texts = [t for _, t in session.read_json("examples.json")["train"]]
    got = arrays[f"train/{name}"]
    assert got.shape[:2] == (len(texts), 4) and arrays["test/" + name].shape[0] == 6
    hf = tiny_model.reload()
    for i, text in enumerate(texts):
        ids, _ = tiny_model.encode([text])
        with torch.no_grad():
            att = hf(input_ids=ids, output_attentions=True).attentions[1][0, :, -1]
        n = ids.shape[1]
        np.testing.assert_allclose(got[i, :, :n], att.numpy(), atol=1e-5)
    bad = run_cli(
        "extract", "--model", "tiny-llama", "--emotions", "joy", "--limit", "2",
        "--test-limit", "1", "--hooks", "blocks.1.attn.hook_paterrn", "--session", tmp_path / "b",
    )  # fmt: skip
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == [
        "error: unknown hook 'blocks.1.attn.hook_paterrn' for tiny-llama "
        "(did you mean blocks.1.attn.hook_pattern?)"
    ]


def test_booting_the_bridge_leaves_the_models_tokenizer_alone(tiny_model):
    tiny_model.bridge()
    assert tiny_model.tokenizer.bos_token is None  # TL gives a BOS-less tokenizer the EOS
    assert tiny_model.bridge().tokenizer is not tiny_model.tokenizer
