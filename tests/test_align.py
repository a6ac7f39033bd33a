"""Alignment: known answers on synthetic data, then the step and the CLI on tiny sessions."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy.stats import ortho_group

from emolab import plugins
from emolab.steps import align


def _rotated(n=240, d_a=24, d_b=30, seed=0, noise=0.0):
    """B = A rotated into a wider space (orthonormal columns): the same geometry."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d_a)) * np.linspace(3, 0.5, d_a)
    q = ortho_group.rvs(d_b, random_state=seed)[:, :d_a].T  # [d_a, d_b], orthonormal rows
    b = a @ q + 5.0 + noise * rng.standard_normal((n, d_b))
    return a, b


def _get(name, **kw):
    return plugins.registry().get("aligners", name, **kw)


@pytest.mark.parametrize("name", ["procrustes", "cca"])
def test_rotated_copy_aligns_perfectly_on_held_out_rows(name):
    a, b = _rotated()
    fitted = _get(name, dim=24).fit(a[:160], b[:160])
    assert fitted.score(a[160:], b[160:]) > 0.999
    null = align.held_out_null(
        _get(name, dim=24),
        a[:160],
        b[:160],
        a[160:],
        b[160:],
        20,
        np.random.default_rng(0),
        lambda f, x, y: f.score(x, y),
    )
    assert null.max() < 0.5


def test_procrustes_maps_directions_and_retrieves_pairs():
    a, b = _rotated()
    q = np.linalg.lstsq(a - a.mean(0), b - b.mean(0), rcond=None)[0]
    fitted = _get("procrustes", dim=24).fit(a[:160], b[:160])
    v = np.random.default_rng(1).standard_normal(a.shape[1])
    assert align._cos(fitted.map_direction(v), v @ q) > 0.999
    pair, label = align.nn_accuracy(fitted, a[160:], b[160:], np.arange(80))
    assert pair == 1.0 and label == 1.0


def test_cka_and_rsa_are_one_for_a_rotation_and_beat_their_baseline():
    a, b = _rotated()
    a, b = a - a.mean(0), b - b.mean(0)  # cosine RDMs see offsets; the step centres too
    for name in ("cka", "rsa"):
        comp = _get(name)
        score = comp.score(a[:30], b[:30])
        assert score == pytest.approx(1.0, abs=1e-9)
        null = comp.permutation_baseline(a[:30], b[:30], 50, seed=0)
        assert align.p_value(score, null) <= 1 / 51 + 1e-12


def test_cka_fast_baseline_matches_the_generic_one():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((40, 6)), rng.standard_normal((40, 9))
    from emolab.api import Aligner

    fast = _get("cka").permutation_baseline(a, b, 10, seed=4)
    slow = Aligner.permutation_baseline(_get("cka"), a, b, 10, seed=4)
    np.testing.assert_allclose(fast, slow, rtol=1e-9)


@pytest.mark.parametrize("name", ["procrustes", "cca", "cka"])
def test_unrelated_data_does_not_beat_its_baseline(name):
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((200, 20)), rng.standard_normal((200, 25))
    rng2 = np.random.default_rng(0)
    if name == "cka":
        comp = _get("cka")
        score, null = comp.score(a, b), comp.permutation_baseline(a, b, 100, seed=1)
    else:
        fitted = _get(name, dim=10).fit(a[:140], b[:140])
        score = fitted.score(a[140:], b[140:])
        null = align.held_out_null(
            _get(name, dim=10),
            a[:140],
            b[:140],
            a[140:],
            b[140:],
            100,
            rng2,
            lambda f, x, y: f.score(x, y),
        )
    assert score < np.quantile(null, 0.95)
    assert align.p_value(score, null) > 0.05


def test_gram_cka_matrix_matches_pairwise_cka():
    rng = np.random.default_rng(2)
    xa, xb = rng.standard_normal((30, 3, 8)), rng.standard_normal((30, 2, 5))
    xb[:, 1] = xa[:, 2, :5] * 2
    m = align.gram_cka_matrix(xa, xb)
    cka = _get("cka")
    for i in range(3):
        for j in range(2):
            assert m[i, j] == pytest.approx(cka.score(xa[:, i], xb[:, j]), abs=1e-5)
    assert m[2, 1] > 0.6


