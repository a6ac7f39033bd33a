"""A deliberately broken single-file plugin: it imports fine, then raises inside its hook."""

from emolab.hookspecs import hookimpl


@hookimpl
def register_evaluators(register):
    raise RuntimeError("this evaluator plugin is broken on purpose")
