"""Extraction options of issue 14: the dataset's own labels, the dev split, contrasts."""

import json

import numpy as np
import pytest

from emolab.steps import extract
from emolab.steps.common import new_session


def test_tigges_without_emotions_uses_its_own_labels(run_cli, tmp_path):
    s = tmp_path / "t"
    r = run_cli(
        "extract", "--model", "tiny-llama", "--dataset", "tigges-reviews", "--limit", "4",
        "--test-limit", "3", "--session", s, "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    meta = json.loads((s / "log.jsonl").read_text().splitlines()[-1])["params"]
    assert meta["emotions"] == ["positive"] and meta["baseline"] == "negative"


def test_bad_dev_limit_is_one_line(run_cli, tmp_path):
    r = run_cli("extract", "--model", "tiny-llama", "--dev-limit", "0", "--session", tmp_path / "s")
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_bad_contrast_is_one_line(tmp_path):
    from emolab.errors import BadInput

    s = new_session(tmp_path / "s", "tiny-llama")
    with pytest.raises(
        BadInput, match="parameter 'contrast' must be one of baseline, others, all, got 'sideways'"
    ):
        extract.run(s, {"contrast": "sideways", "limit": 3, "test_limit": 2})


@pytest.mark.parametrize("contrast", ["others", "all"])
def test_contrasts_fit_against_other_rows(tmp_path, contrast):
    """mean_diff with contrast=others is the emotion's mean minus the other emotions' mean;
    with all, minus the mean of every train text: recomputed here from the saved activations."""
    s = new_session(tmp_path / contrast, "tiny-llama")
    extract.run(
        s,
        {"limit": 5, "test_limit": 2, "emotions": ["joy", "anger"], "contrast": contrast},
    )
    arrays, meta = s.load_arrays("activations.safetensors")
    assert meta.contrast == contrast
    y = np.array([lab for lab, _ in s.read_json("examples.json")["train"]])
    x = arrays["train"].astype(np.float32)
    vecs, vmeta = s.load_vectors("mean_diff")
    assert vmeta.contrast == contrast
    neg = x[y != "joy"] if contrast == "others" else x
    want = x[y == "joy"].mean(0) - neg.mean(0)
    got = vecs["joy/blocks.2.hook_resid_post"]
    # activations are stored as float16, the fit ran on float32
    np.testing.assert_allclose(got, want[2], rtol=0.02, atol=0.02 * np.abs(want[2]).max())
    assert "dev" in arrays and len(s.read_json("examples.json")["dev"]) == 3 * 2
