"""Contrastive prompt pairs (`extract --source pairs`): the shipped pairs share template and
event between an emotion and neutral, the answer span is read exactly, and mean_diff on them
is the mean over pairs of the activation difference."""

import json

import numpy as np
import pytest

from emolab.capture import capture_spans
from emolab.errors import BadInput
from emolab.steps import extract
from emolab.steps.common import new_session
from emolab.steps.pairs import max_pairs, pair_activations, pair_texts, shipped


def test_shipped_pairs_are_distinct_and_matched_with_neutral():
    data = shipped()
    assert set(data["continuations"]) == {
        "neutral", "joy", "sadness", "anger", "fear", "disgust", "surprise",
    }  # fmt: skip
    n = max_pairs()
    assert n == 60
    rows = pair_texts(["joy", "neutral"], "neutral", n)
    joy = [(t, c) for lab, t, c in rows if lab == "joy"]
    neutral = [(t, c) for lab, t, c in rows if lab == "neutral"]
    assert len(set(joy)) == len(set(neutral)) == n  # every pair distinct
    for k in range(n):  # pair k: the same template, continuation k of each label
        assert joy[k][0] == neutral[k][0]
        i = data["continuations"]["joy"].index(joy[k][1])
        assert data["continuations"]["neutral"].index(neutral[k][1]) == i
    for conts in data["continuations"].values():
        assert len(conts) == 12 and all(c.startswith("I feel") for c in conts)


@pytest.mark.parametrize(
    "labels,baseline,n,msg",
    [
        (["gratitude", "neutral"], "neutral", 4, "no continuations for gratitude"),
        (["joy", "calm"], "calm", 4, "contrasts with 'neutral', not 'calm'"),
        (["joy", "neutral"], "neutral", 61, "must lie in 2-60"),
    ],
)
def test_bad_pair_requests_are_one_line(labels, baseline, n, msg):
    with pytest.raises(BadInput, match=msg):
        pair_texts(labels, baseline, n)
    with pytest.raises(BadInput, match="supports positions last, mean, not 'commas'"):
        pair_texts(["joy", "neutral"], "neutral", 4, "commas")


def test_answer_span_equals_an_unpadded_forward(tiny_model):
    """Batched, right-padded spans of different lengths read what one sequence at a time
    gives (HF hidden_states[2] is block 1's output)."""
    import torch

    tok = tiny_model.tokenizer
    seqs = [
        tok("Tell me how you feel. I feel fine today.")["input_ids"],
        tok("Hi. I feel wonderful, thank you so much for asking me!")["input_ids"],
    ]
    starts = [5, 3]
    got = capture_spans(tiny_model, seqs, starts, ["blocks.1.hook_resid_post"], "mean", 2)
    last = capture_spans(tiny_model, seqs, starts, ["blocks.1.hook_resid_post"], "last", 2)
    for i, (seq, start) in enumerate(zip(seqs, starts)):
        with torch.no_grad():
            h = tiny_model.hf(input_ids=torch.tensor([seq]), output_hidden_states=True)
        ref = h.hidden_states[2][0].numpy()
        np.testing.assert_allclose(got[i, 0], ref[start:].mean(0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(last[i, 0], ref[-1], rtol=1e-4, atol=1e-5)
    with pytest.raises(BadInput, match="no tokens after its prompt"):
        capture_spans(tiny_model, seqs, [len(seqs[0]), 3], ["blocks.1.hook_resid_post"])


def test_extract_source_pairs_is_the_mean_pair_difference(tmp_path, tiny_model):
    s = new_session(tmp_path / "p", "tiny-llama")
    res = extract.run(
        s,
        {"source": "pairs", "pairs": 5, "position": "mean", "emotions": ["joy", "anger"],
         "test_limit": 3},
    )  # fmt: skip
    assert res["n_train"] == 3 * 5  # joy, anger and the shared neutral halves
    ex = s.read_json("examples.json")
    assert ex["train"][0] == [
        "joy",
        "Tell me how you feel.\n" + shipped()["continuations"]["joy"][0],
    ]
    assert s.steps()[-1]["params"]["pairs"] == 5
    hooks = [f"blocks.{L}.hook_resid_post" for L in range(4)]
    x, y, _ = pair_activations(tiny_model, ["joy", "anger", "neutral"], "neutral", hooks, "mean", 5)
    want = (x[y == "joy"] - x[y == "neutral"]).mean(0)  # mean over pairs of the difference
    vecs, meta = s.load_vectors("mean_diff")
    assert meta.source == "pairs"
    np.testing.assert_allclose(vecs["joy/blocks.2.hook_resid_post"], want[2], rtol=1e-4, atol=1e-5)
    # dev and test stay the dataset's labelled texts, for choosing and reporting
    assert len(ex["dev"]) == len(ex["test"]) == 3 * 3


def test_cli_source_pairs(run_cli, tmp_path):
    s = tmp_path / "cli"
    base = ("extract", "--model", "tiny-llama", "--emotions", "joy", "--test-limit", "2")
    r = run_cli(*base, "--source", "pairs", "--pairs", "3", "--position", "mean", "--session", s)
    assert r.exit_code == 0, r.output
    event = json.loads((s / "log.jsonl").read_text().splitlines()[-1])
    assert event["params"]["source"] == "pairs" and event["params"]["pairs"] == 3
    r = run_cli(*base, "--source", "pairs", "--pairs", "1", "--session", tmp_path / "bad")
    assert r.exit_code == 2 and "at least 2" in r.output and "Traceback" not in r.output
    r = run_cli(
        "extract", "--model", "tiny-llama", "--emotions", "gratitude", "--source", "pairs",
        "--session", tmp_path / "bad2",
    )  # fmt: skip
    assert r.exit_code == 2 and "no continuations for gratitude" in r.output
