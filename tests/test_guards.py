"""Every plugin call is guarded, at load and at call time, with the plugin's name in the
error; extractor and aligner outputs are checked for shape and finiteness. The plugins here
are single-file plugins loaded from EMOLAB_PLUGINS_DIR, as a user would drop them in."""

import numpy as np
import pytest

from emolab import plugins
from emolab.errors import PluginFailed
from emolab.runner import generate
from emolab.steps import extract, layers
from emolab.steps.common import new_session
from emolab.steps.guard import Guarded, guarded

HEADER = (
    "import numpy as np\nfrom emolab.api import Extractor\nfrom emolab.hookspecs import hookimpl\n"
)

EXTRACTOR = (
    HEADER
    + """
class Odd(Extractor):
    name = "odd"
    description = "test extractor"

    def fit(self, pos, neg):
        {body}


@hookimpl
def register_extractors(register):
    register(Odd())
"""
)


def write(folder, name, text):
    (folder / f"{name}.py").write_text(text)
    plugins.reset()
    return plugins.registry()


@pytest.mark.parametrize("raise_", ["SystemExit(3)", "KeyboardInterrupt()"])
def test_exit_or_interrupt_while_importing_a_plugin_is_recorded(plugin_dir, raise_):
    reg = write(plugin_dir, "rude", f"raise {raise_}\n")
    info = reg.plugins["rude"]
    assert info.error.startswith(raise_.split("(")[0]) and "rude.py:1" in info.error
    assert "mean_diff" in reg.names("extractors")  # the rest of the app still loads


@pytest.mark.parametrize(
    "body,message",
    [
        ("return pos.mean(0)[:, :3]", r"returned directions of shape \[4, 3\], expected \[4, 64\]"),
        ("return pos.mean(0) * np.nan", "returned NaN or inf in its directions"),
        ("return 'north'", "returned str as its directions, not an array of numbers"),
        ("raise SystemExit('bye')", "raised SystemExit: bye"),
        ("raise ZeroDivisionError('oops')", "raised ZeroDivisionError: oops"),
    ],
)
def test_bad_extractor_output_is_one_error_naming_the_plugin(plugin_dir, tmp_path, body, message):
    write(plugin_dir, "oddplug", EXTRACTOR.format(body=body))
    s = new_session(tmp_path / "s", "tiny-llama")
    with pytest.raises(PluginFailed, match=r"extractor 'odd' \(plugin oddplug file\) " + message):
        extract.run(s, {"methods": ["odd"], "limit": 4, "test_limit": 2})
    assert s.steps()[-1]["status"] == "failed"


def test_shuffled_label_refit_in_layers_is_guarded(plugin_dir, tmp_path):
    write(plugin_dir, "oddplug", EXTRACTOR.format(body="return pos.mean(0) - neg.mean(0)"))
    s = new_session(tmp_path / "s", "tiny-llama")
    extract.run(s, {"methods": ["odd"], "limit": 4, "test_limit": 2})
    # the same plugin, now broken: `layers` refits it on shuffled labels
    write(plugin_dir, "oddplug", EXTRACTOR.format(body="raise RuntimeError('refit broke')"))
    with pytest.raises(PluginFailed, match=r"extractor 'odd' .*raised RuntimeError: refit broke"):
        layers.run(s, {})


def test_a_hook_raising_inside_the_forward_pass_names_the_intervention(tiny_model):
    from emolab.api import Intervention

    class Boom(Intervention):
        name = "boom"
        description = "raises in its hook"

        def hooks(self, model, **context):
            def fn(act, ctx):
                raise ValueError("bad activation")

            return [("blocks.1.hook_resid_post", fn)]

    hooks = guarded("interventions", Boom(), "hooks", tiny_model)
    with pytest.raises(
        PluginFailed, match=r"intervention 'boom' at blocks.1.hook_resid_post raised ValueError"
    ):
        generate(tiny_model, ["Hello there"], hooks, 3, 1)
    with pytest.raises(PluginFailed, match="not a list of"):
        guarded("interventions", type("X", (Boom,), {"hooks": lambda self, m: 5})(), "hooks", None)


def test_aligner_outputs_are_checked(tmp_path):
    reg = plugins.registry()
    base = reg.get("aligners", "procrustes", dim=4)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((30, 8)), rng.standard_normal((30, 6))
    fitted = Guarded("aligners", base).fit(a, b)
    assert isinstance(fitted, Guarded) and fitted.transform_a(a).shape[0] == 30

    class NanMap(type(base)):
        def map_direction(self, v):
            return np.full(6, np.nan)

    with pytest.raises(PluginFailed, match="aligner 'procrustes'.*NaN or inf in its map_direction"):
        Guarded("aligners", NanMap(dim=4)).fit(a, b).map_direction(a[0])

    class Short(type(base)):
        def transform_a(self, x):
            return np.zeros((2, 4))

    with pytest.raises(PluginFailed, match=r"transform_a of shape \[2, 4\], expected \[30, \*\]"):
        Guarded("aligners", Short(dim=4)).fit(a, b).transform_a(a)


def test_a_dataset_plugin_raising_is_one_error_naming_it(plugin_dir, tmp_path):
    write(
        plugin_dir,
        "baddata",
        "from emolab.api import DatasetSource\nfrom emolab.hookspecs import hookimpl\n\n"
        "class Broken(DatasetSource):\n    name = 'broken'\n    description = 'x'\n\n"
        "    def labels(self, spec):\n        return ['joy', 'neutral']\n\n"
        "    def load(self, spec, split):\n        raise OSError('disk gone')\n\n"
        "@hookimpl\ndef register_datasets(register):\n    register(Broken())\n",
    )
    s = new_session(tmp_path / "s", "tiny-llama")
    with pytest.raises(
        PluginFailed, match=r"dataset 'broken' \(plugin baddata file\) raised OSError"
    ):
        extract.run(s, {"dataset": "broken", "emotions": ["joy"], "baseline": "neutral"})
