pytest_plugins = ["emolab.testing"]
