"""Head and neuron maps on the tiny Llama: exactness of the batched ablation, agreement of
attribution patching with it, and the command's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emolab.steps import head_maps as hm
from emolab.steps import heads
from emolab.steps.head_attention import attention_flags


@pytest.fixture
def setup(tiny_session):
    p = {**heads.DEFAULTS, "emotion": "joy", "layer": 3, "n_texts": 4}
    return heads.prepare(tiny_session, p)


def test_batched_head_ablation_equals_one_forward_per_head(setup):
    from emolab.progress import Progress

    ref = setup.reference("attn.hook_z")
    clean = setup.clean()
    batched = hm.head_ablation(setup, ref, clean, Progress(), layers=[1])
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
    attr = hm.attribution(setup, "attn.hook_z", ref)
    abl = hm.head_ablation(setup, ref, clean, Progress())
    assert attr.shape == abl.shape == (4, 4)
    assert np.isfinite(attr).all()
    assert hm.spearman(attr.ravel(), abl.ravel()) > 0.8
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
    for method in ("attribution", "checked"):
        assert res["compare"][method]["n_heads"] == 12
        assert -1 <= res["compare"][method]["spearman_all"] <= 1
    checked = np.array(res["maps"]["checked"]["matrix"], dtype=float)
    assert np.isnan(checked[3]).all() and np.isfinite(checked[:3]).all()
    att = res["attention"]
    mass = np.array(att["mass"])
    assert mass.shape == (4, 4) and ((mass >= 0) & (mass <= 1 + 1e-9)).all()
    step = tiny_session.steps()[-1]
    assert step["kind"] == "heads" and "spearman_all" in step["metrics"]
    assert "checked/spearman_top" in step["metrics"]
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
    res = attention_flags(tiny_model, ["one, two, three and four"], 0.0, 0.0)
    assert res["texts_with_summary_tokens"] == 1
    assert len(res["flagged"]) == tiny_model.n_layers * tiny_model.n_heads
    none = attention_flags(tiny_model, ["no punctuation here at all"], 0.0, 0.0)
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


def test_exact_effects_batched_across_layers_equal_one_forward_per_unit(setup):
    """Units of different layers share a pass (copy j patches unit j), in chunks: each
    effect equals the one-unit forward, for ablation and for enhancement."""
    clean = setup.clean()
    ref = setup.reference("attn.hook_z")
    ref_t = torch.tensor(ref)
    units = [(0, 1), (2, 3), (1, 0), (2, 0), (3, 2)]
    ablated = hm.exact_effects(setup, "attn.hook_z", units, clean, ref=ref, copies=2)
    scaled = hm.exact_effects(setup, "attn.hook_z", units, clean, factor=3.0, copies=3)
    for i, (L, h) in enumerate(units):
        for kind, want in (("ablate", ablated[i]), ("enhance", scaled[i])):

            def patch(z, ctx, L=L, h=h, kind=kind):
                z = z.clone()
                if kind == "ablate":
                    z[:, 1:, h] = ref_t[L, h]
                else:
                    z[:, :, h] = 3.0 * z[:, :, h]
                return z

            with torch.no_grad():
                vals = torch.cat(
                    [
                        setup.forward(i_, m, [(f"blocks.{L}.attn.hook_z", patch)])
                        for i_, m in setup.batches(setup.texts)
                    ]
                )
            got = clean - float(vals.mean()) if kind == "ablate" else float(vals.mean()) - clean
            assert want == pytest.approx(got, abs=1e-5), (L, h, kind)


def test_checked_map_is_exact_where_checked_and_everywhere_with_every_head(setup):
    """The checked method's map equals the exact map on the heads it checks, attribution
    elsewhere; with as many checks as heads it is the exact map."""
    from emolab.progress import Progress

    clean = setup.clean()
    ref = setup.reference("attn.hook_z")
    exact = hm.head_ablation(setup, ref, clean, Progress())
    attr = hm.attribution(setup, "attn.hook_z", ref)
    full, units = hm.checked_attribution(setup, ref, clean, 16)
    assert len(units) == 16 == len(set(units))
    np.testing.assert_allclose(full, exact, rtol=1e-5, atol=1e-6)
    part, units = hm.checked_attribution(setup, ref, clean, 3)
    assert len(units) == 3
    done = np.zeros(exact.shape, dtype=bool)
    for L, h in units:
        done[L, h] = True
    np.testing.assert_allclose(part[done], exact[done], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(part[~done], attr[~done], rtol=1e-6, atol=1e-8)
    clean_side, patched_side = hm.two_sided_attribution(setup, ref)
    np.testing.assert_allclose(clean_side, attr, rtol=1e-5, atol=1e-7)
    assert units == hm.check_order(attr, patched_side)[:3]


def test_check_order_puts_disagreeing_estimates_first():
    """A head whose clean-side and patched-side estimates disagree is checked before one
    with a slightly larger but consistent estimate; NaN heads (above the readout) never."""
    attr = np.array([[1.0, 0.9, 0.1], [np.nan, np.nan, np.nan]])
    patched = np.array([[1.0, -0.5, 0.1], [np.nan, np.nan, np.nan]])
    assert hm.check_order(attr, patched) == [(0, 1), (0, 0), (0, 2)]


def test_enhancement_slope_is_the_small_factor_limit_of_exact_enhancement(setup):
    """Scaling a unit by 1 + eps moves the metric by eps x the slope from the backward
    pass, for heads and for MLP neurons."""
    clean = setup.clean()
    eps = 1e-3
    for point, units in (("attn.hook_z", [(0, 1), (2, 3)]), ("mlp.hook_post", [(1, 5), (3, 7)])):
        ref = setup.reference(point)
        _, slope = hm.linear_effects(setup, point, ref)
        exact = hm.exact_effects(setup, point, units, clean, factor=1 + eps)
        for (L, u), e in zip(units, exact, strict=True):
            assert e / eps == pytest.approx(slope[L, u], rel=0.05, abs=1e-3), (point, L, u)


def test_heads_checked_method_enhance_and_neurons(tiny_session):
    res = heads.run(
        tiny_session,
        {
            "emotion": "joy",
            "method": "checked",
            "checks": 5,
            "layer": 3,
            "n_texts": 3,
            "top_k": 4,
            "enhance": 2.0,
            "neurons": True,
        },
    )
    m = res["maps"]["checked"]
    assert len(m["checked"]) == 5 and list(res["maps"]) == ["checked"]
    for e in (res["enhance"], res["neurons"]["enhance"]):
        assert e["factor"] == 2.0 and len(e["top"]) == 4
        assert all(np.isfinite(t["exact"]) and np.isfinite(t["effect"]) for t in e["top"])
    assert np.array(res["enhance"]["estimate"]).shape == (4, 4)
    step = tiny_session.steps()[-1]
    assert step["params"]["checks"] == 5 and "enhance/top_effect" in step["metrics"]
    arrays, _ = tiny_session.load_arrays(
        next(o for o in step["outputs"] if o.endswith(".safetensors")).split("/", 1)[1]
    )
    assert set(arrays) == {"attribution", "enhancement"}


def test_cli_heads_checked_and_enhance_tables(run_cli, tiny_session):
    r = run_cli(
        "heads",
        tiny_session.path,
        "--emotion",
        "joy",
        "--texts",
        "2",
        "--method",
        "checked",
        "--checks",
        "2",
        "--enhance",
        "2",
    )
    assert r.exit_code == 0, r.output
    assert "2 heads checked by exact ablation" in r.output
    assert "top heads by enhancement x2" in r.output
    assert "all together" in r.output and "of that gap" in r.output
    r = run_cli("heads", tiny_session.path, "--emotion", "joy", "--checks", "0")
    assert r.exit_code == 2 and "'checks' must be at least 1" in r.output


def test_circuit_readout_one_head_through_enhance_equals_exact_enhancement(setup):
    """The circuit check scales heads through the registered `enhance` intervention; for a
    one-head circuit that equals the exact single-head enhancement on the same texts."""
    from emolab.progress import Progress

    clean = setup.clean()
    ref = setup.reference("attn.hook_z")
    maps = {"ablation": hm.head_ablation(setup, ref, clean, Progress())}
    one = heads.circuit_readout(setup, maps, clean, 3.0, 1)
    assert one["map"] == "ablation" and len(one["per_unit"]) == 1
    assert one["joint"] == pytest.approx(one["per_unit"][0]["exact"], abs=1e-5)
    assert one["gap"] == pytest.approx(clean - setup.on(setup.ref_texts).clean(), abs=1e-6)
    three = heads.circuit_readout(setup, maps, clean, 3.0, 3)
    best = np.argsort(-np.nan_to_num(maps["ablation"], nan=-np.inf).ravel())[:3]
    flat = maps["ablation"].ravel()
    assert three["units"] == ",".join(f"{i // 4}.{i % 4}" for i in best if flat[i] > 0)


def test_neuron_circuit_readout_one_neuron_equals_exact_enhancement(setup):
    """The neuron circuit of `heads --neurons --enhance` scales neurons through `enhance`
    too: one neuron together equals that neuron alone, and the k picked are the map's
    largest positive effects."""
    ref = setup.reference(hm.NEURONS)
    mat = hm.attribution(setup, hm.NEURONS, ref)
    clean = setup.clean()
    one = heads.circuit_readout(setup, {"attribution": mat}, clean, 3.0, 1, hm.NEURONS)
    assert one["kind"] == "neurons" and len(one["per_unit"]) == 1
    assert one["joint"] == pytest.approx(one["per_unit"][0]["exact"], abs=1e-5)
    L, n = np.unravel_index(int(np.nanargmax(mat)), mat.shape)
    assert one["units"] == f"{L}.{n}"
