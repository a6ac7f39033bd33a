"""A deliberately broken single-file plugin: it fails while being imported."""

import emolab_module_that_does_not_exist  # noqa: F401
