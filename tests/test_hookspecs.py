"""Every hook spec is exercised by a plugin registered the way a third party would
(datasette habit: a new hook without a test fails `test_every_hookspec_has_a_test`)."""

import inspect
import sys
import types

import numpy as np
import pytest

from emolab import hookspecs, plugins
from emolab.api import (
    Aligner,
    DatasetSource,
    Evaluator,
    Example,
    Extractor,
    Intervention,
    ModelSource,
)
from emolab.hookspecs import hookimpl


def spec_names():
    return [
        n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("register_")
    ]


def test_every_hookspec_has_a_test():
    here = sys.modules[__name__]
    missing = [n for n in spec_names() if not hasattr(here, f"test_hook_{n}")]
    assert not missing, f"hook specs without a test: {missing}"


@pytest.fixture
def with_plugin(monkeypatch):
    """Register a module as a plugin, as an entry point would, on a fresh registry."""

    def add(**hooks):
        module = types.ModuleType("fake_plugin")
        for name, fn in hooks.items():
            setattr(module, name, hookimpl(fn))
        original = plugins._load_plugin_dir

        def load(reg):
            original(reg)
            reg.add_module(module, "fake-plugin", "9.9", "entrypoint", "fake-plugin")

        monkeypatch.setattr(plugins, "_load_plugin_dir", load)
        plugins.reset()
        return plugins.registry()

    yield add
    plugins.reset()


class Neg(Extractor):
    name = "neg_mean"
    description = "test"

    def fit(self, pos, neg):
        return neg.mean(0) - pos.mean(0)


def test_hook_register_extractors(with_plugin):
    reg = with_plugin(register_extractors=lambda register: register(Neg()))
    ext = reg.get("extractors", "neg_mean")
    assert ext.version == "9.9"
    out = ext.fit(np.ones((3, 2, 4)), np.zeros((2, 2, 4)))
    assert out.shape == (2, 4) and (out == -1).all()
    assert reg.plugins["fake-plugin"].components == {"extractors": ["neg_mean"]}


class Same(Aligner):
    name = "same"
    description = "test"
    learns_map = False

    def fit(self, a, b):
        return self

    def score(self, a, b):
        return {"same": float(np.allclose(a, b))}


def test_hook_register_aligners(with_plugin):
    reg = with_plugin(register_aligners=lambda register: register(Same()))
    a = np.arange(12.0).reshape(6, 2)
    assert reg.get("aligners", "same").fit(a, a).score(a, a) == {"same": 1.0}
    null = reg.get("aligners", "same").permutation_baseline(a, a, draws=4)
    assert set(null) == {"same"} and null["same"].shape == (4,)


class Zero(Intervention):
    name = "zero_all"
    description = "test"

    def hooks(self, model, **_):
        return [("blocks.0.hook_resid_post", lambda h, ctx: h * 0)]


def test_hook_register_interventions(with_plugin, tiny_model):
    reg = with_plugin(register_interventions=lambda register: register(Zero()))
    pairs = reg.get("interventions", "zero_all").hooks(tiny_model)
    assert pairs[0][0] == "blocks.0.hook_resid_post"


class Count(Evaluator):
    name = "count"
    description = "test"

    def evaluate(self, run):
        return {"n": float(len(run.prompts))}


def test_hook_register_evaluators(with_plugin, tiny_model):
    from emolab.api import Run

    reg = with_plugin(register_evaluators=lambda register: register(Count()))
    assert reg.get("evaluators", "count").evaluate(Run(tiny_model, ["a", "b"])) == {"n": 2.0}


class Alias(ModelSource):
    name = "tiny-alias"
    description = "test"

    def load(self, spec, device="cpu"):
        return plugins.get("models", "tiny-llama").load("tiny-llama", device)


def test_hook_register_models(with_plugin):
    reg = with_plugin(register_models=lambda register: register(Alias()))
    assert reg.get("models", "tiny-alias").load("tiny-alias").n_layers == 4


class Two(DatasetSource):
    name = "two"
    description = "test"

    def labels(self, spec):
        return ["a", "b"]

    def load(self, spec, split):
        return [Example("x y", "a"), Example("y z", "b")]


def test_hook_register_datasets(with_plugin):
    reg = with_plugin(register_datasets=lambda register: register(Two()))
    assert [e.label for e in reg.get("datasets", "two").load("two", "train")] == ["a", "b"]


def test_hook_register_commands(with_plugin, run_cli):
    import click

    def add(cli):
        @cli.command("hello-plugin")
        def hello():
            click.echo("hello from a plugin")

    reg = with_plugin(register_commands=add)
    from emolab.cli import cli

    reg.add_commands(cli)
    result = run_cli("hello-plugin")
    assert result.output.strip() == "hello from a plugin"
    assert "register_commands" in reg.plugins["fake-plugin"].hooks


def test_a_plugin_that_raises_in_a_hook_is_reported_not_fatal(with_plugin):
    def boom(register):
        raise RuntimeError("kaput")

    reg = with_plugin(register_extractors=boom)
    assert "RuntimeError: kaput" in reg.plugins["fake-plugin"].error
    assert "mean_diff" in reg.names("extractors")


def test_entry_point_that_fails_to_import_is_reported(monkeypatch):
    import importlib.metadata as md

    ep = md.EntryPoint("broken", "no_such_module_xyz", "emolab")
    monkeypatch.setattr(md, "entry_points", lambda group: [ep])
    monkeypatch.setenv("EMOLAB_LOAD_PLUGINS", "broken")
    plugins.reset()
    try:
        reg = plugins.registry()
        assert "ModuleNotFoundError" in reg.plugins["broken"].error
        assert "residual_add" in reg.names("interventions")
    finally:
        plugins.reset()


def test_single_file_plugin_dir(tmp_path, monkeypatch):
    (tmp_path / "shout.py").write_text(
        "from emolab.api import Evaluator\nfrom emolab.hookspecs import hookimpl\n"
        "class Shout(Evaluator):\n    name = 'shout'\n    description = 'x'\n"
        "    def evaluate(self, run):\n        return {'loud': 1.0}\n"
        "@hookimpl\ndef register_evaluators(register):\n    register(Shout())\n"
    )
    (tmp_path / "bad.py").write_text("raise ImportError('nope')\n")
    monkeypatch.setenv("EMOLAB_PLUGINS_DIR", str(tmp_path))
    plugins.reset()
    try:
        reg = plugins.registry()
        assert reg.plugin_of("evaluators", "shout").source == "file"
        assert "ImportError: nope" in reg.plugins["bad"].error
    finally:
        plugins.reset()


def test_every_builtin_component_is_named_in_a_test():
    """A built-in extractor, intervention, evaluator... that no test mentions is untested."""
    from pathlib import Path

    plugins.reset()
    reg = plugins.registry()
    here = Path(__file__).parent
    corpus = "".join(p.read_text(encoding="utf-8") for p in here.glob("test_*.py"))

    def named(comp) -> bool:
        prefix = getattr(comp, "prefix", None)
        quoted = (f'"{comp.name}"', f"'{comp.name}'", f'"{prefix}', f'f"{prefix}')
        return any(q in corpus for q in quoted if "None" not in q)

    missing = [
        f"{kind}:{name}"
        for kind, table in reg.components.items()
        for name, comp in table.items()
        if reg.plugin_of(kind, name).source == "builtin" and not named(comp)
    ]
    assert not missing, f"built-in components no test names: {missing}"
