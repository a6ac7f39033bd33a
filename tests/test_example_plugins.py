"""The example plugins under plugins/ (angular-steering intervention, lexicon evaluator,
ridge aligner): each installs with `emolab install`, shows in `emolab plugins`, and runs end
to end from the CLI, from Python (and the ridge aligner from the TUI), by name, through the
same contracts as the built-ins."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def installing(package: str, folder: Path):
    """`emolab install` of a copy of plugins/<package> (nothing is built in the repository);
    uninstalled afterwards."""
    if installed(package):
        pytest.skip(f"{package} is already installed in this environment")
    dst = folder / package
    shutil.copytree(
        ROOT / "plugins" / package,
        dst,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    try:
        res = emolab("install", dst, "--no-deps")
        assert res.returncode == 0, res.stderr
        yield res
    finally:
        if installed(package):
            subprocess.run(
                [sys.executable, "-m", "pip", "uninstall", "-y", package],
                capture_output=True,
                stdin=subprocess.DEVNULL,
            )


@pytest.fixture
def install(tmp_path):
    """`install("emolab-angular")` -> `emolab install` of a copy; uninstalled afterwards."""
    with contextlib.ExitStack() as stack:
        yield lambda package: stack.enter_context(installing(package, tmp_path))


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


# -- emolab-ridge: a third-party aligner ---------------------------------------------------
def test_ridge_closed_form_is_the_normal_equations_and_alpha_is_checked():
    mod = source_module("emolab-ridge", "emolab_ridge")
    rng = np.random.default_rng(1)
    a = rng.standard_normal((120, 10))
    w = rng.standard_normal((10, 14))
    b = a @ w + 3.0 + 0.5 * rng.standard_normal((120, 14))
    ac, bc = a - a.mean(0), b - b.mean(0)
    for alpha in (0.1, 10.0, 1000.0):
        want = np.linalg.solve(ac.T @ ac + alpha * np.eye(10), ac.T @ bc)
        fitted = mod.RidgeMap(alpha=alpha).fit(a, b)
        np.testing.assert_allclose(fitted.weights_, want, atol=1e-10)
        np.testing.assert_allclose(fitted.map_direction(a[0]), a[0] @ want, atol=1e-10)
    exact = mod.RidgeMap(alpha=1e-9).fit(a[:80], a[:80] @ w)
    assert exact.score(a[80:], a[80:] @ w) == pytest.approx({"mean_cos": 1.0, "r2": 1.0})
    # more features than rows: alpha 0 is the minimum-norm least-squares map
    wide_a, wide_b = rng.standard_normal((8, 20)), rng.standard_normal((8, 5))
    np.testing.assert_allclose(
        mod.RidgeMap(alpha=0.0).fit(wide_a, wide_b).weights_,
        np.linalg.pinv(wide_a - wide_a.mean(0)) @ (wide_b - wide_b.mean(0)),
        atol=1e-10,
    )
    perm = rng.permutation(120)
    kept = mod.RidgeMap(alpha=2.0).fit(a, b).fit_permuted(a, b, perm)
    np.testing.assert_allclose(kept.weights_, mod.RidgeMap(alpha=2.0).fit(a, b[perm]).weights_)
    with pytest.raises(Exception, match="ridge: parameter 'alpha' must be at least 0.0, got -1"):
        mod.RidgeMap(alpha=-1)


@pytest.fixture(scope="module")
def ridge(tmp_path_factory):
    """emolab-ridge installed with `emolab install` for this module's tests."""
    with installing("emolab-ridge", tmp_path_factory.mktemp("ridge")) as res:
        yield res


RIDGE = {"EMOLAB_LOAD_PLUGINS": "ridge"}


