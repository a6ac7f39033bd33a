"""Third-party plugins (a pip-installed package, a single file, broken ones), `emolab export`,
headless replay, and the rule that the core never imports the UI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from emolab import plugins

ROOT = Path(__file__).resolve().parents[1]
BROKEN = Path(__file__).parent / "broken_plugins"
EMOLAB = [sys.executable, "-m", "emolab.cli"]


def emolab(*args, env=None, **kw) -> subprocess.CompletedProcess:
    """The real command in a subprocess, stdin closed and no TTY, as over SSH or in a job."""
    full_env = {**os.environ, "EMOLAB_THREADS": "1", **(env or {})}
    return subprocess.run(
        [*EMOLAB, *map(str, args)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=full_env,
        timeout=300,
        **kw,
    )


def installed(dist: str) -> bool:
    import importlib.metadata as md

    try:
        md.distribution(dist)
        return True
    except md.PackageNotFoundError:
        return False


# -- single-file plugins ------------------------------------------------------------------
def test_single_file_evaluator_is_loaded_and_used_by_steer(plugin_dir, tiny_session):
    from emolab.steps import steer

    shutil.copy(ROOT / "plugins" / "sentiment_flip.py", plugin_dir)
    reg = plugins.registry()
    info = reg.plugins["sentiment_flip"]
    assert info.error is None and info.source == "file" and info.version == "0.1.0"
    assert reg.plugin_of("evaluators", "sentiment_flip").name == "sentiment_flip"
    result = steer.run(
        tiny_session,
        {
            "emotion": "joy",
            "layer": 2,
            "alpha": 0.5,
            "prompts": ["Describe the weather today."],
            "max_new_tokens": 6,
            "evaluators": ["label_logit_shift", "sentiment_flip"],
        },
    )
    assert 0.0 <= result["metrics"]["sentiment_flip"] <= 1.0
    assert set(result["metrics"]) >= {"sentiment_flip", "sentiment_shift", "label_logit_shift"}
    # the session records which plugin (file) made the metric
    assert (
        tiny_session.manifest["plugins"]["evaluators:sentiment_flip"]["plugin"] == "sentiment_flip"
    )


def test_single_file_evaluator_refuses_an_emotion_without_valence(plugin_dir, tiny_model):
    from emolab.api import Run
    from emolab.errors import BadInput

    shutil.copy(ROOT / "plugins" / "sentiment_flip.py", plugin_dir)
    ev = plugins.get("evaluators", "sentiment_flip")
    with pytest.raises(BadInput, match="no valence for 'boredom'"):
        ev.evaluate(Run(tiny_model, ["a b"], ["x y"], ["x z"], target="boredom"))


def test_broken_plugins_are_reported_and_the_rest_works(plugin_dir, run_cli):
    for name in ("broken_import.py", "broken_hook.py"):
        shutil.copy(BROKEN / name, plugin_dir)
    shutil.copy(ROOT / "plugins" / "sentiment_flip.py", plugin_dir)
    plugins.reset()  # run_cli built the registry before the files were there
    reg = plugins.registry()
    assert "ModuleNotFoundError" in reg.plugins["broken_import"].error
    assert (
        "RuntimeError: this evaluator plugin is broken on purpose"
        in reg.plugins["broken_hook"].error
    )
    assert reg.plugins["sentiment_flip"].error is None
    assert "sentiment_flip" in reg.names("evaluators") and "mean_diff" in reg.names("extractors")

    res = run_cli("plugins", "--json")
    assert res.exit_code == 0
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["broken_import"]["error"] and rows["broken_hook"]["error"]
    assert rows["sentiment_flip"]["error"] is None
    table = run_cli("plugins")
    assert table.exit_code == 0 and "broken" in table.output


def test_broken_entry_point_is_reported(monkeypatch, run_cli):
    import importlib.metadata as md

    bad = md.EntryPoint(name="badpkg", value="emolab_no_such_plugin_module", group="emolab")
    monkeypatch.setattr(plugins, "_selected_entry_points", lambda: [bad])
    plugins.reset()
    try:
        reg = plugins.registry()
        assert "ModuleNotFoundError" in reg.plugins["badpkg"].error
        assert "mean_diff" in reg.names("extractors")
        rows = {r["name"]: r for r in json.loads(run_cli("plugins", "--json").output)}
        assert rows["badpkg"]["source"] == "entrypoint" and rows["badpkg"]["error"]
    finally:
        plugins.reset()


# -- a pip-installed plugin package -------------------------------------------------------
@pytest.fixture
def ica_source(tmp_path):
    """A copy of plugins/emolab-ica, so building it leaves nothing in the repository."""
    if installed("emolab-ica"):
        pytest.skip("emolab-ica is already installed in this environment")
    dst = tmp_path / "emolab-ica"
    shutil.copytree(
        ROOT / "plugins" / "emolab-ica",
        dst,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    yield dst
    if installed("emolab-ica"):
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "-y", "emolab-ica"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
    assert not installed("emolab-ica")


def test_install_use_replay_and_uninstall_the_ica_package(ica_source, tmp_path):
    res = emolab("install", ica_source, "--no-deps")
    assert res.returncode == 0, res.stderr
    assert "new plugins: ica" in res.stdout
    env = {"EMOLAB_LOAD_PLUGINS": "ica"}
    rows = {r["name"]: r for r in json.loads(emolab("plugins", "--json", env=env).stdout)}
    assert rows["ica"]["package"] == "emolab-ica" and rows["ica"]["version"] == "0.1.0"
    assert rows["ica"]["components"] == {"extractors": ["ica"]} and rows["ica"]["error"] is None

    session = tmp_path / "s"
    res = emolab(
        "extract",
        "--model",
        "tiny-llama",
        "--method",
        "mean_diff,ica",
        "--limit",
        "8",
        "--test-limit",
        "4",
        "--session",
        session,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    manifest = json.loads((session / "manifest.json").read_text())
    assert manifest["plugins"]["extractors:ica"] == {
        "plugin": "ica",
        "package": "emolab-ica",
        "version": "0.1.0",
    }
    assert (session / "vectors-ica.safetensors").is_file()

    res = emolab("uninstall", "emolab-ica")
    assert res.returncode == 0 and not installed("emolab-ica")
    # replaying a session whose plugin is gone names the package to install
    res = emolab("replay", session, "--out", tmp_path / "r", env=env)
    assert res.returncode == 2
    assert "emolab-ica" in res.stderr and "emolab install" in res.stderr


def test_install_errors_are_one_line(run_cli, tmp_path):
    res = run_cli("install", tmp_path / "no-such-plugin", "--no-deps")
    assert res.exit_code == 2 and "pip install" in res.output and "failed" in res.output
    res = run_cli("uninstall", "emolab-no-such-package")
    assert res.exit_code == 2 and "is not installed" in res.output
    res = run_cli("uninstall", "emolab")
    assert res.exit_code == 2 and "refusing to uninstall emolab" in res.output


# -- export and headless replay -----------------------------------------------------------
def test_export_makes_one_archive_that_replays(tiny_session, tmp_path, run_cli):
    archive = tmp_path / "out.tar.gz"
    res = run_cli("export", tiny_session.path, "--out", archive, "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        assert info["files"] == len(names)
        tar.extractall(tmp_path / "remote", filter="data")
    assert {
        "session/manifest.json",
        "session/log.jsonl",
        "session/vectors.safetensors",
        "session/artifacts/activations.safetensors",
    } <= names
    from emolab.session import Session

    copy = Session.open(tmp_path / "remote" / "session")
    assert copy.events() == tiny_session.events()

    res = run_cli("export", tiny_session.path, "--out", archive)
    assert res.exit_code == 2 and "already exists" in res.output
    res = run_cli("export", tmp_path / "nothing-here")
    assert res.exit_code == 2 and "no such session" in res.output
    small = tmp_path / "small.tar.gz"
    assert run_cli("export", tiny_session.path, "--out", small, "--no-activations").exit_code == 0
    with tarfile.open(small) as tar:
        assert "session/artifacts/activations.safetensors" not in tar.getnames()


def test_headless_replay_with_stdin_closed_exits_0(tiny_session, tmp_path):
    res = emolab("replay", tiny_session.path, "--out", tmp_path / "replayed")
    assert res.returncode == 0, res.stderr
    assert "\x1b[" not in res.stdout + res.stderr  # no colour codes without a TTY
    assert "\r" not in res.stderr  # plain progress lines, no bar redraws
    assert "replay matches" in res.stdout


def test_tui_refuses_without_a_terminal(tiny_session):
    res = emolab("tui", tiny_session.path)
    assert res.returncode == 2 and "needs a terminal" in res.stderr


# -- the core never imports the UI --------------------------------------------------------
def test_core_never_imports_textual_or_click():
    code = (
        "import sys\n"
        "import emolab.api, emolab.capture, emolab.data, emolab.hooks, emolab.models, "
        "emolab.session, emolab.steps, emolab.steps.replay, emolab.runner, emolab.progress\n"
        "from emolab import builtins\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'click') "
        "or m.startswith('emolab.tui') or m == 'emolab.cli')\n"
        "assert not bad, bad\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert res.returncode == 0, res.stderr
