"""docs/plugins.md's aligner example, run as the single-file plugin it says it is."""

import re
from pathlib import Path

import numpy as np
import pytest

from emolab import plugins
from emolab.steps import align

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def aligner_example() -> str:
    section = DOC.read_text().split("### `register_aligners(register)`", 1)[1].split("\n### ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def test_the_documented_aligner_runs_through_the_align_step(
    plugin_dir, tiny_session, tiny_gpt2_session_dir
):
    (plugin_dir / "lstsq.py").write_text(aligner_example())
    reg = plugins.registry()
    assert reg.plugins["lstsq"].error is None and "lstsq" in reg.names("aligners")
    res = align.run(
        tiny_session,
        {
            "session_b": str(tiny_gpt2_session_dir),
            "method": "lstsq,procrustes",
            "aligner_params": {"lstsq": {"k": "8"}},
            "draws": 5,
        },
    )
    out = res["methods"]["lstsq"]
    assert out["params"] == {"k": 8} and out["dim"] == tiny_session.manifest["model"]["d_model"]
    for key in ("mean_cos_held_out", "nn_pair_accuracy", "nn_label_accuracy", "mapped_vector_cos"):
        assert np.isfinite(out[key]["score"]) and out[key]["draws"] == 5
    # a rank-8 map reaches at most an 8-dimensional part of B
    assert all(0 < c < 1 for c in out["mapped_vector_cos_ceiling"].values())
    with pytest.raises(Exception, match="lstsq: parameter 'k' must be at least 1, got 0"):
        align.run(
            tiny_session,
            {"session_b": str(tiny_gpt2_session_dir), "method": "lstsq",
             "aligner_params": {"lstsq": {"k": 0}}},
        )  # fmt: skip
