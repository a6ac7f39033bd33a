"""Layer analysis: accuracy never without its chance level, planted signals are found,
Japanese text goes through the same path, and bad input fails with one line."""

import json

import numpy as np
import pytest

from emolab.errors import BadInput
from emolab.progress import Progress
from emolab.steps import layers


def synthetic(n=60, d=24, n_layers=3, signal_layer=1, seed=0):
    """Activations where only `signal_layer` carries each emotion, along its own axis."""
    rng = np.random.default_rng(seed)
    emotions, baseline = ["joy", "anger"], "neutral"
    labels = np.repeat(emotions + [baseline], n)
    x = rng.standard_normal((len(labels), n_layers, d))
    for k, e in enumerate(emotions):
        x[labels == e, signal_layer, k] += 4.0
    return x.astype(np.float32), labels, emotions, baseline


def test_planted_signal_found_at_its_layer_with_chance_baselines():
    x_tr, y_tr, emotions, baseline = synthetic(seed=0)
    x_te, y_te, _, _ = synthetic(seed=1)
    from emolab import plugins

    vectors = {}
    for method in ("mean_diff", "lda"):
        ext = plugins.get("extractors", method)
        for e in emotions:
            dirs = ext.fit(x_tr[y_tr == e], x_tr[y_tr == baseline])
            for layer in range(3):
                vectors.setdefault(method, {})[f"{e}/blocks.{layer}.hook_resid_post"] = dirs[layer]
    rows, cosines = layers.analyse(
        vectors, x_tr, y_tr, x_te, y_te, [0, 1, 2], emotions, baseline, 3, Progress()
    )
    summary = layers.summarise(rows, emotions, 3)
    for method in ("mean_diff", "lda"):
        assert summary[method]["peak_layer"] == 1
        peak = [r for r in rows if r["method"] == method and r["layer"] == 1]
        flat = [r for r in rows if r["method"] == method and r["layer"] == 0]
        assert min(r["acc"] for r in peak) > 0.9
        assert max(r["acc"] for r in flat) < 0.75
        for r in peak:
            assert 0.3 < r["acc_random"] < 0.7 and 0.3 < r["acc_shuffled"] < 0.7
            assert r["acc7"] > 0.8 and r["acc7_shuffled"] < 0.6 and r["acc7_random"] < 0.6
    # distinct axes: the two emotion directions are near-orthogonal at the signal layer
    assert abs(cosines["mean_diff"]["1"]["direction"][0][1]) < 0.3
    assert cosines["between_methods"]["methods"] == ["mean_diff", "lda"]


def test_surface_baseline_reads_exclamation_marks():
    tr = ["what a day!!", "so good!", "yay!!!", "it is noon.", "a table.", "the bus."] * 5
    y = np.array(["joy"] * 3 + ["neutral"] * 3 * 1 + [] + [])
    y = np.array((["joy"] * 3 + ["neutral"] * 3) * 5)
    out = layers.surface_baseline(tr, y, tr, y, ["joy"], "neutral")
    assert out["joy"] == 1.0


def test_session_table_has_every_method_layer_and_baseline(run_cli, tmp_path):
    s = tmp_path / "s"
    out = run_cli(
        "extract",
        "--model",
        "tiny-llama",
        "--limit",
        8,
        "--test-limit",
        4,
        "--emotions",
        "joy,anger",
        "--method",
        "mean_diff,pca,kmeans,logistic,lda",
        "--session",
        s,
        "--json",
    )
    assert out.exit_code == 0, out.output
    out = run_cli("layers", s, "--json")
    assert out.exit_code == 0, out.output
    res = json.loads(out.output[out.output.index("{") :])
    assert len(res["rows"]) == 5 * 4 * 2  # methods x layers x emotions
    assert res["best_method"] in res["summary"]
    for r in res["rows"]:
        for k in (
            "acc",
            "acc_random",
            "acc_shuffled",
            "acc7",
            "acc7_random",
            "acc7_shuffled",
            "acc_surface",
            "vector_norm",
            "resid_norm",
        ):
            assert k in r
        assert np.isfinite(r["acc_shuffled"])
    from emolab import results
    from emolab.session import Session

    table = results.latest(Session.open(s), "layers", suffix=".csv").path
    assert table.read_text().startswith("method,emotion,layer")
    out = run_cli("layers", s, "--method", "lda")
    assert out.exit_code == 0 and "lda" in out.output


