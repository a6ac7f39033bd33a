"""Alignment: known answers on synthetic data, then the step and the CLI on tiny sessions."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy.stats import ortho_group

from emolab import plugins, tables
from emolab.session import Session
from emolab.steps import align
from emolab.steps import align_scores as scores


def _rotated(n=240, d_a=24, d_b=30, seed=0, noise=0.0):
    """B = A rotated into a wider space (orthonormal columns): the same geometry."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d_a)) * np.linspace(3, 0.5, d_a)
    q = ortho_group.rvs(d_b, random_state=seed)[:, :d_a].T  # [d_a, d_b], orthonormal rows
    b = a @ q + 5.0 + noise * rng.standard_normal((n, d_b))
    return a, b


def _get(name, **kw):
    return plugins.registry().get("aligners", name, **kw)


def _pairs(a, b, n_train=160, emotions=("joy",), seed=1):
    """Synthetic `Pairs` (what the step builds from two sessions): a, b split into train and
    held-out rows, labels cycling over two classes, one emotion vector mapped by lstsq."""
    labels = np.array(["joy", "neutral"] * (len(a) // 2))
    q = np.linalg.lstsq(a - a.mean(0), b - b.mean(0), rcond=None)[0]
    v = np.random.default_rng(seed).standard_normal(a.shape[1])
    return scores.Pairs(
        a[:n_train],
        b[:n_train],
        a[n_train:],
        b[n_train:],
        labels[:n_train],
        labels[n_train:],
        ["joy", "neutral"],
        list(emotions),
        {"joy": v},
        {"joy": v @ q},
    )


@pytest.mark.parametrize("name", ["procrustes", "cca"])
def test_rotated_copy_aligns_perfectly_on_held_out_rows(name):
    a, b = _rotated()
    out = scores.score_aligner(_get(name, dim=24), _pairs(a, b), 20, seed=0)
    key = "mean_cos_held_out" if name == "procrustes" else "mean_corr_held_out"
    assert out[key]["score"] > 0.999 and out[key]["baseline_p95"] < 0.5
    assert out[key]["p_value"] == pytest.approx(1 / 21)
    assert out["nn_pair_accuracy"]["score"] == 1.0 and out["nn_label_accuracy"]["score"] == 1.0
    assert out["scored_on"] == "80 held-out texts (fitted on 160 train texts)"


def test_procrustes_maps_directions_and_cca_says_it_cannot():
    a, b = _rotated()
    data = _pairs(a, b)
    pro = scores.score_aligner(_get("procrustes", dim=24), data, 10, seed=0)
    assert pro["mapped_vector_cos"]["score"] > 0.999
    assert pro["mapped_vector_cos_ceiling"]["joy"] == pytest.approx(1.0, abs=1e-6)
    assert "not_available" not in pro and pro["dim"] == 24
    cca = scores.score_aligner(_get("cca", dim=24), data, 10, seed=0)
    assert "mapped_vector_cos" not in cca
    assert cca["not_available"] == {"mapped_vector_cos": "cca does not map directions"}


def test_the_reach_of_a_map_is_the_share_of_b_it_can_land_in():
    """Procrustes to 5 PCA dimensions reaches only B's top-5 PCA subspace: a vector of B
    outside it has ceiling 0, one inside it ceiling 1."""
    a, b = _rotated()
    fitted = _get("procrustes", dim=5).fit(a, b)
    inside = fitted.pca_b_.components_[0]
    outside = np.linalg.svd(b - b.mean(0))[2][-1]  # B's null direction: no variance
    got = scores.reach(fitted, a.shape[1], b.shape[1], {"in": inside, "out": outside})
    assert got["in"] == pytest.approx(1.0) and got["out"] == pytest.approx(0.0, abs=1e-6)


def test_cka_and_rsa_are_one_for_a_rotation_and_beat_their_baseline():
    a, b = _rotated()
    a, b = a - a.mean(0), b - b.mean(0)  # cosine RDMs see offsets; the step centres too
    for name in ("cka", "rsa"):
        comp = _get(name)
        (score,) = comp.score(a[:30], b[:30]).values()
        assert score == pytest.approx(1.0, abs=1e-9)
        (null,) = comp.permutation_baseline(a[:30], b[:30], 50, seed=0).values()
        assert scores.p_value(score, null) <= 1 / 51 + 1e-12


def test_cka_fast_baseline_matches_the_generic_one():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((40, 6)), rng.standard_normal((40, 9))
    from emolab.api import Aligner

    fast = _get("cka").permutation_baseline(a, b, 10, seed=4)
    slow = Aligner.permutation_baseline(_get("cka"), a, b, 10, seed=4)
    np.testing.assert_allclose(fast["cka"], slow["cka"], rtol=1e-9)


@pytest.mark.parametrize("name", ["procrustes", "cca"])
def test_a_refit_on_a_shuffled_pairing_equals_a_fresh_fit(name):
    """The PCA bases the built-ins keep in `fit_permuted` do not depend on the pairing."""
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((60, 12)), rng.standard_normal((60, 10))
    perm = rng.permutation(60)
    fitted = _get(name, dim=6).fit(a, b)
    kept, fresh = fitted.fit_permuted(a, b, perm), _get(name, dim=6).fit(a, b[perm])
    assert kept.score(a[:20], b[:20]) == pytest.approx(fresh.score(a[:20], b[:20]))


@pytest.mark.parametrize("name", ["procrustes", "cca", "cka"])
def test_unrelated_data_does_not_beat_its_baseline(name):
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((200, 20)), rng.standard_normal((200, 25))
    comp = _get("cka") if name == "cka" else _get(name, dim=10)
    out = scores.score_aligner(comp, _pairs(a, b, n_train=140), 100, seed=1)
    key = {"procrustes": "mean_cos_held_out", "cca": "mean_corr_held_out"}.get(name, "cka")
    assert out[key]["score"] < out[key]["baseline_p95"] and out[key]["p_value"] > 0.05


def test_gram_cka_matrix_matches_pairwise_cka():
    rng = np.random.default_rng(2)
    xa, xb = rng.standard_normal((30, 3, 8)), rng.standard_normal((30, 2, 5))
    xb[:, 1] = xa[:, 2, :5] * 2
    m = scores.gram_cka_matrix(xa, xb)
    cka = _get("cka")
    for i in range(3):
        for j in range(2):
            assert m[i, j] == pytest.approx(cka.score(xa[:, i], xb[:, j])["cka"], abs=1e-5)
    assert m[2, 1] > 0.6


def test_a_massive_dimension_hides_shared_geometry_until_features_are_standardised():
    """One huge, structure-free dimension (an attention-sink-like outlier) in A decides raw
    linear CKA; z-scoring each feature brings back the geometry A and B share."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((200, 24))
    b = a @ ortho_group.rvs(24, random_state=3)  # the same geometry, rotated
    a_big = np.concatenate([a, 300 * rng.standard_normal((200, 1))], axis=1)
    raw = scores.gram_cka_matrix(a_big[:, None], b[:, None])[0, 0]
    z = scores.gram_cka_matrix(a_big[:, None], b[:, None], standardize=True)[0, 0]
    assert raw < 0.1 and z > 0.8
    assert scores.top_variance_share(a_big) > 0.9
    sc = scores.Scaler(a_big, True)
    v = rng.standard_normal(a_big.shape[1])
    np.testing.assert_allclose(sc.back(sc.direction(v)), v)
    assert np.allclose(sc.rows(a_big).std(0), 1, atol=1e-3)
    off = scores.Scaler(a_big, False)
    np.testing.assert_array_equal(off.rows(a_big), a_big)


def test_aligner_input_errors():
    from emolab.errors import BadInput

    with pytest.raises(BadInput, match="differ in length"):
        _get("procrustes").fit(np.zeros((10, 3)), np.zeros((9, 3)))
    with pytest.raises(BadInput, match="at least 3"):
        _get("rsa").score(np.zeros((2, 3)), np.zeros((2, 3)))


# -- the step on tiny sessions ------------------------------------------------------------
def test_align_step_writes_scores_baselines_and_cka_matrix(tiny_session, tiny_gpt2_session_dir):
    res = align.run(tiny_session, {"session_b": str(tiny_gpt2_session_dir), "draws": 20})
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


def test_align_replays(tiny_session, tiny_gpt2_session_dir):
    from emolab.steps import STEPS

    res = align.run(
        tiny_session, {"session_b": str(tiny_gpt2_session_dir), "draws": 5, "method": "cka"}
    )
    step = Session.open(tiny_session.path).steps()[-1]
    again = STEPS["align"](tiny_session, step["params"])
    assert again["methods"]["cka"]["cka"] == res["methods"]["cka"]["cka"]


def test_cli_align_json(run_cli, tiny_session, tiny_gpt2_session_dir):
    r = run_cli(
        "align",
        tiny_session.path,
        tiny_gpt2_session_dir,
        "--method",
        "rsa",
        "--draws",
        "5",
        "--json",
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert list(out["methods"]) == ["rsa"]
    r = run_cli(
        "align", tiny_session.path, tiny_gpt2_session_dir, "--method", "cka", "--draws", "5"
    )
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
def test_cli_align_bad_input(run_cli, tiny_session, tiny_gpt2_session_dir, args, message):
    r = run_cli("align", tiny_session.path, tiny_gpt2_session_dir, *args)
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert message in r.output


def test_cli_align_missing_session(run_cli, tiny_session, tmp_path):
    r = run_cli("align", tiny_session.path, tmp_path / "nope")
    assert r.exit_code == 2 and "no such session" in r.output


def test_transfer_steering_runs_mapped_own_and_random(tiny_session, tiny_gpt2_session_dir):
    res = align.run(
        tiny_session,
        {
            "session_b": str(tiny_gpt2_session_dir),
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


RAW_COORDS = """
import numpy as np
from emolab.api import Aligner, Param, paired_rows
from emolab.hookspecs import hookimpl


class RawCoords(Aligner):
    name = "raw_coords"
    description = "the first k coordinates of both models, as they are (a no-map baseline)"
    params = (Param("k", int, 8, "coordinates kept", min=1),)

    def fit(self, a, b):
        paired_rows(a, b)
        return self

    def transform_a(self, a):
        return np.asarray(a)[:, : self.k]

    def transform_b(self, b):
        return np.asarray(b)[:, : self.k]

    def score(self, a, b):
        x, y = self.transform_a(a), self.transform_b(b)
        cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1) + 1e-12)
        return {"mean_cos": float(cos.mean())}


