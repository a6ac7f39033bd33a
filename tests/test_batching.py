"""Cells batched into one generate (per-row vectors and alphas) equal one cell at a time."""

import numpy as np
import pytest

from emolab import plugins
from emolab.runner import generate, generate_cells, last_logits, last_logits_cells

PROMPTS = ["Tell me about your day.", "Describe the weather today in two words.", "Hi."]


def cell_hooks(model, seed_alpha_layer):
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((3, model.n_layers, model.d_model)).astype(np.float32)
    norms = np.full(model.n_layers, 4.0)
    out = []
    for emo, alpha, layer in seed_alpha_layer:
        inter = plugins.get("interventions", "residual_add", layer=layer, alpha=alpha)
        out.append(inter.hooks(model, vector=vecs[emo], norms=norms))
    return out


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_generate_cells_equals_one_cell_at_a_time(name):
    from emolab.plugins import load_model as load

    model = load(name)
    grid = [(0, 0.5, 1), (1, 1.5, 1), (2, 3.0, 1), (0, 2.0, 2), (1, 0.0, 3)]
    cells = cell_hooks(model, grid)
    cells.append(plugins.get("interventions", "enhance", heads="1.0,2.3", factor=4.0).hooks(model))
    cells.append([])  # an unsteered cell among steered ones
    for batch_size in (2, 8):  # prompt batches of 2 + 1 (uneven padding) and of all three
        one = [generate(model, PROMPTS, h, 12, batch_size) for h in cells]
        batched = generate_cells(model, PROMPTS, cells, 12, batch_size)
        assert batched == one
    assert len({tuple(t) for t in one}) >= 5  # the cells really differ from each other
    lists = [p + " Answer:" for p in PROMPTS]
    alone = [last_logits(model, lists, h, batch_size=2) for h in cells]
    together = last_logits_cells(model, lists, cells, batch_size=2)
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b)


def sweep_params(**kw):
    return {
        "emotions": ["joy", "anger"],
        "layers": [1, 2],
        "alphas": [0.3, 2.0],
        "prompts": ["Tell me about your day.", "Describe the weather.", "Hi there."],
        "max_new_tokens": 5,
        "batch_size": 2,
        "judge_train_limit": 300,
        **kw,
    }


def session_copy(src, dst):
    import shutil

    from emolab.session import Session

    shutil.copytree(src, dst)
    return Session.open(dst)


def artifacts(session, res):
    csv_path = res["csv"]
    texts = csv_path.replace(".csv", "-texts.jsonl")
    return open(csv_path).read(), open(texts).read()


def test_batched_sweep_writes_what_a_serial_sweep_writes(tiny_session_dir, tmp_path, small_judge):
    from emolab.engine import Batched, Serial
    from emolab.steps import sweep

    a = session_copy(tiny_session_dir, tmp_path / "a")
    b = session_copy(tiny_session_dir, tmp_path / "b")
    serial = sweep.run(a, sweep_params(), engine=Serial())
    batched = sweep.run(b, sweep_params(), engine=Batched(max_cells=3))
    assert serial["computed"] == batched["computed"] == 8
    assert batched["rows"] == serial["rows"]
    assert artifacts(b, batched) == artifacts(a, serial)
    assert [e["engine"]["engine"] for e in b.steps()[-1:]] == ["batched"]


def test_token_logprobs_batched_equal_one_text_at_a_time(tiny_model):
    from emolab.runner import chat, token_logprobs

    ctx = [chat(tiny_model, "Tell me about your day."), chat(tiny_model, "Hi."), "", "x"]
    texts = ["It was fine, thanks for asking.", "Hello!", "Just a text", "  "]
    alone = token_logprobs(tiny_model, ctx, texts, batch_size=1)
    together = token_logprobs(tiny_model, ctx, texts, batch_size=16)
    assert np.isnan(alone[3]) and np.isnan(together[3])  # an empty text has none
    np.testing.assert_allclose(together[:3], alone[:3], rtol=0, atol=1e-5)
