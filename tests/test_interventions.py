"""Every built-in intervention on the tiny Llama: what it changes, what it leaves alone
(padding, other positions), bad input, and that its hooks are gone after an exception."""

import numpy as np
import pytest
import torch

from emolab import plugins
from emolab.api import HookContext
from emolab.capture import capture, comma_ids
from emolab.errors import BadInput, UnknownName
from emolab.hooks import apply_hooks
from emolab.runner import generate, last_logits

TEXTS = ["I thought this movie was great, I loved it.", "a short one, ok", "no commas here at all"]


def get(name, **params):
    return plugins.get("interventions", name, **params)


def vec(model, seed=0):
    return np.random.default_rng(seed).normal(size=(model.n_layers, model.d_model)).astype("f4")


def seen(model, hook, texts=TEXTS, pairs=(), padding="right"):
    """The activation at `hook` as a hook registered after `pairs` sees it."""
    store = {}

    def keep(act, ctx):
        store["a"] = act.detach().clone()

    ids, mask = model.encode(texts, padding)
    ctx = HookContext(name="", attention_mask=mask, extra={"input_ids": ids})
    with apply_hooks(model, [*pairs, (hook, keep)], ctx), torch.no_grad():
        model.hf(input_ids=ids, attention_mask=mask, use_cache=False)
    return store["a"], ids, mask


def n_hooks(model):
    mods = [model.hf, *model.hf.modules()]
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in mods)


def all_interventions(model):
    v = vec(model)
    return [
        (get("residual_add", layer=1, to_layer=2, alpha=0.5), {"vector": v, "norms": np.ones(4)}),
        (get("directional_ablation", layers="1,2"), {"vector": v}),
        (get("directional_patch", layers="2"), {"vector": v, "source_texts": TEXTS[:1]}),
        (get("head_ablation", heads="1.0,2.3"), {}),
        (get("comma_zeroing", layers="1"), {}),
        (get("activation_patch", layers="1"), {"source_texts": TEXTS[:1]}),
        (get("enhance", heads="1.1", neurons="2.5", factor=3.0), {}),
    ]


def test_all_registered():
    names = set(plugins.registry().names("interventions"))
    assert {
        "residual_add",
        "directional_ablation",
        "directional_patch",
        "head_ablation",
        "comma_zeroing",
        "activation_patch",
        "enhance",
    } <= names


def test_every_intervention_changes_logits_and_leaves_no_hook_after_an_exception(tiny_model):
    base = last_logits(tiny_model, TEXTS)
    before = n_hooks(tiny_model)
    for inter, context in all_interventions(tiny_model):
        pairs = inter.hooks(tiny_model, texts=TEXTS, **context)
        assert pairs, inter.name
        steered = last_logits(tiny_model, TEXTS, pairs)
        assert not np.allclose(steered, base, atol=1e-5), inter.name
        with pytest.raises(RuntimeError, match="boom"):
            with apply_hooks(tiny_model, pairs):
                assert n_hooks(tiny_model) > before
                raise RuntimeError("boom")
        assert n_hooks(tiny_model) == before, inter.name
        np.testing.assert_allclose(last_logits(tiny_model, TEXTS), base, atol=1e-6)


def test_residual_add_absolute_adds_alpha_v_at_real_positions_only(tiny_model):
    v = vec(tiny_model)
    pairs = get("residual_add", layer=2, alpha=2.0, scale="absolute").hooks(tiny_model, vector=v)
    plain, _, mask = seen(tiny_model, "blocks.2.hook_resid_post", padding="left")
    steered, _, _ = seen(tiny_model, "blocks.2.hook_resid_post", pairs=pairs, padding="left")
    diff = (steered - plain).numpy()
    real = mask.bool().numpy()
    np.testing.assert_allclose(diff[real], np.broadcast_to(2.0 * v[2], diff[real].shape), atol=1e-4)
    assert np.abs(diff[~real]).max() == 0  # left padding untouched


