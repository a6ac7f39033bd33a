"""Cells batched into one generate (per-row vectors and alphas) equal one cell at a time."""

import numpy as np
import pytest

from emolab import plugins
from emolab.runner import generate, generate_cells, last_logits, last_logits_cells

PROMPTS = ["Tell me about your day.", "Describe the weather today in two words.", "Hi."]


def cell_hooks(model, seed_alpha_layer):
    """Hooks per (emotion seed, alpha, layer[, span]): a span steers layer..layer+span-1
    with alpha split over them, as the sweep does."""
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((3, model.n_layers, model.d_model)).astype(np.float32)
    norms = np.full(model.n_layers, 4.0)
    out = []
    for emo, alpha, layer, *span in seed_alpha_layer:
        last = layer + (span[0] if span else 1) - 1
        inter = plugins.get(
            "interventions", "residual_add", layer=layer, to_layer=last, alpha=alpha, spread="split"
        )
        out.append(inter.hooks(model, vector=vecs[emo], norms=norms))
    return out


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_generate_cells_equals_one_cell_at_a_time(name):
    from emolab.plugins import load_model as load

    model = load(name)
    grid = [(0, 0.5, 1), (1, 1.5, 1), (2, 3.0, 1), (0, 2.0, 2), (1, 0.0, 3)]
    grid += [(2, 0.7, 0, 4), (1, 1.2, 0, 3)]  # spans: layers 0-3 and 0-2 of one cell
    cells = cell_hooks(model, grid)
    cells.append(plugins.get("interventions", "enhance", heads="1.0,2.3", factor=4.0).hooks(model))
    cells.append([])  # an unsteered cell among steered ones
    for batch_size in (2, 8):  # prompt batches of 2 + 1 (uneven padding) and of all three
        one = [generate(model, PROMPTS, h, 12, batch_size) for h in cells]
        batched = generate_cells(model, PROMPTS, cells, 12, batch_size)
        assert batched == one
    assert len({tuple(t) for t in one}) >= 7  # the cells really differ from each other
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


def test_batched_spans_and_sources_write_what_serial_writes(tmp_path, small_judge):
    """Span cells and a second vector source, batched, equal the serial sweep."""
    from emolab.engine import Batched, Serial
    from emolab.steps import extract, sweep
    from emolab.steps.common import new_session

    src = new_session(tmp_path / "src", "tiny-llama")
    extract.run(
        src, {"limit": 5, "test_limit": 3, "emotions": ["joy"], "methods": ["mean_diff", "pca"]}
    )
    grid = sweep_params(emotions=["joy"], spans=[1, 2], method=["mean_diff", "pca"])
    a = session_copy(src.path, tmp_path / "a")
    b = session_copy(src.path, tmp_path / "b")
    serial = sweep.run(a, grid, engine=Serial())
    batched = sweep.run(b, grid, engine=Batched(max_cells=3))
    assert serial["computed"] == batched["computed"] == 2 * 2 * 2 * 2
    assert batched["rows"] == serial["rows"] and batched["winner"] == serial["winner"]
    assert artifacts(b, batched) == artifacts(a, serial)
    spans = {r["span"] for r in serial["rows"]}
    assert spans == {1, 2}


