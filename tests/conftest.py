import os

os.environ.setdefault("EMOLAB_THREADS", "1")
os.environ["EMOLAB_LOAD_PLUGINS"] = ""
os.environ.pop("EMOLAB_PLUGINS_DIR", None)

pytest_plugins = ["emolab.testing"]