def test_japanese_text_goes_through_the_same_path(run_cli, tmp_path):
    rows = [
        ("今日はとても嬉しい一日でした！", "joy"),
        ("友達に会えて本当に幸せです。", "joy"),
        ("試験に合格して最高の気分だ！", "joy"),
        ("プレゼントをもらって嬉しかった。", "joy"),
        ("彼が亡くなって、とても悲しい。", "sadness"),
        ("一人で泣いてしまった。", "sadness"),
        ("夢が叶わなくて寂しい気持ちだ。", "sadness"),
        ("雨の日はいつも悲しくなる。", "sadness"),
        ("会議は午後三時に始まります。", "neutral"),
        ("駅は公園の北側にあります。", "neutral"),
        ("この本は二百ページあります。", "neutral"),
        ("明日の天気は曇りです。", "neutral"),
    ]
    f = tmp_path / "ja.jsonl"
    f.write_text(
        "".join(
            json.dumps({"text": t, "label": lab}, ensure_ascii=False) + "\n" for t, lab in rows
        ),
        encoding="utf-8",
    )
    s = tmp_path / "s"
    out = run_cli(
        "extract",
        "--model",
        "tiny-llama",
        "--dataset",
        f"jsonl:{f}",
        "--emotions",
        "joy,sadness",
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
    ex = sess.read_json("examples.json")
    texts = {t for _, t in ex["train"] + ex["test"]}
    assert "今日はとても嬉しい一日でした！" in texts
    arrays, _ = sess.load_arrays("activations.safetensors")
    assert np.isfinite(arrays["train"].astype(np.float32)).all()
    assert run_cli("layers", s, "--json").exit_code == 0


def test_layers_out_of_range(run_cli, tmp_path):
    out = run_cli(
        "extract", "--model", "tiny-llama", "--layers", "2-9", "--session", tmp_path / "s"
    )
    assert out.exit_code == 2
    assert "error: layer 4 out of range: the model has layers 0-3" in out.output


def test_dataset_with_other_labels_is_refused(run_cli, tiny_session, tmp_path):
    f = tmp_path / "other.jsonl"
    f.write_text(
        "".join(
            json.dumps({"text": f"a {lab} review number {i} here", "label": lab}) + "\n"
            for i in range(6)
            for lab in ("positive", "negative")
        )
    )
    out = run_cli("layers", tiny_session.path, "--dataset", f"jsonl:{f}")
    assert out.exit_code == 2
    assert "cannot be scored with this session's labels" in out.output
    assert "has no label 'anger'" in out.output


def test_transfer_dataset_scores_without_refit(run_cli, tiny_session, tmp_path):
    labels = ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"]
    f = tmp_path / "other.jsonl"
    f.write_text(
        "".join(
            json.dumps({"text": f"sentence {i} that says {lab} here", "label": lab}) + "\n"
            for i in range(10)
            for lab in labels
        )
    )
    out = run_cli("layers", tiny_session.path, "--dataset", f"jsonl:{f}", "--json")
    assert out.exit_code == 0, out.output
    step = tiny_session.steps()[-1]
    assert (
        f"artifacts/layers-{step['seq']:03d}-jsonl_{str(f).replace('/', '_')}.csv"
        in (step["outputs"])
    )
    assert step["inputs"]["dataset"]["path"] == str(f.resolve())  # its sha256 is recorded


def test_unknown_source_is_refused(tiny_session):
    with pytest.raises(
        BadInput, match="parameter 'source' must be one of comprehension, generation, got 'dreams'"
    ):
        layers.run(tiny_session, {"source": "dreams"})


@pytest.mark.real
def test_real_smollm2_lda_beats_its_baselines(tmp_path):
    """One integration path on SmolLM2: mean pooling, mean_diff + lda at 4 mid layers, 40
    texts per label; the directions must beat both chance baselines by a clear margin."""
    from emolab import plugins
    from emolab.steps import extract
    from emolab.steps.common import new_session

    ok, why = plugins.get("models", "smollm2-135m").available("smollm2-135m")
    if not ok:
        pytest.skip(why)
    s = new_session(tmp_path / "real", "smollm2-135m")
    extract.run(
        s,
        {
            "limit": 40,
            "test_limit": 30,
            "position": "mean",
            "layers": "10,13,16,19",
            "emotions": ["joy", "anger", "sadness"],
            "methods": ["mean_diff", "lda"],
        },
    )
    res = layers.run(s, {})
    for method in ("mean_diff", "lda"):
        peak = res["summary"][method]
        mine = [
            r for r in res["rows"] if r["method"] == method and r["layer"] == peak["peak_layer"]
        ]
        shuffled = np.mean([r["acc_shuffled"] for r in mine])
        rand = np.mean([r["acc_random"] for r in mine])
        assert peak["peak_acc"] > max(shuffled, rand) + 0.1, (method, peak, shuffled, rand)


def test_peak_layer_is_chosen_on_dev_and_reported_on_test():
    """A layer that only looks good on test (planted in the test split alone) is never the
    peak: dev chooses, test reports the accuracy at dev's choice."""
    from emolab import plugins

    x_tr, y_tr, emotions, baseline = synthetic(seed=0, signal_layer=1)
    x_dev, y_dev, _, _ = synthetic(seed=2, signal_layer=1)
    x_te, y_te, _, _ = synthetic(seed=1, signal_layer=1)
    # layer 1 carries a moderate signal everywhere; layer 2 a strong one in test alone
    for k, e in enumerate(emotions):
        for x, y in ((x_tr, y_tr), (x_dev, y_dev), (x_te, y_te)):
            x[y == e, 1, k] -= 2.5
        x_te[y_te == e, 2, k] += 8.0
        x_tr[y_tr == e, 2, k] += 1.0
    vectors = {}
    ext = plugins.get("extractors", "mean_diff")
    for e in emotions:
        dirs = ext.fit(x_tr[y_tr == e], x_tr[y_tr == baseline])
        for layer in range(3):
            vectors.setdefault("mean_diff", {})[f"{e}/blocks.{layer}.hook_resid_post"] = dirs[layer]
    args = (vectors, x_tr, y_tr, x_te, y_te, [0, 1, 2], emotions, baseline, 3, Progress())
    on_test = layers.summarise(layers.analyse(*args, select=(x_te, y_te, "test"))[0], emotions, 3)
    rows, _ = layers.analyse(*args, select=(x_dev, y_dev, "dev"))
    summary = layers.summarise(rows, emotions, 3)["mean_diff"]
    assert on_test["mean_diff"]["peak_layer"] == 2  # what choosing on test would have done
    assert summary["peak_layer"] == 1 and summary["chosen_on"] == "dev"
    at_peak = [r["acc"] for r in rows if r["layer"] == 1]
    assert summary["peak_acc"] == pytest.approx(np.mean(at_peak))  # the test number there
    assert {r["select_split"] for r in rows} == {"dev"}


def test_layers_step_records_its_choices_on_dev(tiny_session):
    res = layers.run(tiny_session, {})
    step = tiny_session.steps()[-1]
    assert step["choices"]["peak_layer/mean_diff"] == {
        "value": res["summary"]["mean_diff"]["peak_layer"],
        "chosen_on": "dev",
    }
    ex = tiny_session.read_json("examples.json")
    assert ex["dev"] and not {t for _, t in ex["dev"]} & {t for _, t in ex["test"]}


def test_replay_checks_what_was_chosen_and_on_which_split(tiny_session, tmp_path):
    from emolab.steps.replay import replay

    layers.run(tiny_session, {})
    lines = tiny_session.log_path.read_text().splitlines()
    ev = json.loads(lines[-1])
    ev["choices"]["peak_layer/mean_diff"]["chosen_on"] = "test"
    lines[-1] = json.dumps(ev)
    tiny_session.log_path.write_text("\n".join(lines) + "\n")
    _, cmp = replay(tiny_session.path, tmp_path / "r")
    bad = [r["what"] for r in cmp.rows if not r["ok"]]
    assert bad == [f"layers#{ev['seq']} choice peak_layer/mean_diff"]
