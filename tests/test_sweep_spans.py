"""The sweep grids over layer spans (alpha split over L..L+span-1) and compares vector
sources (several methods or vector files) by success on the dev prompts."""

import csv
import io
import json

import numpy as np
import pytest

from emolab import plugins
from emolab.errors import BadInput
from emolab.steps import extract, steer, sweep
from emolab.steps.common import new_session


def small(**kw):
    return {
        "emotions": ["joy"],
        "layers": [1],
        "alphas": [0.5, 2.0],
        "prompts": ["Tell me about your day.", "Describe the weather."],
        "max_new_tokens": 4,
        "judge_train_limit": 300,
        **kw,
    }


def test_split_spread_pushes_as_hard_in_total_as_one_layer(tiny_model):
    vec = np.random.default_rng(0).standard_normal((4, tiny_model.d_model)).astype(np.float32)
    norms = np.array([1.0, 2.0, 3.0, 4.0])
    ranged = plugins.get(
        "interventions", "residual_add", layer=1, to_layer=3, alpha=0.6, spread="split"
    )
    hooks = ranged.hooks(tiny_model, vector=vec, norms=norms)
    assert [h for h, _ in hooks] == [f"blocks.{L}.hook_resid_post" for L in (1, 2, 3)]
    import torch

    h = torch.zeros(1, 2, tiny_model.d_model)
    from emolab.api import HookContext

    for (name, fn), layer in zip(hooks, (1, 2, 3)):
        delta = fn(h, HookContext(name))[0, 0].numpy()
        # each layer adds its own direction, with alpha / 3 of its own mean norm
        want = 0.2 * norms[layer] * vec[layer] / np.linalg.norm(vec[layer])
        np.testing.assert_allclose(delta, want, rtol=1e-5, atol=1e-6)
    each = plugins.get("interventions", "residual_add", layer=1, to_layer=3, alpha=0.6)
    first = each.hooks(tiny_model, vector=vec, norms=norms)[0][1](h, HookContext("x"))[0, 0]
    assert float(first.norm()) == pytest.approx(0.6 * norms[1], rel=1e-5)


def test_sweep_grids_spans_and_the_dev_choice_carries_to_steer(tiny_session, small_judge):
    res = sweep.run(tiny_session, small(spans=[1, 2]))
    cells = [(r["layer"], r["span"], r["alpha"]) for r in res["rows"]]
    assert cells == [(1, 1, 0.5), (1, 1, 2.0), (1, 2, 0.5), (1, 2, 2.0)]
    rows = list(csv.DictReader(open(res["csv"])))
    assert [r["span"] for r in rows] == ["1", "1", "2", "2"]
    texts = [json.loads(x) for x in open(res["csv"].replace(".csv", "-texts.jsonl"))]
    assert [t["span"] for t in texts] == [1, 1, 2, 2]
    one, two = res["rows"][1], res["rows"][3]  # alpha 2 alone vs split over layers 1-2
    assert texts[1]["steered"] != texts[3]["steered"] or one["p_target"] != two["p_target"]
    # the dev prompts choose among every span, like among layers and alphas
    best = res["best"]["joy"]
    assert best["success_dev"] == max(r["success_dev"] for r in res["rows"])
    # a grid of span 2 only: its best cell is a span, logged and taken by steer's default
    only = sweep.run(tiny_session, small(spans=[2]))
    assert only["computed"] == 0  # the span-2 cells came from the shared cache
    choices = tiny_session.steps()[-1]["choices"]
    assert choices["best_span/joy"] == {"value": 2, "chosen_on": "dev prompts"}
    out = steer.run(tiny_session, {"emotion": "joy", "max_new_tokens": 3, "prompts": ["Hi."]})
    assert out["params"]["span"] == 2 and out["choices"]["span"]["chosen_on"].startswith("sweep")
    given = steer.run(
        tiny_session, {"emotion": "joy", "layer": 1, "max_new_tokens": 3, "prompts": ["Hi."]}
    )
    assert given["params"]["span"] == 1  # a given layer is steered alone


def test_span_errors_are_one_line(tiny_session):
    with pytest.raises(BadInput, match="span 3 from layer 2 runs past the last layer"):
        sweep.run(tiny_session, small(layers=[2], spans=[3]))
    with pytest.raises(BadInput, match="cannot steer a layer range"):
        sweep.run(tiny_session, small(spans=[2], intervention="directional_ablation"))
    with pytest.raises(BadInput, match="span list is empty"):
        sweep.run(tiny_session, small(spans=[]))
    with pytest.raises(BadInput, match="runs past the last layer"):
        steer.run(tiny_session, {"emotion": "joy", "layer": 3, "span": 2, "prompts": ["Hi."]})


