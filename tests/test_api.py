"""The Python API: docs/api.md executed, tables from the log, vectors that steer a plain HF
model, an in-memory model wrapped as an emolab model."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import emolab
from emolab import plugins
from emolab.errors import BadInput, SessionError, UnknownName
from emolab.runner import last_logits

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_docs_api_runs_top_to_bottom(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 10
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"docs/api.md block {i + 1}", "exec"), namespace)
        except Exception as exc:  # name the block, keep the traceback
            raise AssertionError(f"docs/api.md block {i + 1} failed: {exc!r}\n{code}") from exc
    layers = namespace["layers"]
    assert not layers.duplicated(["method", "emotion", "layer"]).any()
    assert set(layers["method"]) == {"mean_diff", "pca"}


def test_table_layers_is_one_row_per_method_emotion_and_layer(tiny_session):
    lab = emolab.open(tiny_session.path)
    result = lab.run("layers")
    df = lab.table("layers")
    assert len(df) == len(tiny_session.methods()) * len(result["emotions"]) * 4
    assert not df.duplicated(["method", "emotion", "layer"]).any()
    by_key = {(r["method"], r["emotion"], r["layer"]): r["acc"] for r in result["rows"]}
    for row in df.itertuples():
        assert row.acc == pytest.approx(by_key[(row.method, row.emotion, row.layer)], abs=1e-4)


def test_tables_come_from_the_log_not_from_file_names(tiny_session):
    lab = emolab.open(tiny_session.path)
    with pytest.raises(SessionError, match="no heads results"):
        lab.table("heads")
    lab.run("heads", emotion="joy", layer=2, n_texts=3)
    lab.run("heads", emotion="anger", layer=2, n_texts=3)
    joy, anger = lab.table("heads", emotion="joy"), lab.table("heads", emotion="anger")
    assert set(joy["emotion"]) == {"joy"} and set(anger["emotion"]) == {"anger"}
    assert len(joy) == 3 * 4 and set(joy["layer"]) == {0, 1, 2}  # heads up to layer 2
    assert lab.table("heads")["emotion"].iloc[0] == "anger"  # the latest
    # an artifact renamed on disk is not found by guessing: the log says what was written
    for out in Path(tiny_session.path, "artifacts").glob("heads-*-anger.json"):
        out.rename(out.with_name("renamed.json"))
    assert lab.table("heads")["emotion"].iloc[0] == "joy"
    with pytest.raises(UnknownName, match="unknown table 'nosuch'"):
        lab.table("nosuch")
    with pytest.raises(BadInput, match="filters only by kind"):
        lab.table("metrics", emotion="joy")
    with pytest.raises(UnknownName, match="unknown step 'extrac'"):
        lab.run("extrac")
    log = lab.table("log")
    assert list(log["kind"]) == ["extract", "heads", "heads"]


def test_a_vector_steers_a_plain_hf_model_exactly_as_emolab_steer_does(tiny_session, tiny_model):
    joy = emolab.open(tiny_session.path).vectors()["joy"]
    hf = tiny_model.reload()  # a plain transformers model, not the session's
    text = "Tell me about your day."
    ids, mask = tiny_model.encode([text])
    with torch.no_grad():
        plain = hf(input_ids=ids, attention_mask=mask).logits[0, -1]
        with joy.apply(hf, layer=2, alpha=0.8):
            steered = hf(input_ids=ids, attention_mask=mask).logits[0, -1]
        after = hf(input_ids=ids, attention_mask=mask).logits[0, -1]
    hooks = plugins.get("interventions", "residual_add", layer=2, alpha=0.8).hooks(
        tiny_model, vector=joy.array, norms=joy.norms
    )
    ref = last_logits(tiny_model, [text], hooks)[0]
    np.testing.assert_allclose(steered.numpy(), ref, atol=1e-5)
    assert torch.equal(plain, after) and (plain - steered).abs().max() > 1e-3
    n_hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in hf.modules())
    with pytest.raises(RuntimeError, match="in the block"), joy.apply(hf, layer=1, alpha=0.3):
        raise RuntimeError("in the block")
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in hf.modules()) == n_hooks
    with pytest.raises(BadInput, match="no vector at layer 7"):
        joy.at(7)
    with pytest.raises(UnknownName, match="unknown emotion 'glee'"):
        emolab.open(tiny_session.path).vectors()["glee"]


def test_a_wrapped_model_runs_steps_and_keeps_the_users_model_plain(tiny_model, tmp_path):
    hf = tiny_model.reload()
    layer_type = type(hf.model.layers[0])
    mine = emolab.wrap(hf, tiny_model.tokenizer, name="wrapped-tiny")
    lab = emolab.create(tmp_path / "s", model=mine)
    assert lab.session.manifest["model"]["source"] == "in-memory model (emolab.wrap)"
    lab.run("extract", emotions=["joy"], limit=4, test_limit=2, layers="1-2")
    again = emolab.wrap(tiny_model.reload(), tiny_model.tokenizer, name="other")
    assert again.meta["sha256"] == mine.meta["sha256"]  # same seed, same weights
    assert lab.table("metrics")["metric"].str.startswith("mean_resid_norm/L").sum() == 2
    got = lab.model.bridge()  # boots on a copy: the user's model is not rewired
    assert got.original_model is not hf and type(hf.model.layers[0]) is layer_type
    with pytest.raises(BadInput, match="another model is already loaded as 'wrapped-tiny'"):
        emolab.wrap(tiny_model.reload(), tiny_model.tokenizer, name="wrapped-tiny")


def test_import_emolab_stays_cheap():
    code = "import sys, emolab; print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_table_sweep_is_one_row_per_cell(tiny_session, small_judge):
    lab = emolab.open(tiny_session.path)
    result = lab.run(
        "sweep",
        emotions=["joy", "anger"],
        layers=[1, 2],
        alphas=[0.2, 2.0],
        prompts=["Tell me about your day.", "Describe the weather."],
        max_new_tokens=4,
        judge_train_limit=small_judge,
    )
    df = lab.table("sweep")
    assert len(df) == len(result["rows"]) == 2 * 2 * 2
    assert not df.duplicated(["emotion", "intervention", "layer", "alpha"]).any()
    by_cell = {(r["emotion"], r["layer"], r["alpha"]): r["p_target_rise"] for r in result["rows"]}
    for row in df.itertuples():
        assert row.p_target_rise == pytest.approx(by_cell[(row.emotion, row.layer, row.alpha)])


def test_keyword_typos_and_wrong_types_stop_before_anything_runs(tiny_session):
    lab = emolab.open(tiny_session.path)
    before = len(tiny_session.events())
    with pytest.raises(BadInput, match="steer has no parameter 'alpah'"):
        lab.run("steer", emotion="joy", alpah=1)
    with pytest.raises(BadInput, match="parameter 'alpha'"):
        lab.run("steer", emotion="joy", alpha="strong")
    with pytest.raises(BadInput, match="extract has no parameter 'emotion'"):
        lab.run("extract", emotion="joy")
    assert len(tiny_session.events()) == before  # nothing logged
