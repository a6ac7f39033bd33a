"""Context-agnostic directions on the tiny Llama: per-template fits, their consistency, the
shared vector set, and the command's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emolab.steps import contexts


def test_one_template_twice_gives_the_extracted_direction(tiny_session):
    """Two identical templates agree exactly, and their shared direction is the session's
    own mean_diff direction (same texts, same position)."""
    res = contexts.run(
        tiny_session, {"templates": ["{text}", "{text}"], "layers": "1,3", "emotions": ["joy"]}
    )
    for layer in (1, 3):
        s = res["consistency"][f"joy/{layer}"]
        assert s["mean_pairwise_cosine"] == pytest.approx(1.0, abs=1e-5)
    for r in res["rows"]:
        assert r["cos_to_shared"] == pytest.approx(1.0, abs=1e-5)
        assert r["test_acc_own"] == r["test_acc_shared"]
    shared, meta = tiny_session.load_vectors("context_agnostic")
    own, _ = tiny_session.load_vectors()
    for layer in (1, 3):
        key = f"joy/blocks.{layer}.hook_resid_post"
        a, b = shared[key], own[key]
        assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) == pytest.approx(1, abs=1e-4)
    assert meta.method == "context_agnostic" and meta.layers == (1, 3)
    assert "context_agnostic" in tiny_session.methods()


def test_default_templates_measure_consistency_and_steer(tiny_session):
    from emolab.steps import steer

    res = contexts.run(tiny_session, {"layers": [2], "limit": 6, "test_limit": 3})
    n_t = len(res["templates"])
    assert n_t == 4 and len(res["rows"]) == 6 * n_t
    for s in res["consistency"].values():
        assert -1 <= s["min_pairwise_cosine"] <= s["mean_pairwise_cosine"] <= 1
    for r in res["rows"]:
        assert 0 <= r["test_acc_own"] <= 1 and 0 <= r["test_acc_shared"] <= 1
        assert r["cos_to_shared"] > 0  # the mean of unit vectors leans toward each of them
    step = tiny_session.steps()[-1]
    assert step["kind"] == "contexts" and "mean_pairwise_cosine/joy/2" in step["metrics"]
    out = steer.run(
        tiny_session,
        {
            "emotion": "joy",
            "method": "context_agnostic",
            "layer": 2,
            "alpha": 0.5,
            "prompts": ["Describe the room."],
            "max_new_tokens": 3,
        },
    )
    assert out["steered"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--template", "{text}"], "at least two templates"),
        (["--template", "{text}", "--template", "no slot"], "must hold '{text}' exactly once"),
        (["--template", "{text}", "--template", "{text} {x}"], "braces other than"),
        (["--emotions", "glee"], "unknown emotion 'glee'"),
        (["--layers", "9"], "out of range"),
    ],
)
def test_cli_contexts_bad_input(run_cli, tiny_session, args, message):
    r = run_cli("contexts", tiny_session.path, *args)
    assert r.exit_code == 2, r.output
    assert message in r.output


def test_cli_contexts_table_and_json(run_cli, tiny_session):
    r = run_cli("contexts", tiny_session.path, "--layers", "3", "--limit", "4", "--test-limit", "2")
    assert r.exit_code == 0, r.output
    assert "mean cos" in r.output and "saved as vector set 'context_agnostic'" in r.output
    r = run_cli(
        "contexts",
        tiny_session.path,
        "--layers",
        "3",
        "--emotions",
        "joy",
        "--limit",
        "4",
        "--test-limit",
        "2",
        "--json",
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["emotions"] == ["joy"]
