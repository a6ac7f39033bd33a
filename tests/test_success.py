"""Success rate (top label = target AND surgical), prompt halves, the dev-chosen cell."""

import numpy as np
import pytest

from emolab.steps import success as sx


def test_prompt_halves_interleave_and_cover_every_prompt():
    h = sx.prompt_halves(5)
    assert h == {"dev": [0, 2, 4], "test": [1, 3]}
    assert sorted(h["dev"] + h["test"]) == list(range(5))


def test_success_needs_the_target_and_a_surgical_text():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    regimes = ["surgical", "repetitive", "surgical", "surgical"]
    flags = sx.success_flags(probs, 0, regimes)
    assert flags.tolist() == [True, False, False, True]
    assert sx.success_flags(probs, 0, None).tolist() == [True, True, False, True]
    assert sx.rate(flags, [0, 1]) == 0.5 and np.isnan(sx.rate(flags, []))


def test_random_like_keeps_each_layer_norm():
    v = np.array([[3.0, 4.0, 0.0], [np.nan, np.nan, np.nan], [0.0, 0.0, 2.0]], dtype=np.float32)
    r = sx.random_like(v)
    assert np.linalg.norm(r[0]) == pytest.approx(5.0, rel=1e-5)
    assert np.linalg.norm(r[2]) == pytest.approx(2.0, rel=1e-5)
    assert np.isnan(r[1]).all()
    assert abs(r[0] @ v[0]) / 25 < 0.999  # not the same direction
    np.testing.assert_array_equal(r, sx.random_like(v))  # seeded


def test_best_on_dev_never_reads_test_columns():
    cells = [
        {"emotion": "joy", "success_dev": 0.5, "p_target_dev": 0.6, "perplexity_ratio": 1.5,
         "success_test": 0.0},
        {"emotion": "joy", "success_dev": 0.2, "p_target_dev": 0.9, "perplexity_ratio": 1.1,
         "success_test": 1.0},
        {"emotion": "joy", "success_dev": 0.5, "p_target_dev": 0.7, "perplexity_ratio": 2.0,
         "success_test": 0.1},
    ]  # fmt: skip
    best = sx.best_on_dev(cells)["joy"]
    assert best is cells[2]  # ties on dev success broken by dev P(target), never by test
    head = sx.headline({"joy": {**best, "success_baseline_test": 0.0, "success_random_test": 0.0}})
    assert head["success_test"] == pytest.approx(0.1)


def test_dev_ties_go_to_a_cell_that_keeps_its_dev_texts_surgical():
    # the 60-prompt sweep's case: two cells tie on dev success, the one with the higher dev
    # P(target) broke most of its dev texts; the one that kept them surgical is chosen
    cells = [
        {"emotion": "sadness", "success_dev": 0.47, "surgical_dev": 0.47, "p_target_dev": 0.9,
         "perplexity_ratio": 3.2},
        {"emotion": "sadness", "success_dev": 0.47, "surgical_dev": 0.9, "p_target_dev": 0.6,
         "perplexity_ratio": 1.9},
    ]  # fmt: skip
    assert sx.best_on_dev(cells)["sadness"] is cells[1]
    # the bar is the sweep's min_surgical_share: at 0.4 both cells pass it, P(target) decides
    assert sx.best_on_dev(cells, min_share=0.4)["sadness"] is cells[0]
    # among cells above the bar the stronger push still wins, not the more timid one
    both = [{**cells[0], "surgical_dev": 0.6}, cells[1]]
    assert sx.best_on_dev(both)["sadness"] is both[0]
    # cells from before the column keep the old order (dev P(target) decides)
    old = [{k: v for k, v in c.items() if k != "surgical_dev"} for c in cells]
    assert sx.best_on_dev(old)["sadness"] is old[0]
    # dev success still comes first: a surgical cell with less of it loses
    worse = {**cells[1], "success_dev": 0.4, "surgical_dev": 1.0}
    assert sx.best_on_dev([cells[0], worse])["sadness"] is cells[0]


def test_surgical_shares_per_half():
    halves = sx.prompt_halves(4)  # dev 0, 2; test 1, 3
    regimes = ["surgical", "explosive", "repetitive", "surgical"]
    assert sx.surgical_shares(regimes, halves) == {"surgical_dev": 0.5, "surgical_test": 0.5}
    assert sx.surgical_shares(["surgical"] * 3 + ["explosive"], halves)["surgical_test"] == 0.5
    assert all(np.isnan(v) for v in sx.surgical_shares(None, halves).values())