def test_token_logprobs_batched_equal_one_text_at_a_time(tiny_model):
    from emolab.runner import chat, token_logprobs

    ctx = [chat(tiny_model, "Tell me about your day."), chat(tiny_model, "Hi."), "", "x"]
    texts = ["It was fine, thanks for asking.", "Hello!", "Just a text", "  "]
    alone = token_logprobs(tiny_model, ctx, texts, batch_size=1)
    together = token_logprobs(tiny_model, ctx, texts, batch_size=16)
    assert np.isnan(alone[3]) and np.isnan(together[3])  # an empty text has none
    np.testing.assert_allclose(together[:3], alone[:3], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_continuation_logprobs_alone_equal_among_others(name):
    """Contexts once, each set of texts on their KV cache: a set scored among others is
    bit-equal to that set alone, and equals a full forward of context + text per row."""
    import torch

    from emolab.plugins import load_model as load
    from emolab.runner import chat, continuation_logprobs

    model = load(name)
    ctx = [chat(model, "Tell me about your day."), chat(model, "Hi."), "x"]
    sets = [["It was fine, thanks.", "Hello!", "  "], ["Rain all day long, sadly.", "Yo", "a b"]]
    alone = continuation_logprobs(model, ctx, sets[1:])
    together = continuation_logprobs(model, ctx, sets)
    assert together[1] == alone[0]
    assert np.isnan(together[0][2])  # an empty text has none
    tok = model.tokenizer
    for texts, got in zip(sets, together):
        for c, t, lp in zip(ctx, texts, got):
            if not t.strip():
                continue
            cids = tok(model.with_bos(c), add_special_tokens=False)["input_ids"]
            tids = tok(" " + t, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = model.hf(input_ids=torch.tensor([cids + tids])).logits[0]
            ref = logits[len(cids) - 1 : -1].log_softmax(-1)[torch.arange(len(tids)), tids]
            assert abs(float(ref.mean()) - lp) < 1e-5


@pytest.mark.parametrize("model_type", ["llama", "gemma3_text", "gpt2", "gpt_neox", "phi"])
def test_rows_below_the_first_hooked_block_run_once(model_type):
    """Cells steering block 2 and up share blocks 0-1 on the prompts (first call on n rows,
    its KV cache repeated) and still equal one cell at a time, token for token."""
    from test_archs import tiny

    model = tiny(model_type)
    model.tokenizer.pad_token_id = model.hf.config.pad_token_id
    from emolab.hooks import module_for

    cells = [*cell_hooks(model, [(0, 3.0, 2), (1, 6.0, 2)]), []]
    one = [generate(model, PROMPTS, h, 8, 2) for h in cells]
    rows = []  # rows block 0's MLP computes, per call
    mlp = module_for(model, "blocks.0.hook_mlp_out")
    handle = mlp.register_forward_pre_hook(lambda m, a: rows.append(a[0].shape[0]))
    try:
        batched = generate_cells(model, PROMPTS, cells, 8, 2)
    finally:
        handle.remove()
    assert batched == one
    assert rows[0] == 2 and rows[1] == 6  # the prompts once, then every cell's own token
    assert len({tuple(t) for t in one}) == 3
    lists = [p + " Answer:" for p in PROMPTS]
    alone = [last_logits(model, lists, h, batch_size=2) for h in cells]
    for a, b in zip(alone, last_logits_cells(model, lists, cells, batch_size=2)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "model_type", ["llama", "gemma2", "gemma3_text", "gpt2", "gpt_neox", "phi"]
)
def test_last_position_logits_equal_the_full_head(model_type, monkeypatch):
    """The label-list forward puts only each text's last real position through the LM head
    (`logits_to_keep`): the same numbers as the full head read at that position, steered or
    not, alone or in cells; a model without `logits_to_keep` takes the full head."""
    import torch
    from test_archs import tiny

    from emolab import runner

    model = tiny(model_type)
    texts = [p + " Answer:" for p in PROMPTS]
    hooks = cell_hooks(model, [(0, 2.0, 1), (1, 0.5, 0)])
    ids, mask = model.encode(texts, "right")
    with torch.no_grad():
        full = model.hf(input_ids=ids, attention_mask=mask).logits
    ref = full[torch.arange(len(texts)), mask.sum(1) - 1].numpy()
    assert runner.keeps_logits(model)
    kept = last_logits(model, texts)
    np.testing.assert_allclose(kept, ref, rtol=0, atol=1e-5)
    steered = [last_logits(model, texts, h) for h in hooks]
    monkeypatch.setattr(runner, "keeps_logits", lambda _m: False)
    np.testing.assert_allclose(last_logits(model, texts), kept, rtol=0, atol=1e-5)
    for h, got in zip(hooks, steered):
        np.testing.assert_allclose(last_logits(model, texts, h), got, rtol=0, atol=1e-5)
    monkeypatch.undo()
    for a, b in zip(steered, last_logits_cells(model, texts, hooks)):
        np.testing.assert_array_equal(a, b)  # the head on each cell's rows, as alone


class _Recorder:
    """A Work that records each batch it computes; cells are (name, group)."""

    def __init__(self):
        self.batches = []

    def start(self):
        pass

    def group(self, cell):
        return cell[1]

    def run(self, cells):
        self.batches.append([c[0] for c in cells])
        return [{"cell": c[0]} for c in cells]


def test_group_order_hands_each_batch_back_as_it_finishes():
    """Results come back in the order given, so a grid interleaved across groups (emotion
    major, as the sweep's) would be held until the last group ran; in group order the first
    batch is back after one pass, which is what lets a killed sweep keep it."""
    from emolab.engine import Batched, group_order

    cells = [("a1", 1), ("a2", 2), ("b1", 1), ("b2", 2), ("c1", 1)]
    work = _Recorder()
    got = Batched(max_cells=8).map(work, cells)
    assert [next(got) for _ in range(2)] == [(0, {"cell": "a1"}), (1, {"cell": "a2"})]
    assert work.batches == [["a1", "b1", "c1"], ["a2", "b2"]]  # b1, c1 held for a2's pass
    ordered = group_order(work, cells)
    assert ordered == [("a1", 1), ("b1", 1), ("c1", 1), ("a2", 2), ("b2", 2)]
    work = _Recorder()
    got = Batched(max_cells=8).map(work, ordered)
    assert [next(got) for _ in range(3)] == [
        (i, {"cell": c}) for i, c in enumerate(["a1", "b1", "c1"])
    ]
    assert work.batches == [["a1", "b1", "c1"]]  # the second group has not run yet
    assert group_order(work, []) == []
