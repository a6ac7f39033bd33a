"""Extractor hyper-parameters (C, shrinkage, n_components) are chosen on the dev split:
the extract step logs the choice, test only reports it, replay re-makes and checks it."""

import json

import numpy as np
import pytest

from emolab import plugins
from emolab.steps import extract, layers, tuning
from emolab.steps.common import new_session
from emolab.steps.replay import replay


def test_declared_grids_put_the_default_first():
    assert tuning.grid(plugins.get("extractors", "mean_diff")) == []
    assert tuning.grid(plugins.get("extractors", "logistic")) == [
        {"C": 0.01},
        {"C": 0.001},
        {"C": 0.1},
        {"C": 1.0},
    ]
    assert tuning.grid(plugins.get("extractors", "pca"))[0] == {"n_components": 1}
    assert tuning.grid(plugins.get("extractors", "lda"))[0] == {"shrinkage": "auto"}
    tune = {p["name"]: p["tune"] for p in plugins.get("extractors", "pca").schema()}
    assert tune["n_components"] == [1, 2, 4, 8] and tune["pairs"] == []


def test_choose_follows_dev_when_test_disagrees():
    """Train separates on axes 0 and 1; dev only on axis 0, test only on axis 1: the
    candidate whose direction is axis 0 wins, though test would pick the other."""
    rng = np.random.default_rng(0)
    d = 6

    def texts(n, axes):
        y = np.array(["joy"] * n + ["neutral"] * n)
        x = rng.standard_normal((2 * n, 1, d))
        for a in axes:
            x[:n, 0, a] += 4.0
        return x, y

    x_tr, y_tr = texts(40, (0, 1))
    x_dev, y_dev = texts(40, (0,))
    x_te, y_te = texts(40, (1,))
    ext = plugins.get("extractors", "pca")

    def fit(tuned):  # n_components=1 -> axis 1, 2 -> axis 0
        return {"joy": np.eye(d)[[1 if tuned.n_components == 1 else 0]]}

    def against(y, emotion):
        return y == "neutral"

    chosen = tuning.choose(
        ext, [{"n_components": 1}, {"n_components": 2}], fit, x_tr, y_tr, x_dev, y_dev, against
    )
    assert chosen.values == {"n_components": 2} and chosen.extractor.n_components == 2
    assert chosen.dev["n_components=2"] > 0.9 > 0.6 > chosen.dev["n_components=1"]
    on_test = {
        c: tuning.score(fit(ext.with_params(n_components=c)), x_tr, y_tr, x_te, y_te, against)
        for c in (1, 2)
    }
    assert on_test[1] > on_test[2]  # test disagrees, and was never asked


def _splits(session):
    arrays, _ = session.load_arrays("activations.safetensors")
    ex = session.read_json("examples.json")
    y = {k: np.array([lab for lab, _ in ex[k]]) for k in ("train", "dev", "test")}
    return {k: arrays[k].astype(np.float32) for k in y}, y


def test_extract_chooses_pca_components_on_dev_not_test(tmp_path):
    """tiny-llama, joy and anger: dev picks 2 components where test would pick 1 (checked
    here from the saved activations); the saved vectors are the 2-component fit."""
    s = new_session(tmp_path / "s", "tiny-llama")
    params = {"limit": 10, "test_limit": 6, "emotions": ["joy", "anger"], "methods": ["pca"]}
    extract.run(s, params)
    ev = s.steps()[-1]
    assert ev["choices"]["n_components/pca"] == {"value": 2, "chosen_on": "dev"}
    x, y = _splits(s)
    ext = plugins.get("extractors", "pca")

    def fit(tuned):
        return {
            e: tuned.fit(x["train"][y["train"] == e], x["train"][y["train"] == "neutral"])
            for e in ("joy", "anger")
        }

    def against(labels, emotion):
        return labels == "neutral"

    dev, test = {}, {}
    for c in tuning.grid(ext):
        vecs = fit(ext.with_params(**c))
        dev[c["n_components"]] = tuning.score(
            vecs, x["train"], y["train"], x["dev"], y["dev"], against
        )
        test[c["n_components"]] = tuning.score(
            vecs, x["train"], y["train"], x["test"], y["test"], against
        )
    assert max(dev, key=dev.get) == 2 and max(test, key=test.get) == 1
    for c, v in dev.items():
        assert ev["metrics"][f"tune_dev_acc/pca/n_components={c}"] == pytest.approx(v, abs=1e-6)
    # test is reported for the chosen value only
    assert ev["metrics"]["tune_test_acc/pca"] == pytest.approx(test[2], abs=1e-6)
    assert not [k for k in ev["metrics"] if k.startswith("tune_test_acc/pca/")]
    vecs, meta = s.load_vectors("pca")
    assert json.loads(meta.extra["params"])["n_components"] == 2
    want = fit(ext.with_params(n_components=2))["joy"][1]
    got = vecs["joy/blocks.1.hook_resid_post"]
    assert float(got @ want / np.linalg.norm(got) / np.linalg.norm(want)) > 0.99
    # the layer table's shuffled baseline refits the chosen estimator; replay re-makes it
    layers.run(s, {})
    _, cmp = replay(s.path, tmp_path / "again")
    rows = [r for r in cmp.rows if "choice n_components/pca" in r["what"]]
    assert rows and all(r["ok"] for r in rows) and cmp.ok


def test_tune_off_and_no_dev_keep_the_declared_default(tmp_path):
    s = new_session(tmp_path / "off", "tiny-llama")
    extract.run(
        s,
        {"limit": 6, "test_limit": 3, "emotions": ["joy"], "methods": ["logistic"], "tune": False},
    )
    choice = s.steps()[-1]["choices"]["C/logistic"]
    assert choice == {"value": 0.01, "chosen_on": "default (tune off)"}
    assert not [k for k in s.steps()[-1]["metrics"] if k.startswith("tune_")]