@hookimpl
def register_aligners(register):
    register(RawCoords())
"""


def test_a_third_party_aligner_runs_through_the_contract_alone(
    plugin_dir, run_cli, tiny_session, tiny_session_dir, tmp_path
):
    """A single-file aligner that learns a map but cannot map directions: the step scores it
    like a built-in, reports the mapped-vector row as not available, and refuses it for
    --transfer in one line."""
    (plugin_dir / "raw_coords.py").write_text(RAW_COORDS)
    plugins.reset()
    other = tmp_path / "copy"
    shutil.copytree(tiny_session_dir, other)
    r = run_cli(
        "align", tiny_session.path, other, "--method", "raw_coords,cka", "--draws", "5",
        "--param", "raw_coords.k=16", "--layer-a", "2", "--layer-b", "2",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "raw_coords: mapped_vector_cos n/a (raw_coords does not map directions)" in text
    step = tiny_session.steps()[-1]
    assert step["params"]["method"] == ["raw_coords", "cka"]
    assert step["params"]["aligner_params"] == {"raw_coords": {"k": 16}, "cka": {}}
    assert step["metrics"]["raw_coords/mean_cos_held_out"] == pytest.approx(1.0)
    assert step["metrics"]["raw_coords/nn_pair_accuracy"] == 1.0
    frame = tables.align(tiny_session)
    na = frame[frame["measure"] == "mapped_vector_cos"]
    assert set(na["method"]) == {"raw_coords", "cka"} and na["score"].isna().all()
    manifest = Session.open(tiny_session.path).manifest
    assert manifest["plugins"]["aligners:raw_coords"]["plugin"] == "raw_coords"
    for args, message in [
        (
            ["--method", "raw_coords", "--transfer", "--transfer-aligner", "raw_coords"],
            "aligner 'raw_coords' cannot map directions, so it cannot carry a vector for "
            "--transfer (aligners that can: procrustes)",
        ),
        (["--method", "raw_coords", "--param", "k=0"], "parameter 'k' must be at least 1"),
        (["--method", "all", "--param", "k=3"], "--param k: name its aligner"),
        (
            ["--method", "cka", "--param", "raw_coords.k=3"],
            "parameters given for aligner 'raw_coords', which this run does not use",
        ),
    ]:
        r = run_cli("align", tiny_session.path, other, *args)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
        assert message in r.output


def test_an_aligner_breaking_the_contract_is_one_line_naming_it(plugin_dir, run_cli, tiny_session):
    (plugin_dir / "raw_coords.py").write_text(
        RAW_COORDS.replace('return {"mean_cos": float(cos.mean())}', "return float(cos.mean())")
    )
    plugins.reset()
    r = run_cli("align", tiny_session.path, tiny_session.path, "--method", "raw_coords")
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert r.exit_code == 2 and errors == [
        "error: aligner 'raw_coords' (plugin raw_coords file) returned float from score, "
        "not {metric: value}"
    ], r.output
