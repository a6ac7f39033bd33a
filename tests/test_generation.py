"""Generation-based extraction: seeded, pooled over what the model wrote, usable by extract
and compared with comprehension by `layers --source generation` (paired Wilcoxon)."""

import json

import numpy as np
import pytest

from emolab.errors import BadInput
from emolab.steps.generation import generation_activations

HOOKS = ["blocks.1.hook_resid_post", "blocks.3.hook_resid_post"]


def test_seeded_and_pooled_over_generated_tokens(tiny_model):
    kw = dict(
        labels=["joy", "neutral"], baseline="neutral", hooks=HOOKS, samples=3, max_new_tokens=6
    )
    x, y, rec = generation_activations(tiny_model, position="mean", seed=7, **kw)
    x2, _, rec2 = generation_activations(tiny_model, position="mean", seed=7, **kw)
    x3, _, rec3 = generation_activations(tiny_model, position="mean", seed=8, **kw)
    assert x.shape == (len(y), 2, tiny_model.d_model) and set(y) == {"joy", "neutral"}
    assert [r["text"] for r in rec] == [r["text"] for r in rec2]
    np.testing.assert_array_equal(x, x2)
    assert [r["text"] for r in rec] != [r["text"] for r in rec3]
    last, _, _ = generation_activations(tiny_model, position="last", seed=7, **kw)
    assert not np.allclose(last, x)


def test_teacher_forced_states_equal_the_states_while_generating(tiny_model):
    """What generation.py relies on: re-reading prompt + generated tokens in one pass gives
    the states the model had while it generated them (causal model, same tokens)."""
    import torch

    ids = tiny_model.tokenizer("Write something happy", return_tensors="pt")["input_ids"]
    plen = ids.shape[1]
    with torch.no_grad():
        out = tiny_model.hf.generate(
            input_ids=ids,
            do_sample=False,
            max_new_tokens=5,
            pad_token_id=tiny_model.tokenizer.pad_token_id,
            output_hidden_states=True,
            return_dict_in_generate=True,
        )
        full = tiny_model.hf(input_ids=out.sequences, output_hidden_states=True).hidden_states
    # generation step k (k >= 1) reads generated token k-1; hidden_states[4] = block 3 output
    for k in range(1, len(out.hidden_states)):
        torch.testing.assert_close(
            out.hidden_states[k][4][0, -1], full[4][0, plen + k - 1], rtol=1e-4, atol=1e-4
        )


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"position": "commas"}, "supports positions last, mean"),
        ({"samples": 1}, "at least 2 samples"),
    ],
)
def test_bad_generation_input(tiny_model, kw, msg):
    args = dict(
        labels=["joy", "neutral"],
        baseline="neutral",
        hooks=HOOKS,
        samples=2,
        max_new_tokens=3,
        position="mean",
    )
    with pytest.raises(BadInput, match=msg):
        generation_activations(tiny_model, **{**args, **kw})


def test_extract_source_generation(run_cli, tmp_path):
    s = tmp_path / "gen"
    out = run_cli(
        "extract",
        "--model",
        "tiny-llama",
        "--source",
        "generation",
        "--limit",
        3,
        "--test-limit",
        3,
        "--emotions",
        "joy,anger",
        "--position",
        "mean",
        "--method",
        "mean_diff,lda",
        "--session",
        s,
        "--json",
    )
    assert out.exit_code == 0, out.output
    from emolab.session import Session

    sess = Session.open(s)
    _, meta = sess.load_vectors("lda")
    assert meta.source == "generation"
    ex = sess.read_json("examples.json")
    assert {lab for lab, _ in ex["train"]} == {"joy", "anger", "neutral"}
    assert run_cli("layers", s, "--json").exit_code == 0
    out = run_cli("layers", s, "--source", "generation")
    assert out.exit_code == 2
    assert "already generation-based" in out.output


def test_extract_generation_refuses_comma_position(run_cli, tmp_path):
    out = run_cli(
        "extract",
        "--model",
        "tiny-llama",
        "--source",
        "generation",
        "--position",
        "commas",
        "--limit",
        3,
        "--session",
        tmp_path / "s",
    )
    assert out.exit_code == 2
    assert "supports positions last, mean, not 'commas'" in out.output


def test_layers_compares_sources_with_wilcoxon(run_cli, tiny_session):
    out = run_cli("layers", tiny_session.path, "--source", "generation", "--json")
    assert out.exit_code == 0, out.output
    res = json.loads(out.output[out.output.index("{") :])
    src = res["sources"]
    assert src["samples_per_label"] == 12
    assert len(src["rows"]) == 4 * 6  # layers x emotions, one method
    t = src["tests"]["mean_diff"]
    assert t["n_pairs"] == 24
    assert 0 <= t["acc_wilcoxon_p"] <= 1 or np.isnan(t["acc_wilcoxon_p"])
    assert 0 <= t["auc_wilcoxon_p"] <= 1
    from emolab import results

    gen = results.latest(tiny_session, "layers", suffix=".jsonl").path
    lines = gen.read_text().splitlines()
    assert {json.loads(line)["label"] for line in lines} == {
        "anger",
        "disgust",
        "fear",
        "joy",
        "sadness",
        "surprise",
        "neutral",
    }
