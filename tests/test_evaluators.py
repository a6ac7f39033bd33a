"""Evaluators on the tiny Llama: flip rate, perplexity ratio and its regimes, the classifier
evaluator (with a small judge trained in a temp cache)."""

import numpy as np
import pytest

from emolab import plugins
from emolab.api import Run
from emolab.builtins.evaluators.perplexity_ratio import REGIMES, distinct_n, regime
from emolab.errors import BadInput, UnknownName

PROMPTS = ["The film was", "I think the movie is", "Overall it was"]


def ev(name, **params):
    return plugins.get("evaluators", name, **params)


def test_registered():
    assert {
        "logit_diff",
        "label_logit_shift",
        "flip_rate",
        "perplexity_ratio",
        "classifier",
    } <= set(plugins.registry().names("evaluators"))


def test_flip_rate_counts_sign_flips(tiny_model):
    fr = ev("flip_rate", a="good", b="bad")
    base = np.asarray(fr.per_prompt(Run(tiny_model, PROMPTS), ()))
    assert fr.evaluate(Run(tiny_model, PROMPTS))["flip_rate"] == 0.0
    # a hook that swaps the sign of logit(good) - logit(bad) by editing the final logits'
    # input is hard to build; instead flip via the unembedding: add a big push toward
    # whichever side each prompt is not on, through the last residual.
    from emolab.runner import token_ids

    w = tiny_model.hf.lm_head.weight.detach().numpy()
    a, b = token_ids(tiny_model, ["good"])[0], token_ids(tiny_model, ["bad"])[0]
    d = w[a] - w[b]
    sign = -1.0 if base.mean() > 0 else 1.0
    push = plugins.get(
        "interventions", "residual_add", layer=3, alpha=sign * 50.0, scale="absolute"
    ).hooks(tiny_model, vector=d / np.linalg.norm(d))
    m = fr.evaluate(Run(tiny_model, PROMPTS, hooks=push))
    expected = float((np.sign(base) != sign).mean())
    assert m["flip_rate"] == pytest.approx(expected)
    assert expected > 0
    assert 0 <= m["flip_rate_a_to_b"] <= 1 or np.isnan(m["flip_rate_a_to_b"])


def test_distinct_n_and_regime_thresholds():
    assert distinct_n([1, 2, 3, 4], 2) == 1.0
    assert distinct_n([7, 7, 7, 7, 7], 2) == pytest.approx(0.25)
    assert distinct_n([1], 2) == 1.0
    # repetition wins over a low perplexity ratio
    assert regime(0.5, 0.2, 0.9, 3.0, 0.5, 0.6) == "repetitive"
    assert regime(1.5, 0.5, 0.95, 3.0, 0.4, 0.6) == "repetitive"  # dropped below 60 %
    assert regime(5.0, 0.9, 0.9, 3.0, 0.5, 0.6) == "explosive"
    assert regime(1.8, 0.9, 0.95, 3.0, 0.5, 0.6) == "surgical"
    assert regime(1.8, 0.9, 0.95, 1.5, 0.5, 0.6) == "explosive"  # configurable
    assert regime(float("inf"), 0.9, 0.95, 3.0, 0.5, 0.6) == "explosive"


def test_perplexity_ratio_on_texts(tiny_model):
    pr = ev("perplexity_ratio")
    base = ["the cat sat on the mat today", "we went out for a walk", "it rained a bit"]
    same = pr.evaluate(Run(tiny_model, PROMPTS, base, base))
    assert same["perplexity_ratio"] == pytest.approx(1.0)
    assert REGIMES[int(same["regime_code"])] == "surgical"
    assert same["surgical_share"] == 1.0
    rep = ["!!!!!!!!!!!!!!!!!!!!", "open open open open open open", "a a a a a a a a a"]
    m = pr.evaluate(Run(tiny_model, PROMPTS, base, rep))
    assert m["distinct2"] < 0.5
    assert REGIMES[int(m["regime_code"])] == "repetitive"
    assert m["surgical_share"] == 0.0
    strict = ev("perplexity_ratio", max_ratio=0.0001, min_distinct2=0.0, max_distinct_drop=0.0)
    garbage = ["zq xv kj wq pl", "mn bv cx zl qp", "qq zx vb nm lk"]
    m2 = strict.evaluate(Run(tiny_model, PROMPTS, base, garbage))
    assert REGIMES[int(m2["regime_code"])] == "explosive"
    with pytest.raises(BadInput, match="needs baseline and steered"):
        pr.evaluate(Run(tiny_model, PROMPTS, base, []))
    with pytest.raises(BadInput, match="finite number|must be float"):
        ev("perplexity_ratio", max_ratio="nan")


def test_perplexity_runs_together_equal_each_run_alone(tiny_model):
    """A sweep batch's cells scored in one call (prompts and baseline once) get exactly
    the metrics and per-text regimes each gets alone."""
    pr = ev("perplexity_ratio")
    base = ["the cat sat on the mat today", "we went out for a walk", "it rained a bit"]
    sets = [base, ["open open open open", "a walk in the park", ""], ["zq xv kj", "hi", "ok ok"]]
    runs = [Run(tiny_model, PROMPTS, base, s) for s in sets]
    together = pr.evaluate_runs(runs)
    for steered, got, run in zip(sets, together, runs):
        own = Run(tiny_model, PROMPTS, base, steered)
        assert pr.evaluate(own) == got
        assert own.extra["regimes"] == run.extra["regimes"]
    with pytest.raises(BadInput, match="only over one baseline"):
        pr.evaluate_runs([runs[0], Run(tiny_model, PROMPTS, sets[1], base)])


