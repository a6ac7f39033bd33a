"""Head and neuron maps on the tiny Llama: exactness of the batched ablation, agreement of
attribution patching with it, and the command's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emolab.steps import heads


@pytest.fixture
def setup(tiny_session):
    p = {**heads.DEFAULTS, "emotion": "joy", "layer": 3, "n_texts": 4}
    return heads.prepare(tiny_session, p)


def test_batched_head_ablation_equals_one_forward_per_head(setup):
    from emolab.progress import Progress

    ref = setup.reference("attn.hook_z")
    clean = setup.clean()
    batched = heads.head_ablation(setup, ref, clean, Progress(), layers=[1])
    ref_t = torch.tensor(ref)
    for h in range(setup.model.n_heads):

        def patch(z, ctx, h=h):
            z = z.clone()
            z[:, 1:, h] = ref_t[1, h]
            return z

        with torch.no_grad():
            vals = [
                setup.forward(i, m, [("blocks.1.attn.hook_z", patch)])
                for i, m in setup.batches(setup.texts)
            ]
        assert batched[1, h] == pytest.approx(clean - float(torch.cat(vals).mean()), abs=1e-5)
    assert np.isnan(batched[0]).all()  # layers not asked for stay unmeasured


def test_attribution_ranks_heads_like_exact_ablation(setup):
    """On the small random model the first-order estimate orders heads as the exact effect."""
    from emolab.progress import Progress

    clean = setup.clean()
    ref = setup.reference("attn.hook_z")
    attr = heads.attribution(setup, "attn.hook_z", ref)
    abl = heads.head_ablation(setup, ref, clean, Progress())
    assert attr.shape == abl.shape == (4, 4)
    assert np.isfinite(attr).all()
    assert heads.spearman(attr.ravel(), abl.ravel()) > 0.8
    sign_agree = np.mean(np.sign(attr) == np.sign(abl))
    assert sign_agree > 0.8


def test_attribution_gradient_matches_finite_difference(setup):
    """d metric / d z from the backward pass equals a finite difference of the forward."""
    ids, mask = next(setup.batches(setup.texts))
    views = {}

    def grab(z, ctx):
        views["z"] = z
        return z

    metric = setup.forward(ids, mask, [("blocks.2.attn.hook_z", grab)]).sum()
    (g,) = torch.autograd.grad(metric, [views["z"]])
    torch.manual_seed(0)  # a fixed nudge: the check must not depend on earlier tests
    direction = torch.randn_like(g) * mask[:, :, None, None]
    eps = 1e-3

    def nudge(z, ctx):
        return z + eps * direction

    with torch.no_grad():
        up = setup.forward(ids, mask, [("blocks.2.attn.hook_z", nudge)]).sum()
        base = setup.forward(ids, mask).sum()
    assert float((up - base) / eps) == pytest.approx(
        float((g * direction).sum()), rel=0.05, abs=1e-4
    )


def test_heads_step_compare_and_flags(tiny_session):
    res = heads.run(tiny_session, {"emotion": "joy", "compare": True, "layer": 2, "n_texts": 4})
    attr = np.array(res["maps"]["attribution"]["matrix"], dtype=float)
    abl = np.array(res["maps"]["ablation"]["matrix"], dtype=float)
    assert np.isnan(attr[3]).all() and np.isnan(abl[3]).all()  # above the readout layer
    assert np.isfinite(attr[:3]).all() and np.isfinite(abl[:3]).all()
    assert res["compare"]["n_heads"] == 12
    assert -1 <= res["compare"]["spearman_all"] <= 1
    att = res["attention"]
    mass = np.array(att["mass"])
    assert mass.shape == (4, 4) and ((mass >= 0) & (mass <= 1 + 1e-9)).all()
    step = tiny_session.steps()[-1]
    assert step["kind"] == "heads" and "spearman_all" in step["metrics"]
    csv = tiny_session.artifact(step["outputs"][0].split("/", 1)[1]).read_text()
    assert csv.startswith("layer,h0,h1,h2,h3")


def test_heads_label_logit_and_neurons(tiny_session):
    res = heads.run(
        tiny_session,
        {"emotion": "anger", "metric": "label_logit", "neurons": True, "n_texts": 3, "top_k": 5},
    )
    mat = np.array(res["maps"]["attribution"]["matrix"], dtype=float)
    assert np.isfinite(mat).all()  # every layer feeds the logits
    top = res["neurons"]["top"]
    assert len(top) == 5 and all(np.isfinite(t["exact"]) for t in top)
    assert res["neurons"]["shape"] == [4, 128]
    # the first-order estimate tracks the exact single-neuron effect
    assert res["neurons"]["spearman_top_exact"] > 0.5


def test_summary_attention_counts_only_texts_with_punctuation(tiny_model):
    """With zero thresholds every head is flagged; a text without punctuation is skipped."""
    res = heads.attention_flags(tiny_model, ["one, two, three and four"], 0.0, 0.0)
    assert res["texts_with_summary_tokens"] == 1
    assert len(res["flagged"]) == tiny_model.n_layers * tiny_model.n_heads
    none = heads.attention_flags(tiny_model, ["no punctuation here at all"], 0.0, 0.0)
    assert none["texts_with_summary_tokens"] == 0 and none["flagged"] == []


def test_cli_heads_json_and_table(run_cli, tiny_session):
    r = run_cli("heads", tiny_session.path, "--emotion", "joy", "--texts", "2", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["emotion"] == "joy" and "attribution" in out["maps"]
    r = run_cli(
        "heads", tiny_session.path, "--emotion", "joy", "--texts", "2", "--compare", "--layer", "1"
    )
    assert r.exit_code == 0, r.output
    assert "Spearman attribution vs ablation" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--emotion", "glee"], "unknown emotion 'glee'"),
        (["--emotion", "joy", "--layer", "7"], "layer 7 out of range"),
        (["--emotion", "joy", "--texts", "0"], "must be at least 1"),
    ],
)
def test_cli_heads_bad_input(run_cli, tiny_session, args, message):
    r = run_cli("heads", tiny_session.path, *args)
    assert r.exit_code == 2
    assert message in r.output


def test_steer_circuit_enhances_the_top_heads(run_cli, tiny_session):
    from emolab.steps import steer

    r = run_cli("steer", tiny_session.path, "--emotion", "joy", "--circuit", "2")
    assert r.exit_code == 2 and "no head map for 'joy'" in r.output
    res = heads.run(tiny_session, {"emotion": "joy", "compare": True, "layer": 3, "n_texts": 3})
    out = steer.run(
        tiny_session,
        {
            "emotion": "joy",
            "circuit": 2,
            "circuit_factor": 3.0,
            "prompts": ["Describe the room."],
            "max_new_tokens": 4,
        },
    )
    units = out["circuit_units"]
    abl = np.array(res["maps"]["ablation"]["matrix"], dtype=float)
    best = np.argsort(-np.nan_to_num(abl, nan=-np.inf).ravel())[:2]
    want = ",".join(f"{i // 4}.{i % 4}" for i in best if abl.ravel()[i] > 0)
    assert units["map"] == "ablation" and units["heads"] == want
    step = tiny_session.steps()[-1]
    assert step["kind"] == "steer" and "interventions:enhance" in step["plugins"]
    r = run_cli("steer", tiny_session.path, "--emotion", "joy", "--circuit", "0")
    assert r.exit_code == 2 and "'circuit' must be at least 1" in r.output


def test_verify_ablates_only_the_top_attribution_heads_exactly(tiny_session):
    res = heads.run(
        tiny_session, {"emotion": "joy", "compare": True, "layer": 3, "n_texts": 3, "verify": 4}
    )
    v = res["verify"]
    attr = np.array(res["maps"]["attribution"]["matrix"], dtype=float)
    abl = np.array(res["maps"]["ablation"]["matrix"], dtype=float)
    units = [(u["layer"], u["unit"]) for u in v["heads"]]
    assert len(units) == 4
    # the four largest |attribution| heads, in order
    flat = np.nan_to_num(np.abs(attr), nan=-1).ravel()
    want = [tuple(int(x) for x in np.unravel_index(i, attr.shape)) for i in np.argsort(-flat)[:4]]
    assert units == want
    # their exact effects equal the full exact map's
    np.testing.assert_allclose(v["exact"], [abl[L, h] for L, h in units], rtol=1e-5, atol=1e-6)
    assert -1 <= v["spearman"] <= 1 and 0 <= v["sign_agreement"] <= 1
    assert "verify_spearman" in tiny_session.steps()[-1]["metrics"]


def test_cli_verify_table_and_bad_value(run_cli, tiny_session):
    r = run_cli("heads", tiny_session.path, "--emotion", "joy", "--verify", "3", "--texts", "2")
    assert r.exit_code == 0, r.output
    assert "checked by exact ablation" in r.output and "Spearman on these heads" in r.output
    r = run_cli("heads", tiny_session.path, "--emotion", "joy", "--verify", "-1")
    assert r.exit_code == 2 and "'verify' must be at least 0" in r.output
    r = run_cli(
        "heads", tiny_session.path, "--emotion", "joy", "--method", "ablation", "--verify", "2"
    )
    assert r.exit_code == 2 and "use it with --method attribution" in r.output
