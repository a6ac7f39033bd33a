"""Errors a user can cause. The CLI prints them as one line and exits 2; bugs still raise."""


class EmolabError(Exception):
    """Base class: a problem with the user's input, shown without a traceback."""


class UnknownName(EmolabError):
    """A model, dataset, emotion, method, plugin, layer or hook that does not exist."""


class BadInput(EmolabError):
    """A value that exists but cannot be used (wrong width, empty file, bad number...)."""


class SessionError(EmolabError):
    """A session folder that is missing, corrupt, truncated or of an unknown schema."""


class ModelUnavailable(EmolabError):
    """A known model whose weights are not installed here."""


class Cancelled(EmolabError):
    """Long work stopped at the user's request."""


def unknown(kind: str, name: str, known) -> UnknownName:
    """Build an UnknownName error that lists the valid choices."""
    choices = ", ".join(sorted(str(k) for k in known)) or "none"
    return UnknownName(f"unknown {kind} '{name}' (known: {choices})")


class PluginFailed(EmolabError):
    """A plugin component raised while doing its work."""
