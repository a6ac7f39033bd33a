"""Built-in interventions, one module each."""

from ...hookspecs import hookimpl
from .residual_add import ResidualAdd


@hookimpl
def register_interventions(register):
    register(ResidualAdd())
