"""The six extractors: planted directions are recovered, signs point toward the emotion,
bad inputs fail with one line, and DAS's cached last-token pass matches a full forward."""

import json

import numpy as np
import pytest

from emolab import plugins
from emolab.errors import BadInput

METHODS = ["mean_diff", "pca", "kmeans", "logistic", "lda", "das"]
FAST = ["mean_diff", "mean_diff_std", "pca", "kmeans", "logistic", "lda"]


def planted(n=80, d=32, layers=2, shift=3.0, seed=0):
    """Emotion = baseline + shift along a known unit direction (plus isotropic noise)."""
    rng = np.random.default_rng(seed)
    true = rng.standard_normal(d)
    true /= np.linalg.norm(true)
    neg = rng.standard_normal((n, layers, d))
    pos = rng.standard_normal((n, layers, d)) + shift * true
    return pos.astype(np.float32), neg.astype(np.float32), true


def test_all_six_registered():
    names = plugins.registry().names("extractors")
    for m in METHODS:
        assert m in names
    assert plugins.get("extractors", "das").needs_model
    assert not plugins.get("extractors", "lda").needs_model


@pytest.mark.parametrize("method", FAST)
def test_recovers_planted_direction(method):
    pos, neg, true = planted()
    dirs = plugins.get("extractors", method).fit(pos, neg)
    assert dirs.shape == (2, 32)
    for w in dirs:
        cos = w @ true / np.linalg.norm(w)
        assert cos > 0.8, (method, cos)  # also checks the sign points toward the emotion


@pytest.mark.parametrize("method", ["pca", "kmeans"])
def test_sign_is_fixed_toward_emotion_when_classes_swap(method):
    pos, neg, true = planted(seed=3)
    ext = plugins.get("extractors", method)
    assert ext.fit(pos, neg)[0] @ true > 0
    assert ext.fit(neg, pos)[0] @ true < 0


def test_lda_whitening_beats_mean_diff_on_correlated_noise():
    """A big nuisance axis correlated across dims hides a small shift from mean_diff but not LDA."""
    rng = np.random.default_rng(1)
    d, n = 16, 400
    nuisance = np.zeros(d)
    nuisance[:2] = [1, 1]

    def noise():
        return rng.standard_normal((n, d)) * 0.3 + rng.standard_normal((n, 1)) * 5 * nuisance

    true = np.zeros(d)
    true[0], true[1] = 1, -1
    pos = (noise() + 0.5 * true + 2 * nuisance)[:, None]
    neg = noise()[:, None]
    lda = plugins.get("extractors", "lda").fit(pos, neg)[0]
    md = plugins.get("extractors", "mean_diff").fit(pos, neg)[0]

    def cos(w):
        return abs(w @ true) / np.linalg.norm(w) / np.linalg.norm(true)

    assert cos(lda) > 0.9 > cos(md)


@pytest.mark.parametrize("method", FAST)
def test_one_class_is_refused(method):
    pos, neg, _ = planted()
    with pytest.raises(BadInput, match="needs two classes"):
        plugins.get("extractors", method).fit(pos, neg[:0])


@pytest.mark.parametrize("method", ["mean_diff_std", "pca", "kmeans", "logistic", "lda"])
def test_nan_activations_are_refused(method):
    pos, neg, _ = planted()
    pos[3, 0, 5] = np.nan
    with pytest.raises(BadInput, match="NaN or inf"):
        plugins.get("extractors", method).fit(pos, neg)


def test_class_smaller_than_folds_is_refused():
    pos, neg, _ = planted(n=4)
    with pytest.raises(BadInput, match="at least 5 examples per class"):
        plugins.get("extractors", "logistic", cv=5).fit(pos, neg)
    assert plugins.get("extractors", "logistic", cv=2).fit(pos, neg).shape == (2, 32)
    with pytest.raises(BadInput, match="at least 2 examples"):
        plugins.get("extractors", "lda").fit(pos[:1], neg)


def test_das_without_model_is_refused():
    pos, neg, _ = planted()
    with pytest.raises(BadInput, match="needs the model"):
        plugins.get("extractors", "das").fit(pos, neg)


def test_das_cached_last_token_pass_matches_full_forward(tiny_model):
    """DAS re-runs only the last token over a cached prefix; that must equal a full pass."""
    import copy

    import torch

    m = tiny_model
    ids, mask = m.encode(["I am so happy today", "a plain sentence about tables here"], "left")
    posn = (mask.cumsum(-1) - 1).clamp(min=0)
    base = m.hf.base_model
    with torch.no_grad():
        full = base(input_ids=ids, attention_mask=mask, position_ids=posn).last_hidden_state
        prefix = base(
            input_ids=ids[:, :-1],
            attention_mask=mask[:, :-1],
            position_ids=posn[:, :-1],
            use_cache=True,
        ).past_key_values
        last = base(
            input_ids=ids[:, -1:],
            attention_mask=mask,
            position_ids=posn[:, -1:],
            past_key_values=copy.deepcopy(prefix),
            use_cache=True,
        ).last_hidden_state
    torch.testing.assert_close(last[:, -1], full[:, -1], rtol=1e-4, atol=1e-4)


