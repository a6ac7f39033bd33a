"""The demo workflow on tiny-llama: choices on dev, numbers on test prompts, controls."""

import pytest

from emolab.errors import BadInput
from emolab.steps import demo
from emolab.steps.common import new_session


def test_demo_chooses_on_dev_and_reports_on_test(tmp_path, small_judge):
    s = new_session(tmp_path / "d", "tiny-llama")
    prompts = ["Describe a chair.", "Tell me about tea.", "Write about rain.", "Name a city."]
    res = demo.run(
        s,
        {
            "limit": 6,
            "prompts": prompts,
            "max_new_tokens": 3,
            "alphas": [0.5],
            "judge_train_limit": small_judge,
        },
    )
    assert res["test_prompts"] == [prompts[1], prompts[3]]
    kinds = [e["kind"] for e in s.steps()]
    assert kinds == ["extract", "layers", "sweep", "steer", "steer"]
    for row, emo in zip(res["summary"], ["joy", "sadness"], strict=True):
        best = res["sweep"]["best"][emo]
        assert row["emotion"] == emo and row["chosen_on"] == "sweep, dev prompts"
        assert (row["layer"], row["alpha"]) == (best["layer"], best["alpha"])
        for k in ("success", "success_baseline", "success_random"):
            assert 0 <= row[k] <= 1
    assert "random direction" in res["how_to_read"]


def test_demo_cli_prints_the_result_table(run_cli, tmp_path, small_judge):
    r = run_cli(
        "demo", "--model", "tiny-llama", "--limit", "5", "--judge-train-limit", small_judge,
        "--session", tmp_path / "c",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "not used for any choice" in r.output and "How to read it" in r.output
    assert "…" not in r.output  # every table fits 80 columns in blocks, nothing cut


def test_demo_bad_input(tmp_path):
    s = new_session(tmp_path / "b", "tiny-llama")
    with pytest.raises(BadInput, match="at least 2 prompts"):
        demo.run(s, {"prompts": ["one"]})
    with pytest.raises(BadInput, match="limit"):
        demo.run(s, {"limit": 1})
