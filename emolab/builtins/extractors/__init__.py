"""Built-in extractors, one module each."""

from ...hookspecs import hookimpl
from .mean_diff import MeanDiff


@hookimpl
def register_extractors(register):
    register(MeanDiff())