def test_das_runs_inside_extract(tmp_path):
    """DAS runs inside `extract` with the model context and gives finite, unit directions."""
    from emolab.steps import extract
    from emolab.steps.common import new_session

    s = new_session(tmp_path / "das", "tiny-llama")
    plugins.registry().components["extractors"]["das"].steps = 2
    try:
        extract.run(
            s,
            {
                "limit": 6,
                "test_limit": 3,
                "methods": ["das", "mean_diff"],
                "emotions": ["joy", "anger"],
                "layers": "1-2",
            },
        )
    finally:
        plugins.registry().components["extractors"]["das"].steps = 15
    vecs, meta = s.load_vectors("das")
    assert meta.method == "das"
    assert set(vecs) == {
        f"{e}/blocks.{i}.hook_resid_post" for e in ("joy", "anger") for i in (1, 2)
    }
    for v in vecs.values():
        assert np.isfinite(v).all() and abs(np.linalg.norm(v) - 1) < 1e-4


def test_cli_many_methods_one_capture(run_cli, tmp_path):
    out = run_cli(
        "extract",
        "--model",
        "tiny-llama",
        "--limit",
        6,
        "--test-limit",
        3,
        "--method",
        ",".join(FAST),
        "--emotions",
        "joy,anger",
        "--session",
        tmp_path / "s",
        "--json",
    )
    assert out.exit_code == 0, out.output
    from emolab.session import Session

    s = Session.open(tmp_path / "s")
    assert sorted(s.methods()) == sorted(FAST)
    captures = [e for e in s.steps() if e["kind"] == "extract"]
    assert len(captures) == 1


def test_cli_class_too_small_for_method(run_cli, tmp_path):
    f = tmp_path / "d.jsonl"
    rows = [("I love this so much", "joy"), ("What a happy day", "joy")] + [
        (f"The meeting is at {i} pm today", "neutral") for i in range(6)
    ]
    f.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    out = run_cli(
        "extract",
        "--model",
        "tiny-llama",
        "--dataset",
        f"jsonl:{f}",
        "--emotions",
        "joy",
        "--method",
        "lda",
        "--session",
        tmp_path / "s",
    )
    assert out.exit_code == 2
    assert "lda needs at least 2 examples per class, the emotion class has 1" in out.output


def test_cli_nan_activations(run_cli, tmp_path, monkeypatch):
    from emolab.steps import extract

    real = extract.capture

    def poisoned(*a, **kw):
        x = real(*a, **kw)
        x[0, 0, 0] = np.inf
        return x

    monkeypatch.setattr(extract, "capture", poisoned)
    out = run_cli(
        "extract",
        "--model",
        "tiny-llama",
        "--limit",
        4,
        "--test-limit",
        2,
        "--emotions",
        "joy",
        "--method",
        "logistic",
        "--session",
        tmp_path / "s",
    )
    assert out.exit_code == 2
    assert out.output.strip().splitlines()[-1] == (
        "error: logistic: the emotion activations contain NaN or inf"
    )


def test_lda_bad_shrinkage():
    pos, neg, _ = planted()
    for bad, msg in (("lots", "'auto' or a number"), ("1.5", r"in \[0, 1\]")):
        with pytest.raises(BadInput, match=msg):
            plugins.get("extractors", "lda", shrinkage=bad).fit(pos, neg)


def test_std_mean_diff_survives_one_massive_dimension():
    """The SmolLM2 collapse in miniature: one dimension with 100x the spread and a large
    class offset of its own; the raw mean difference points mostly along it and reads worse
    on held-out data, the standardised one reads the emotion's small shift."""
    from emolab.steps.layers import binary_scores

    rng = np.random.default_rng(4)
    d, n = 32, 300

    def sample(shift):
        x = rng.standard_normal((n, d))
        x[:, 0] *= 100.0  # the massive dimension
        x[:, 1:4] += shift  # the emotion, in ordinary dimensions
        x[:, 0] += 60.0 * (shift > 0)  # a big, noisy offset along the massive one
        return x

    pos, neg, pos_te, neg_te = sample(1.0), sample(0.0), sample(1.0), sample(0.0)
    md = plugins.get("extractors", "mean_diff").fit(pos[:, None], neg[:, None])[0]
    std = plugins.get("extractors", "mean_diff_std").fit(pos[:, None], neg[:, None])[0]
    assert abs(md[0]) / np.linalg.norm(md) > 0.9  # raw: mostly the massive dimension
    assert abs(std[0]) / np.linalg.norm(std) < 0.1

    def acc(w):
        u = w / np.linalg.norm(w)
        y = np.r_[np.ones(n), np.zeros(n)].astype(bool)
        return binary_scores(u, np.r_[pos, neg], y, np.r_[pos_te, neg_te], y)[0]

    assert acc(std) > acc(md) + 0.1