def test_ridge_plugin_installs_and_aligns_from_the_cli(ridge, tiny_session, tiny_gpt2_session_dir):
    assert "new plugins: ridge" in ridge.stdout
    row = listed("ridge")
    assert row["package"] == "emolab-ridge" and row["version"] == "0.1.0"
    assert row["components"] == {"aligners": ["ridge"]} and row["error"] is None
    shown = emolab("plugins", env=RIDGE)
    assert shown.returncode == 0 and "aligners: ridge" in shown.stdout
    args = ["align", tiny_session.path, tiny_gpt2_session_dir, "--draws", "5"]
    res = emolab(*args, "--method", "ridge", "--param", "alpha=10", "--json", env=RIDGE)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    (ridge_out,) = out["methods"].values()
    assert ridge_out["params"] == {"alpha": 10.0}
    for key in ("mean_cos_held_out", "r2_held_out", "nn_pair_accuracy", "mapped_vector_cos"):
        assert 0 < ridge_out[key]["p_value"] <= 1 and ridge_out[key]["draws"] == 5
    assert set(ridge_out["mapped_vector_cos_ceiling"]) == set(out["emotions"])
    table = emolab(*args, "--method", "procrustes,ridge", "--param", "ridge.alpha=3", env=RIDGE)
    assert table.returncode == 0 and "r2_held_out" in table.stdout
    for extra, message in [
        (
            ["--method", "nosuch"],
            "error: unknown aligner 'nosuch' (known: cca, cka, procrustes, ridge, rsa)",
        ),
        (
            ["--method", "ridge", "--param", "alpha=-1"],
            "error: ridge: parameter 'alpha' must be at least 0.0, got -1.0",
        ),
        (
            ["--method", "ridge", "--param", "alpah=1"],
            "error: ridge has no parameter 'alpah' (has: alpha)",
        ),
    ]:
        bad = emolab(*args, *extra, env=RIDGE)
        assert bad.returncode == 2 and bad.stderr.strip() == message, bad.stderr


def test_ridge_plugin_aligns_and_transfers_from_the_python_api(
    ridge, load_plugins, tiny_session, tiny_gpt2_session_dir
):
    import emolab

    load_plugins("ridge")
    lab = emolab.open(tiny_session.path)
    res = lab.run(
        "align",
        session_b=tiny_gpt2_session_dir,
        method=["cca", "ridge"],
        aligner_params={"ridge": {"alpha": 5}},
        draws=5,
        transfer=True,
        transfer_aligner="ridge",
        transfer_prompts=1,
        transfer_judge="label_logit_shift",
    )
    assert res["transfer"]["aligner"] == "ridge"
    assert {r["vector"] for r in res["transfer"]["rows"]} == {"mapped", "own", "random"}
    frame = lab.table("align")
    ridge_rows = frame[frame["method"] == "ridge"].set_index("measure")
    assert {"mean_cos_held_out", "r2_held_out", "mapped_vector_cos"} <= set(ridge_rows.index)
    assert ridge_rows["score"].notna().all()
    cca = frame[(frame["method"] == "cca") & (frame["measure"] == "mapped_vector_cos")]
    assert cca["score"].isna().all() and list(cca["note"]) == ["cca does not map directions"]
    step = lab.session.steps()[-1]
    assert step["params"]["aligner_params"]["ridge"] == {"alpha": 5.0}
    assert step["plugins"]["aligners:ridge"]["package"] == "emolab-ridge"


def test_ridge_plugin_aligns_from_the_tui(
    ridge, load_plugins, tiny_session_dir, tiny_gpt2_session_dir, tmp_path, monkeypatch
):
    from test_tui import drive, settle

    from emolab.session import Session
    from emolab.tui.app import EmolabApp

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_session_dir, tmp_path / "sessions" / "tiny")
    shutil.copytree(tiny_gpt2_session_dir, tmp_path / "sessions" / "tiny-gpt2")
    reg = load_plugins("ridge")

    async def script(app, pilot):
        await pilot.press("1", "down", "a")
        form = app.screen
        choices = [v for _, v in form.query_one("#f-aligner")._options]
        assert choices == ["all", *reg.names("aligners")] and "ridge" in choices
        form.query_one("#f-aligner").value = "ridge"
        form.query_one("#f-params").value = "alpha=-1"
        await pilot.click("#start")
        error = str(form.query_one("#form-error").render())
        assert error == "ridge: parameter 'alpha' must be at least 0.0, got -1.0"
        form.query_one("#f-params").value = "alpha=10"
        form.query_one("#f-draws").value = "5"
        form.query_one("#f-draws").focus()
        await pilot.press("enter")  # enter in a field starts, as the start button does
        await settle(app, pilot)
        assert app.work.get("message", "").startswith("aligned: ridge mean_cos_held_out"), app.work

    drive(EmolabApp("sessions/tiny", root="sessions"), script)
    step = Session.open("sessions/tiny").steps()[-1]
    assert step["kind"] == "align" and step["status"] == "ok"
    assert step["params"]["method"] == ["ridge"]
    assert step["params"]["aligner_params"] == {"ridge": {"alpha": 10.0}}
    assert "ridge/r2_held_out" in step["metrics"]