def test_residual_add_preserve_norm_turns_instead_of_lengthening(tiny_model):
    v = vec(tiny_model)
    pairs = get("residual_add", layer=2, alpha=2.0, scale="absolute", norm="preserve").hooks(
        tiny_model, vector=v
    )
    plain, _, mask = seen(tiny_model, "blocks.2.hook_resid_post", padding="left")
    steered, _, _ = seen(tiny_model, "blocks.2.hook_resid_post", pairs=pairs, padding="left")
    real = mask.bool().numpy()
    p, s = plain.numpy()[real], steered.numpy()[real]
    # every steered position keeps its norm, and turns toward v
    np.testing.assert_allclose(np.linalg.norm(s, axis=-1), np.linalg.norm(p, axis=-1), rtol=1e-4)
    u = v[2] / np.linalg.norm(v[2])
    cos = lambda x: (x @ u) / np.linalg.norm(x, axis=-1)  # noqa: E731
    assert (cos(s) > cos(p)).all()
    # the same direction as the free push: a rescaled h + alpha v
    free = get("residual_add", layer=2, alpha=2.0, scale="absolute").hooks(tiny_model, vector=v)
    f = seen(tiny_model, "blocks.2.hook_resid_post", pairs=free, padding="left")[0].numpy()[real]

    def units(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    np.testing.assert_allclose(units(s), units(f), atol=1e-5)
    steered_pad = steered.numpy()[~real]
    np.testing.assert_array_equal(steered_pad, plain.numpy()[~real])  # padding untouched


def test_residual_add_relative_uses_the_layer_norm_and_a_layer_range(tiny_model):
    v = vec(tiny_model)
    norms = np.arange(1, 5, dtype=float) * 10
    pairs = get("residual_add", layer=1, to_layer=3, alpha=0.5).hooks(
        tiny_model, vector=v, norms=norms
    )
    assert [n for n, _ in pairs] == [f"blocks.{i}.hook_resid_post" for i in (1, 2, 3)]
    plain, _, _ = seen(tiny_model, "blocks.1.hook_resid_post")
    steered, _, _ = seen(tiny_model, "blocks.1.hook_resid_post", pairs=pairs[:1])
    delta = (steered - plain)[0, 0].numpy()
    assert np.linalg.norm(delta) == pytest.approx(0.5 * 20, rel=1e-4)
    with pytest.raises(BadInput, match="residual norms"):
        get("residual_add", layer=1).hooks(tiny_model, vector=v)
    with pytest.raises(BadInput, match="out of range"):
        get("residual_add", layer=3, to_layer=9).hooks(tiny_model, vector=v, norms=norms)


def test_residual_add_positions_prompt_vs_generated(tiny_model):
    v = vec(tiny_model)
    calls = {}
    for mode in ("all", "prompt", "generated"):
        pairs = get("residual_add", layer=1, alpha=5.0, scale="absolute", positions=mode).hooks(
            tiny_model, vector=v
        )
        name, fn = pairs[0]
        log = []

        def spy(act, ctx, fn=fn, log=log):
            out = fn(act, ctx)
            log.append((ctx.new_tokens, out is not None))
            return out

        generate(tiny_model, TEXTS[:2], [(name, spy)], max_new_tokens=3, use_chat=False)
        calls[mode] = log
    assert all(changed for _, changed in calls["all"])
    assert [c for n, c in calls["prompt"]] == [n == 0 for n, _ in calls["prompt"]]
    assert [c for n, c in calls["generated"]] == [n > 0 for n, _ in calls["generated"]]


def test_directional_ablation_removes_the_component(tiny_model):
    v = vec(tiny_model)
    pairs = get("directional_ablation", layers="2").hooks(tiny_model, vector=v)
    act, _, mask = seen(tiny_model, "blocks.2.hook_resid_post", pairs=pairs)
    u = v[2] / np.linalg.norm(v[2])
    proj = act.numpy() @ u
    assert np.abs(proj[mask.bool().numpy()]).max() < 1e-4
    with pytest.raises(BadInput, match="zero"):
        get("directional_ablation", layers="2").hooks(tiny_model, vector=np.zeros(64))


def test_directional_patch_sets_the_projection_to_the_source_mean(tiny_model):
    v = vec(tiny_model)
    pairs = get("directional_patch", layers="1").hooks(tiny_model, vector=v, source_texts=TEXTS[:2])
    u = v[1] / np.linalg.norm(v[1])
    src = capture(tiny_model, TEXTS[:2], ["blocks.1.hook_resid_post"], "mean")[:, 0]
    target = float(np.mean(src @ u))
    act, _, mask = seen(tiny_model, "blocks.1.hook_resid_post", pairs=pairs)
    proj = act.numpy() @ u
    m = mask.bool().numpy().copy()
    m[:, 0] = False  # the sink keeps its value
    np.testing.assert_allclose(proj[m], target, atol=1e-4)
    with pytest.raises(BadInput, match="source texts"):
        get("directional_patch").hooks(tiny_model, vector=v)


def test_head_ablation_zero_and_mean(tiny_model):
    pairs = get("head_ablation", heads="2.1").hooks(tiny_model)
    z, _, mask = seen(tiny_model, "blocks.2.attn.hook_z", pairs=pairs)
    plain, _, _ = seen(tiny_model, "blocks.2.attn.hook_z")
    real = mask.bool()
    assert z.shape[2:] == (4, 16)
    assert z[real][:, 1].abs().max() == 0
    assert torch.equal(z[~real], plain[~real])  # padding untouched
    assert torch.equal(z[:, :, 0], plain[:, :, 0])
    pairs = get("head_ablation", heads="2.1", mode="mean").hooks(tiny_model, mean_texts=TEXTS)
    z, _, _ = seen(tiny_model, "blocks.2.attn.hook_z", pairs=pairs)
    assert torch.allclose(z[real][:, 1], z[real][0, 1].expand_as(z[real][:, 1]))
    assert z[real][0, 1].abs().sum() > 0


@pytest.mark.parametrize(
    "spec, err, msg",
    [
        ("9.0", UnknownName, "unknown head '9.0'"),
        ("1.7", UnknownName, "unknown head"),
        ("1-2", BadInput, "bad head"),
        ("", BadInput, "no heads"),
    ],
)
def test_head_ablation_bad_heads(tiny_model, spec, err, msg):
    with pytest.raises(err, match=msg):
        get("head_ablation", heads=spec).hooks(tiny_model)


def test_comma_zeroing_and_its_random_control(tiny_model):
    pairs = get("comma_zeroing", layers="1").hooks(tiny_model)
    act, ids, mask = seen(tiny_model, "blocks.1.hook_resid_post", pairs=pairs)
    plain, _, _ = seen(tiny_model, "blocks.1.hook_resid_post")
    commas = torch.isin(ids, torch.tensor(sorted(comma_ids(tiny_model)))) & mask.bool()
    assert commas.sum() == 2
    zeroed = act.abs().sum(-1) == 0
    assert torch.equal(zeroed, commas)
    ctrl = get("comma_zeroing", layers="1", control=True).hooks(tiny_model)
    act_c, _, _ = seen(tiny_model, "blocks.1.hook_resid_post", pairs=ctrl)
    zc = act_c.abs().sum(-1) == 0
    assert torch.equal(zc.sum(1), commas.sum(1))  # same count per text
    assert not (zc & commas).any()
    assert not zc[:, 0].any()
    again, _, _ = seen(tiny_model, "blocks.1.hook_resid_post", pairs=ctrl)
    assert torch.equal(again, act_c)  # seeded: the same positions each run
    mean = get("comma_zeroing", layers="1", mode="mean").hooks(tiny_model, mean_texts=TEXTS)
    act_m, _, _ = seen(tiny_model, "blocks.1.hook_resid_post", pairs=mean)
    assert torch.allclose(act_m[commas][0], act_m[commas][1])
    assert not torch.equal(act_m[~commas], torch.zeros_like(act_m[~commas]))
    assert torch.equal(act_m[~commas], plain[~commas])


def test_activation_patch_copies_the_last_position(tiny_model):
    src = "a different source text"
    pairs = get("activation_patch", layers="2").hooks(tiny_model, source_texts=[src])
    act, _, mask = seen(tiny_model, "blocks.2.hook_resid_post", pairs=pairs)
    want = capture(tiny_model, [src], ["blocks.2.hook_resid_post"], "last")[0, 0]
    last = mask.sum(1) - 1
    for r in range(len(TEXTS)):
        np.testing.assert_allclose(act[r, last[r]].numpy(), want, atol=1e-5)
    # per-text sources are matched by tokens, whatever the batch order
    sources = ["one source", "another source", "third"]
    pairs = get("activation_patch", layers="2").hooks(tiny_model, source_texts=sources, texts=TEXTS)
    act, _, _ = seen(tiny_model, "blocks.2.hook_resid_post", texts=TEXTS[::-1], pairs=pairs)
    want = capture(tiny_model, sources, ["blocks.2.hook_resid_post"], "last")[:, 0]
    rev = TEXTS[::-1]
    lengths = [len(tiny_model.tokenizer(t)["input_ids"]) for t in rev]
    for r, t in enumerate(rev):
        np.testing.assert_allclose(act[r, lengths[r] - 1].numpy(), want[TEXTS.index(t)], atol=1e-5)
    with pytest.raises(BadInput, match="negative offsets"):
        get("activation_patch", positions="3").hooks(tiny_model, source_texts=[src])


def test_enhance_factor_zero_equals_zero_ablation_and_one_is_identity(tiny_model):
    base = last_logits(tiny_model, TEXTS)
    one = get("enhance", heads="1.2", factor=1.0).hooks(tiny_model)
    np.testing.assert_allclose(last_logits(tiny_model, TEXTS, one), base, atol=1e-6)
    zero = get("enhance", heads="1.2", factor=0.0).hooks(tiny_model)
    abl = get("head_ablation", heads="1.2").hooks(tiny_model)
    np.testing.assert_allclose(
        last_logits(tiny_model, TEXTS, zero), last_logits(tiny_model, TEXTS, abl), atol=1e-5
    )
    pairs = get("enhance", neurons="2.5", factor=3.0).hooks(tiny_model)
    act, _, mask = seen(tiny_model, "blocks.2.mlp.hook_post", pairs=pairs)
    plain, _, _ = seen(tiny_model, "blocks.2.mlp.hook_post")
    real = mask.bool()
    torch.testing.assert_close(act[real][:, 5], 3 * plain[real][:, 5])
    torch.testing.assert_close(act[~real], plain[~real])
    torch.testing.assert_close(act[..., 4], plain[..., 4])
    with pytest.raises(BadInput, match="needs"):
        get("enhance").hooks(tiny_model)
    with pytest.raises(UnknownName, match="unknown neuron"):
        get("enhance", neurons="2.999").hooks(tiny_model)
