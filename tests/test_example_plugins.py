"""The example plugins under plugins/ (angular-steering intervention, lexicon evaluator):
each installs with `emolab install`, shows in `emolab plugins`, and runs end to end from the
CLI and from Python, by name, through the same contracts as the built-ins."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from emolab.api import HookContext, Run

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from test_plugins_ecosystem import emolab, installed  # noqa: E402


def source_module(package: str, module: str):
    """The plugin's module straight from its folder (no install): for its unit checks."""
    path = ROOT / "plugins" / package / module / "__init__.py"
    spec = importlib.util.spec_from_file_location(f"example_{module}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_angular_steering_rotates_by_the_angle_and_keeps_the_norm(tiny_model):
    mod = source_module("emolab-angular", "emolab_angular")
    rng = np.random.default_rng(0)
    v = rng.standard_normal(tiny_model.d_model).astype(np.float32)
    inter = mod.AngularSteering(layer=1, angle=20)
    ((name, fn),) = inter.hooks(tiny_model, vector=v)
    assert name == "blocks.1.hook_resid_post"
    act = torch.tensor(rng.standard_normal((2, 5, tiny_model.d_model)), dtype=torch.float32)
    out = fn(act, HookContext(name))
    u = torch.tensor(v / np.linalg.norm(v))
    before = torch.rad2deg(torch.arccos((act @ u) / act.norm(dim=-1)))
    after = torch.rad2deg(torch.arccos(((out @ u) / out.norm(dim=-1)).clamp(-1, 1)))
    assert torch.allclose(out.norm(dim=-1), act.norm(dim=-1), rtol=1e-5)
    assert torch.allclose(after, torch.clamp(before - 20, min=0), atol=1e-2)
    with pytest.raises(Exception, match="'angle' must be at most 180.0"):
        mod.AngularSteering(angle=200)


def test_lexicon_scores_emotion_words():
    mod = source_module("emolab-lexicon", "emolab_lexicon")
    ev = mod.Lexicon()
    run = Run(None, ["p", "q"], ["the room is plain", "a chair"], ["so happy and glad", "a chair"])
    m = ev.evaluate(
        Run(run.model, run.prompts, run.baseline_texts, run.steered_texts, (), (), "joy")
    )
    assert m["top_is_target"] == 0.5 and m["p_target_rise"] > 0 and m["lexicon_hits"] == 1.0
    with pytest.raises(Exception, match="the lexicon has no 'glee' words"):
        ev.evaluate(Run(None, ["p"], ["x"], ["y"], (), (), "glee"))


@pytest.fixture
def install(tmp_path):
    """`install("emolab-angular")` -> `emolab install` of a copy; uninstalled afterwards."""
    done = []

    def go(package: str) -> subprocess.CompletedProcess:
        if installed(package):
            pytest.skip(f"{package} is already installed in this environment")
        dst = tmp_path / package
        shutil.copytree(
            ROOT / "plugins" / package,
            dst,
            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
        )
        done.append(package)
        res = emolab("install", dst, "--no-deps")
        assert res.returncode == 0, res.stderr
        return res

    yield go
    for package in done:
        if installed(package):
            subprocess.run(
                [sys.executable, "-m", "pip", "uninstall", "-y", package],
                capture_output=True,
                stdin=subprocess.DEVNULL,
            )


def listed(ep: str) -> dict:
    rows = json.loads(emolab("plugins", "--json", env={"EMOLAB_LOAD_PLUGINS": ep}).stdout)
    return next(r for r in rows if r["name"] == ep)


def test_angular_plugin_installs_and_steers_from_cli_and_python(
    install, tiny_session, load_plugins
):
    res = install("emolab-angular")
    assert "new plugins: angular" in res.stdout
    row = listed("angular")
    assert row["package"] == "emolab-angular" and row["error"] is None
    assert row["components"] == {"interventions": ["angular_steering"]}
    env = {"EMOLAB_LOAD_PLUGINS": "angular"}
    args = ["steer", tiny_session.path, "--emotion", "joy", "--layer", "2", "--prompt", "Hi."]
    args += ["--max-new-tokens", "3", "--intervention", "angular_steering", "--json"]
    res = emolab(*args, "--param", "angle=45", env=env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["params"]["intervention_params"] == {"angle": "45"}
    bad = emolab(*args, "--param", "angle=wide", env=env)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: angular_steering: parameter 'angle' must be float, got 'wide'"
    )
    reg = load_plugins("angular")
    assert reg.plugin_of("interventions", "angular_steering").package == "emolab-angular"
    from emolab.steps import sweep

    grid = sweep.run(
        tiny_session,
        {
            "emotions": ["joy"],
            "layers": [1, 2],
            "alphas": [0.0],
            "prompts": ["Describe the room."],
            "max_new_tokens": 3,
            "intervention": "angular_steering",
            "intervention_params": {"angle": 60},
            "judge_evaluator": "label_logit_shift",
        },
    )
    assert [(r["intervention"], r["layer"]) for r in grid["rows"]] == [
        ("angular_steering", 1),
        ("angular_steering", 2),
    ]
    assert tiny_session.manifest["plugins"]["interventions:angular_steering"]["package"] == (
        "emolab-angular"
    )


def test_lexicon_plugin_installs_and_judges_from_cli_and_python(
    install, tiny_session, load_plugins
):
    install("emolab-lexicon")
    row = listed("lexicon")
    assert row["components"] == {"evaluators": ["lexicon"]} and row["version"] == "0.1.0"
    env = {"EMOLAB_LOAD_PLUGINS": "lexicon"}
    args = ["steer", tiny_session.path, "--emotion", "joy", "--layer", "2", "--prompt", "Hi."]
    res = emolab(*args, "--max-new-tokens", "3", "--evaluators", "lexicon", "--json", env=env)
    assert res.returncode == 0, res.stderr
    assert 0.0 < json.loads(res.stdout)["metrics"]["p_target"] <= 1.0
    res = emolab(
        "sweep",
        tiny_session.path,
        "--emotions",
        "joy",
        "--layers",
        "2",
        "--alphas",
        "0.5",
        "--max-new-tokens",
        "3",
        "--judge",
        "lexicon",
        "--json",
        env=env,
    )
    assert res.returncode == 0, res.stderr
    (cell,) = json.loads(res.stdout)["rows"]
    assert 0.0 < cell["p_target"] <= 1.0 and cell["p_target_minilm"] != cell["p_target_minilm"]
    load_plugins("lexicon")
    from emolab.steps import steer

    out = steer.run(
        tiny_session,
        {
            "emotion": "joy",
            "layer": 1,
            "prompts": ["Hi."],
            "max_new_tokens": 2,
            "evaluators": ["lexicon", "label_logit_shift"],
        },
    )
    assert {"p_target", "top_is_target", "label_logit_shift"} <= set(out["metrics"])