def test_sweep_files_from_before_spans_still_resume(tiny_session, small_judge):
    first = sweep.run(tiny_session, small())
    # the resume cache is sweep-<10-hex key>.csv; the step's own table is sweep-<seq>.csv
    (path,) = [p for p in tiny_session.path.glob("artifacts/sweep-*.csv") if len(p.stem) == 16]
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    old = [c for c in rows[0] if c not in ("span", "source")]  # the columns before spans
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=old, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue())
    again = sweep.run(tiny_session, small())
    assert again["computed"] == 0 and again["rows"] == first["rows"]


def test_sweep_cells_from_before_per_half_regimes_are_computed_again(tiny_session, small_judge):
    first = sweep.run(tiny_session, small())
    (path,) = [p for p in tiny_session.path.glob("artifacts/sweep-*.csv") if len(p.stem) == 16]
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    old = [c for c in rows[0] if c not in ("surgical_dev", "surgical_test")]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=old, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue())
    # the dev choice breaks ties on surgical_dev, so a cache without it cannot serve it
    again = sweep.run(tiny_session, small())
    assert again["computed"] == len(first["rows"]) and again["rows"] == first["rows"]


@pytest.fixture
def two_methods(tmp_path):
    s = new_session(tmp_path / "two", "tiny-llama")
    extract.run(
        s, {"limit": 6, "test_limit": 4, "emotions": ["joy"], "methods": ["mean_diff", "pca"]}
    )
    return s


def test_sweep_compares_sources_on_dev(two_methods, small_judge, tmp_path):
    s = two_methods
    res = sweep.run(s, small(method=["mean_diff", "pca"]))
    assert [src["source"] for src in res["sources"]] == ["mean_diff", "pca"]
    assert {r["source"] for r in res["rows"]} == {"mean_diff", "pca"}
    dev = {src["source"]: src["success_dev"] for src in res["sources"]}
    p_dev = {src["source"]: src["p_target_dev"] for src in res["sources"]}
    want = max(["mean_diff", "pca"], key=lambda m: (dev[m], p_dev[m], m == "mean_diff"))
    assert res["winner"] == want
    ev = s.steps()[-1]
    assert ev["choices"]["best_source"] == {"value": want, "chosen_on": "dev prompts"}
    assert "best_cell/pca/joy" in ev["choices"] and "best_cell/mean_diff/joy" in ev["choices"]
    assert ev["choices"]["best_cell/joy"] == ev["choices"][f"best_cell/{want}/joy"]
    table = list(csv.DictReader(open(res["csv"])))
    assert [r["source"] for r in table] == ["mean_diff"] * 2 + ["pca"] * 2
    # each source keeps its own resume cache: the single-source sweep computes nothing
    alone = sweep.run(s, small(method="pca"))
    assert alone["computed"] == 0 and alone["winner"] is None
    assert [r["p_target"] for r in alone["rows"]] == [
        r["p_target"] for r in res["rows"] if r["source"] == "pca"
    ]
    # two sessions' vector files compare the same way (the files are the sources)
    files = [str(s.vectors_path("mean_diff")), str(s.vectors_path("pca"))]
    by_file = sweep.run(s, small(vector_file=files))
    assert by_file["winner"] == files[["mean_diff", "pca"].index(want)]
    assert [r["p_target"] for r in by_file["rows"]] == [r["p_target"] for r in res["rows"]]
    assert {"vector_file_1", "vector_file_2"} <= set(s.steps()[-1]["inputs"])
    with pytest.raises(BadInput, match="names a source twice"):
        sweep.run(s, small(method=["pca", "pca"]))


def test_cli_spans_and_sources(run_cli, two_methods, small_judge, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("Tell me about your day.\nDescribe the weather.\n")
    r = run_cli(
        "sweep", two_methods.path, "--emotions", "joy", "--layers", "1", "--alphas", "0.5",
        "--spans", "1,2", "--method", "mean_diff,pca", "--prompts", prompts,
        "--max-new-tokens", "4", "--judge-train-limit", "300",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "wins on dev:" in r.output and "1-2" in r.output
    r = run_cli("sweep", two_methods.path, "--spans", "1.5")
    assert r.exit_code == 2 and "whole numbers" in r.output