def test_classifier_evaluator(small_judge):
    c = ev("classifier", train_limit=small_judge)
    run = Run(
        None,
        ["p1", "p2"],
        ["I am at home.", "It is a table."],
        ["I am so happy and grateful, this is wonderful!", "What a joy, I love it!"],
        target="joy",
    )
    m = c.evaluate(run)
    assert 0 <= m["p_target_baseline"] <= 1 and 0 <= m["p_target"] <= 1
    assert m["p_target_rise"] == pytest.approx(m["p_target"] - m["p_target_baseline"])
    assert m["p_target_rise"] > 0
    assert 0 < m["judge_accuracy"] <= 1
    assert 0 <= m["judge_agreement"] <= 1
    with pytest.raises(UnknownName, match="no label 'gratitude'"):
        c.evaluate(Run(None, ["p"], ["a"], ["b"], target="gratitude"))
    with pytest.raises(BadInput, match="target"):
        c.evaluate(Run(None, ["p"], ["a"], ["b"]))


def test_classifier_encodes_each_text_set_once(small_judge, monkeypatch):
    """One MiniLM encode per set of steered texts serves the chosen judge and the two
    judges' agreement, the baseline is encoded once for every run over it, and the numbers
    are the judge's own `proba` / `proba_parts` of each set, exactly."""
    from emolab.classifier import Encoder, load_judge

    j = load_judge("ekman", train_limit=small_judge)
    base = ["I am at home.", "It is a table.", "The bus comes at nine."]
    sets = [
        ["I am so happy and grateful, this is wonderful!", "What a joy!", "ok"],
        ["This makes me furious, I hate waiting for the bus every single day.", "No.", ""],
    ]
    calls = []
    embed = Encoder.embed
    monkeypatch.setattr(Encoder, "embed", lambda self, t, **kw: calls.append(t) or embed(self, t))
    c = ev("classifier", train_limit=small_judge)
    for n, (texts, target) in enumerate(zip(sets, ["joy", "anger"])):
        before = len(calls)
        m = c.evaluate(Run(None, ["a", "b", "c"], base, texts, target=target))
        assert len(calls) - before == 2 - n  # this set, and the baseline once for both runs
        col = j.labels.index(target)
        parts = j.proba_parts(texts)
        assert m["p_target"] == float(j.proba(texts)[:, col].mean())
        assert m["p_target_baseline"] == float(j.proba(base)[:, col].mean())
        assert m["p_target_minilm"] == float(parts["minilm"][:, col].mean())
        assert m["judge_agreement"] == float(
            (parts["minilm"].argmax(1) == parts["tfidf"].argmax(1)).mean()
        )
    tfidf_only = ev("classifier", train_limit=small_judge, judge="tfidf")
    got = tfidf_only.evaluate(Run(None, ["a"], [], sets[0][:1], target="joy"))
    assert got["p_target"] == float(j.proba(sets[0][:1], "tfidf")[:, j.labels.index("joy")][0])
    assert "p_target_baseline" not in got


def test_logit_diff_and_label_logit_shift(tiny_model):
    m = ev("logit_diff", a="good", b="bad").evaluate(Run(tiny_model, PROMPTS))
    assert m["logit_diff_change"] == 0 and m["logit_diff"] == m["logit_diff_baseline"]
    v = np.random.default_rng(0).normal(size=(4, 64)).astype("f4")
    hooks = plugins.get(
        "interventions", "residual_add", layer=2, alpha=3.0, scale="absolute"
    ).hooks(tiny_model, vector=v)
    m = ev("logit_diff", a="good", b="bad").evaluate(Run(tiny_model, PROMPTS, hooks=hooks))
    assert m["logit_diff_change"] != 0
    emotions = ["joy", "anger", "fear"]
    s = ev("label_logit_shift").evaluate(
        Run(tiny_model, PROMPTS, hooks=hooks, emotions=emotions, target="joy")
    )
    assert set(s) >= {f"label_logit_shift/{e}" for e in emotions}
    others = (s["label_logit_shift/anger"] + s["label_logit_shift/fear"]) / 2
    assert s["label_logit_shift_vs_others"] == pytest.approx(s["label_logit_shift"] - others)
    with pytest.raises(BadInput, match="list of emotions"):
        ev("label_logit_shift").evaluate(Run(tiny_model, PROMPTS))
    # a push only on generated tokens never reaches the list prompt's pass: not measured
    gen_only = plugins.get(
        "interventions", "residual_add", layer=2, alpha=3.0, scale="absolute", positions="generated"
    ).hooks(tiny_model, vector=v)
    g = ev("label_logit_shift").evaluate(
        Run(tiny_model, PROMPTS, hooks=gen_only, emotions=emotions, target="joy")
    )
    assert all(np.isnan(x) for x in g.values()) and set(g) == set(s)
    assert np.isfinite(s["label_logit_shift"])
