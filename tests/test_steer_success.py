"""steer: the default layer/alpha come from dev-made choices; success beside its controls."""

import pytest

from emolab.steps import layers, steer, sweep


def test_default_setting_follows_the_log_choices(tiny_session):
    n = tiny_session.manifest["model"]["layers"]
    assert steer.default_setting(tiny_session, "joy")["layer"] == n * 2 // 3
    res = layers.run(tiny_session, {})
    got = steer.default_setting(tiny_session, "joy")
    assert got == {
        "layer": res["summary"]["mean_diff"]["peak_layer"],
        "alpha": steer.FALLBACK_ALPHA,
        "span": 1,
        "chosen_on": "layers, dev",
    }
    from emolab.steps.shared import default_layer

    assert default_layer(tiny_session) == got["layer"]


def test_steer_success_beside_controls_and_sweep_choice(tiny_session, small_judge):
    grid = {
        "emotions": ["joy"],
        "layers": [1, 2],
        "alphas": [0.5],
        "prompts": ["Tell me about your day.", "Describe the weather."],
        "max_new_tokens": 4,
        "judge_train_limit": small_judge,
    }
    best = sweep.run(tiny_session, grid)["best"]["joy"]
    res = steer.run(
        tiny_session,
        {
            "emotion": "joy",
            "max_new_tokens": 4,
            "prompts": ["Write a line about tea.", "Describe a chair."],
            "success": True,
            "judge_train_limit": small_judge,
        },
    )
    assert (res["params"]["layer"], res["params"]["alpha"]) == (best["layer"], best["alpha"])
    assert res["choices"]["layer"]["chosen_on"] == "sweep, dev prompts"
    m = res["metrics"]
    for k in ("success", "success_baseline", "success_random"):
        assert k in m and 0 <= m[k] <= 1
    assert len(res["random"]) == 2 and res["random"] != res["steered"]
    step = tiny_session.steps()[-1]
    assert step["params"]["layer"] is None and step["params"]["alpha"] is None
    assert step["choices"]["alpha"]["value"] == best["alpha"]
    assert step["metrics"]["success"] == m["success"]


def test_steer_cli_prints_success_and_choice(run_cli, tiny_session, small_judge):
    r = run_cli(
        "steer", tiny_session.path, "--emotion", "joy", "--max-new-tokens", "3", "--success",
        "--judge-train-limit", small_judge, "--prompt", "Describe a chair.",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "success" in r.output and "random direction" in r.output
    assert "chosen on: default" in r.output


def test_steer_unknown_judge_label_is_one_line(tiny_session, small_judge):
    from emolab.errors import EmolabError

    with pytest.raises(EmolabError):
        steer.run(tiny_session, {"emotion": "glee", "success": True})
