"""The external judge: encoder from the wheel folder, a small judge trained in a temp cache,
the cache hit, and the classify command's output and errors."""

import json

import numpy as np
import pytest

from emolab import classifier as clf
from emolab.errors import BadInput, UnknownName


def test_encoder_loads_from_the_wheel_folder_and_normalises(small_judge):
    assert (clf.encoder_dir() / "config.json").is_file()
    j = clf.load_judge("ekman", train_limit=small_judge)
    emb = j.encoder.embed(["I love this", "I hate this", "I love this"])
    assert emb.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(emb[0], emb[2], atol=1e-6)
    assert emb[0] @ emb[1] < 0.99


def test_small_judge_is_cached_and_scored(small_judge, tmp_path_factory):
    j = clf.load_judge("ekman", train_limit=small_judge)
    assert j.labels == ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
    for name in clf.JUDGES:
        s = j.scores[name]
        assert 0 < s["accuracy"] <= 1 and set(s["per_class_f1"]) == set(j.labels)
    folder = clf.cache_root() / f"ekman-{j.key}"
    assert (folder / "scores.json").is_file() and (folder / "mlp.safetensors").is_file()
    clf._JUDGES.clear()  # a fresh process: loaded from the cache, not retrained
    again = clf.load_judge("ekman", train_limit=small_judge)
    assert again.scores == j.scores
    texts = ["I am so happy today!", "This is disgusting."]
    np.testing.assert_allclose(again.proba(texts), j.proba(texts), atol=1e-6)
    p = j.proba(texts, "tfidf")
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-6)
    with pytest.raises(UnknownName, match="unknown judge"):
        j.proba(texts, "oracle")


def test_judge_cache_holds_no_pickle_and_is_keyed_by_sklearn_version(small_judge, monkeypatch):
    import sklearn

    j = clf.load_judge("ekman", train_limit=small_judge)
    folder = clf.cache_root() / f"ekman-{j.key}"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["mlp.safetensors", "scores.json", clf.TFIDF_VOCAB, clf.TFIDF_ARRAYS]
    assert not [p for p in clf.cache_root().rglob("*") if p.suffix in (".pkl", ".pickle")]
    texts = ["I am so happy today!", "This is disgusting.", "what?!"]
    rebuilt = clf.load_tfidf(folder, 0.5)
    np.testing.assert_array_equal(rebuilt.predict_proba(texts), j.tfidf.predict_proba(texts))
    good = (folder / clf.TFIDF_ARRAYS).read_bytes()
    (folder / clf.TFIDF_ARRAYS).write_bytes(b"damaged")
    assert clf.load_tfidf(folder, 0.5) is None  # a damaged cache retrains, never crashes
    (folder / clf.TFIDF_ARRAYS).write_bytes(good)
    clf._JUDGES.clear()
    monkeypatch.setattr(sklearn, "__version__", "0.0-other")
    other = clf.load_judge("ekman", train_limit=small_judge)
    assert other.key != j.key  # another scikit-learn version: another cache entry
    clf._JUDGES.clear()


def test_classify_function_and_errors(small_judge):
    res = clf.classify(["What a wonderful, happy day!"], train_limit=small_judge)
    assert res["judge_accuracy"] > 0 and res["results"][0]["probs"]["joy"] > 0
    assert sum(res["results"][0]["probs"].values()) == pytest.approx(1)
    with pytest.raises(BadInput, match="empty text"):
        clf.classify([" "])
    with pytest.raises(UnknownName, match="unknown classifier task"):
        clf.split_data("plutchik", "train")


def test_class_weights():
    y = np.array([0, 0, 0, 1])
    np.testing.assert_allclose(clf.class_weights(y, 2, 1.0), [4 / 6, 4 / 2])
    np.testing.assert_allclose(clf.class_weights(y, 2, 0.0), [1, 1])
    assert clf.class_weights(y, 3, 1.0)[2] == 0


def test_classify_cli(run_cli, small_judge):
    r = run_cli(
        "classify", "--text", "I am furious about this!", "--train-limit", small_judge, "--json"
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["labels"][0] == "anger" and 0 < res["judge_accuracy"] <= 1
    r = run_cli("classify", "--eval", "goemotions-ekman", "--train-limit", small_judge, "--json")
    res = json.loads(r.output)
    assert res["dataset"] == "goemotions-ekman" and 0 < res["accuracy"] <= 1
    assert set(res["judges"]) == set(clf.JUDGES)
    r = run_cli("classify", "--eval", "goemotions-ekman", "--train-limit", small_judge)
    assert "macro-F1" in r.output and "0.505" in r.output
    r = run_cli("classify")
    assert r.exit_code == 2 and "give --text" in r.output
    r = run_cli("classify", "--text", "hi", "--train-limit", "3")
    assert r.exit_code == 2 and "at least 50" in r.output