def test_a_massive_dimension_hides_shared_geometry_until_features_are_standardised():
    """One huge, structure-free dimension (an attention-sink-like outlier) in A decides raw
    linear CKA; z-scoring each feature brings back the geometry A and B share."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((200, 24))
    b = a @ ortho_group.rvs(24, random_state=3)  # the same geometry, rotated
    a_big = np.concatenate([a, 300 * rng.standard_normal((200, 1))], axis=1)
    raw = align.gram_cka_matrix(a_big[:, None], b[:, None])[0, 0]
    z = align.gram_cka_matrix(a_big[:, None], b[:, None], standardize=True)[0, 0]
    assert raw < 0.1 and z > 0.8
    assert align.top_variance_share(a_big) > 0.9
    sc = align.Scaler(a_big, True)
    v = rng.standard_normal(a_big.shape[1])
    np.testing.assert_allclose(sc.back(sc.direction(v)), v)
    assert np.allclose(sc.rows(a_big).std(0), 1, atol=1e-3)
    off = align.Scaler(a_big, False)
    np.testing.assert_array_equal(off.rows(a_big), a_big)


def test_aligner_input_errors():
    from emolab.errors import BadInput

    with pytest.raises(BadInput, match="differ in length"):
        _get("procrustes").fit(np.zeros((10, 3)), np.zeros((9, 3)))
    with pytest.raises(BadInput, match="at least 3"):
        _get("rsa").score(np.zeros((2, 3)), np.zeros((2, 3)))


# -- the step on tiny sessions ------------------------------------------------------------
@pytest.fixture(scope="module")
def gpt2_session_dir(tmp_path_factory):
    """tiny-gpt2 on the same texts as the shared tiny-llama session."""
    from emolab.steps import extract
    from emolab.steps.common import new_session

    path = tmp_path_factory.mktemp("sessions") / "tiny-gpt2"
    extract.run(new_session(path, "tiny-gpt2"), {"limit": 12, "test_limit": 6})
    return path


def test_align_step_writes_scores_baselines_and_cka_matrix(tiny_session, gpt2_session_dir):
    res = align.run(tiny_session, {"session_b": str(gpt2_session_dir), "draws": 20})
    assert set(res["methods"]) == {"procrustes", "cca", "cka", "rsa"}
    for out in res["methods"].values():
        for val in out.values():
            if isinstance(val, dict) and "score" in val:
                assert 0 < val["p_value"] <= 1 and val["draws"] == 20
    m = np.array(res["cka_layers"]["matrix"])
    assert m.shape == (4, 4) and np.all((m > -1e-6) & (m < 1 + 1e-6))
    assert res["raw_cosine"] is not None  # both tiny models are 64-d
    step = tiny_session.steps()[-1]
    assert step["kind"] == "align" and step["status"] == "ok"
    assert "procrustes/mean_cos_held_out" in step["metrics"]
    art = json.loads(tiny_session.artifact(step["outputs"][0].split("/", 1)[1]).read_text())
    assert art["layer_a"] == res["layer_a"]
    assert (
        tiny_session.artifact(step["outputs"][1].split("/", 1)[1])
        .read_text()
        .startswith("layer_a,b0")
    )


def test_a_session_aligned_with_itself_is_perfect(tiny_session, tiny_session_dir, tmp_path):
    other = tmp_path / "copy"
    shutil.copytree(tiny_session_dir, other)
    res = align.run(
        tiny_session,
        {"session_b": str(other), "draws": 10, "layer_a": 2, "layer_b": 2, "method": "all"},
    )
    assert all(v == pytest.approx(1.0) for v in res["raw_cosine"].values())
    assert res["methods"]["cka"]["cka"]["score"] == pytest.approx(1.0)
    assert res["methods"]["rsa"]["rsa_centroids"]["score"] == pytest.approx(1.0)
    assert res["methods"]["procrustes"]["mean_cos_held_out"]["score"] > 0.999
    assert res["methods"]["procrustes"]["nn_pair_accuracy"]["score"] == 1.0
    assert np.argmax(res["cka_layers"]["matrix"][2]) == 2
    assert res["standardized"] and 0 < res["top_dim_variance_share"]["a"] <= 1
    raw = align.run(
        tiny_session,
        {"session_b": str(other), "draws": 10, "layer_a": 2, "layer_b": 2, "standardize": False},
    )
    assert raw["methods"]["cka"]["cka"]["score"] == pytest.approx(1.0)
    assert not raw["standardized"] and raw["standardize_note"] is None


def test_align_replays(tiny_session, gpt2_session_dir):
    from emolab.session import Session
    from emolab.steps import STEPS

    res = align.run(tiny_session, {"session_b": str(gpt2_session_dir), "draws": 5, "method": "cka"})
    step = Session.open(tiny_session.path).steps()[-1]
    again = STEPS["align"](tiny_session, step["params"])
    assert again["methods"]["cka"]["cka"] == res["methods"]["cka"]["cka"]


def test_cli_align_json(run_cli, tiny_session, gpt2_session_dir):
    r = run_cli(
        "align", tiny_session.path, gpt2_session_dir, "--method", "rsa", "--draws", "5", "--json"
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert list(out["methods"]) == ["rsa"]
    r = run_cli("align", tiny_session.path, gpt2_session_dir, "--method", "cka", "--draws", "5")
    assert r.exit_code == 0 and "permutation" in r.output


def test_cli_align_refuses_different_texts(run_cli, tiny_session, tmp_path):
    from emolab.steps import extract
    from emolab.steps.common import new_session

    path = tmp_path / "fewer"
    extract.run(
        new_session(path, "tiny-gpt2"), {"limit": 5, "test_limit": 6, "emotions": ["joy", "anger"]}
    )
    r = run_cli("align", tiny_session.path, path)
    assert r.exit_code == 2
    assert "hold different train texts" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layer-a", "9"], "layer 9 of session A was not captured"),
        (["--draws", "0"], "parameter 'draws' must be at least 1"),
        (["--method", "nosuch"], "unknown aligner 'nosuch' (known: cca, cka, procrustes, rsa)"),
    ],
)
def test_cli_align_bad_input(run_cli, tiny_session, gpt2_session_dir, args, message):
    r = run_cli("align", tiny_session.path, gpt2_session_dir, *args)
    assert r.exit_code == 2
    assert message in r.output


def test_cli_align_missing_session(run_cli, tiny_session, tmp_path):
    r = run_cli("align", tiny_session.path, tmp_path / "nope")
    assert r.exit_code == 2 and "no such session" in r.output


def test_transfer_steering_runs_mapped_own_and_random(tiny_session, gpt2_session_dir):
    res = align.run(
        tiny_session,
        {
            "session_b": str(gpt2_session_dir),
            "draws": 3,
            "method": "procrustes",
            "transfer": True,
            "transfer_prompts": 1,
            "transfer_judge": "label_logit_shift",
        },
    )
    tr = res["transfer"]
    assert tr["judge"] == "label_logit_shift"
    assert {r["vector"] for r in tr["rows"]} == {"mapped", "own", "random"}
    assert len(tr["rows"]) == 3 * len(res["emotions"])
    for kind in ("mapped", "own", "random"):
        assert np.isfinite(tr["metrics"][f"{kind}/label_logit_shift"])
    assert "transfer/mapped/label_logit_shift" in tiny_session.steps()[-1]["metrics"]


def test_a_registered_third_party_aligner_is_refused_in_one_line(
    plugin_dir, run_cli, tiny_session, gpt2_session_dir
):
    (plugin_dir / "ridge.py").write_text(
        "from emolab.api import Aligner\nfrom emolab.hookspecs import hookimpl\n"
        "class Ridge(Aligner):\n    name = 'ridge'\n    description = 'x'\n"
        "@hookimpl\ndef register_aligners(register):\n    register(Ridge())\n"
    )
    from emolab import plugins

    plugins.reset()
    r = run_cli("align", tiny_session.path, gpt2_session_dir, "--method", "ridge")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
    assert "aligner 'ridge' is registered, but the align step runs only" in r.output
