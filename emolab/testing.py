"""pytest fixtures for emolab and for plugin authors: `pytest_plugins = ["emolab.testing"]`.

They use the tiny random models (no files, seconds) and keep torch to one thread so a test
run never fights another process for the cores.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("EMOLAB_THREADS", "1")
os.environ.setdefault("EMOLAB_LOAD_PLUGINS", "")  # installed plugins never leak into tests


def load_or_skip(name: str):
    """A real model, or the test skipped with the reason it is not available here (its
    weight wheel is not installed)."""
    from emolab import plugins
    from emolab.plugins import load_model as load

    ok, why = plugins.get("models", name).available(name)
    if not ok:
        pytest.skip(why)
    return load(name)


@pytest.fixture(scope="session")
def tiny_model():
    """The seeded random 4-layer Llama (d_model 64, 4 heads)."""
    from emolab.plugins import load_model as load

    return load("tiny-llama")


@pytest.fixture(scope="session")
def tiny_session_dir(tmp_path_factory):
    """A finished extraction on tiny-llama: Ekman-6 vs neutral, mean_diff, all layers."""
    from emolab.steps import extract
    from emolab.steps.common import new_session

    path = tmp_path_factory.mktemp("sessions") / "tiny"
    session = new_session(path, "tiny-llama")
    extract.run(session, {"limit": 12, "test_limit": 6})
    return path


@pytest.fixture(scope="session")
def tiny_gpt2_session_dir(tmp_path_factory):
    """The same extraction as `tiny_session_dir` on the random tiny GPT-2 (same texts, other
    architecture): the second session an aligner needs."""
    from emolab.steps import extract
    from emolab.steps.common import new_session

    path = tmp_path_factory.mktemp("sessions") / "tiny-gpt2"
    extract.run(new_session(path, "tiny-gpt2"), {"limit": 12, "test_limit": 6})
    return path


@pytest.fixture
def tiny_session(tiny_session_dir, tmp_path):
    """A private copy of the tiny session, free to append to."""
    import shutil

    from emolab.session import Session

    dst = tmp_path / "session"
    shutil.copytree(tiny_session_dir, dst)
    return Session.open(dst)


@pytest.fixture
def run_cli():
    """Run `emolab ARGS...` in-process; returns the click Result (exit_code, output)."""
    from click.testing import CliRunner

    from emolab import plugins
    from emolab.cli import cli

    plugins.registry().add_commands(cli)
    runner = CliRunner()

    def invoke(*args, **kw):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False, **kw)

    return invoke


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder loaded as EMOLAB_PLUGINS_DIR with a fresh registry: copy single-file plugins
    into it, then call `emolab.plugins.registry()`. The registry is reset again afterwards."""
    from emolab import plugins

    folder = tmp_path / "emolab-plugins"
    folder.mkdir()
    monkeypatch.setenv("EMOLAB_PLUGINS_DIR", str(folder))
    plugins.reset()
    yield folder
    plugins.reset()


@pytest.fixture
def load_plugins(monkeypatch):
    """`load_plugins("name", ...)` -> a fresh registry that loads those installed entry points
    (the test suite hides every installed plugin by default)."""
    from emolab import plugins

    def load(*names: str):
        monkeypatch.setenv("EMOLAB_LOAD_PLUGINS", ",".join(names))
        plugins.reset()
        return plugins.registry()

    yield load
    plugins.reset()


class DieOnce:
    """A Work wrapper (see emolab.engine) whose worker process exits, as a crashed or killed
    worker would, when it is handed a cell of `faults` ({cell: times}): the first `times`
    times across all processes (counted in the file `marker`). For testing what an
    executor does when a worker dies."""

    def __init__(self, inner, faults: dict, marker) -> None:
        self.inner, self.faults, self.marker = inner, dict(faults), str(marker)

    def start(self) -> None:
        self.inner.start()

    def group(self, cell):
        return self.inner.group(cell)

    def run(self, cells):
        from pathlib import Path

        marker = Path(self.marker)
        deaths = marker.read_text().splitlines() if marker.is_file() else []
        for cell in cells:
            if cell in self.faults and deaths.count(repr(cell)) < self.faults[cell]:
                with open(marker, "a") as f:
                    f.write(f"{cell!r}\n")
                os._exit(1)
        return self.inner.run(cells)
