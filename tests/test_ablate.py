"""Ablation experiments on the tiny session: comma vs random control, directional patching,
directional ablation, head removal; bad input gives one line."""

import json

import pytest

from emolab.errors import BadInput, UnknownName
from emolab.steps import ablate


def test_comma_ablation_reports_all_three_conditions(tiny_session):
    res = ablate.run(tiny_session, {"kind": "comma", "control_seeds": 2})
    m = res["metrics"]
    assert set(res["conditions"]) == {"none", "commas", "random#0", "random#1"}
    for key in ("accuracy_none", "accuracy_commas", "accuracy_random"):
        assert 0 <= m[key] <= 1
    assert m["logit_diff_commas"] != m["logit_diff_none"]
    assert res["n_texts"] > 10
    art = tiny_session.artifact(f"ablate-comma-{tiny_session.steps()[-1]['seq']:03d}.json")
    assert json.loads(art.read_text())["metrics"] == pytest.approx(m)


def test_patch_flip_rates_for_sentiment_and_random(tiny_session):
    res = ablate.run(tiny_session, {"kind": "patch", "layers": "1-2"})
    m = res["metrics"]
    for name in ("sentiment", "random"):
        assert 0 <= m[f"flip_rate/{name}"] <= 1
    assert res["layers"] == [1, 2]


def test_direction_ablation(tiny_session):
    res = ablate.run(tiny_session, {"kind": "direction", "limit": 3, "layers": "1-3"})
    m = res["metrics"]
    assert {"accuracy_none", "accuracy_emotion", "accuracy_random"} <= set(m)
    assert set(res["emotions"]) == {"anger", "disgust", "fear", "joy", "sadness", "surprise"}
    assert m["label_margin_emotion"] != m["label_margin_none"]


def test_head_ablation_changes_projection(tiny_session):
    res = ablate.run(tiny_session, {"kind": "head", "heads": "0.1,1.2", "layer": 2, "limit": 3})
    row = res["emotions"]["joy"]
    assert row["projection"]["clean"] != row["projection"]["ablated"]
    assert "projection_change/joy" in res["metrics"]


def test_bad_input(tiny_session):
    with pytest.raises(UnknownName, match="unknown head '1.9'"):
        ablate.run(tiny_session, {"kind": "head", "heads": "1.9"})
    with pytest.raises(BadInput, match="needs --heads"):
        ablate.run(tiny_session, {"kind": "head"})
    with pytest.raises(BadInput, match="parameter 'kind' must be one of comma, patch"):
        ablate.run(tiny_session, {"kind": "neurons"})
    assert not [e for e in tiny_session.steps() if e["kind"] == "ablate"]


def test_ablate_cli(run_cli, tiny_session):
    r = run_cli("ablate", tiny_session.path, "--kind", "head", "--heads", "7.0")
    assert r.exit_code == 2 and "unknown head '7.0'" in r.output
    assert "Traceback" not in r.output
    r = run_cli("ablate", tiny_session.path, "--kind", "head", "--heads", "x")
    assert r.exit_code == 2 and "bad head 'x'" in r.output
    r = run_cli("ablate", tiny_session.path, "--kind", "comma", "--control-seeds", "1")
    assert r.exit_code == 0, r.output
    assert "comma ablation" in r.output and "random positions" in r.output
    r = run_cli(
        "ablate", tiny_session.path, "--kind", "head", "--heads", "1.0", "--limit", "2", "--json"
    )
    assert r.exit_code == 0 and "projection_change/joy" in json.loads(r.output)["metrics"]
