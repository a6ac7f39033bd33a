"""Built-in evaluators, one module each."""

from ...hookspecs import hookimpl
from .label_logit_shift import LabelLogitShift
from .logit_diff import LogitDiff


@hookimpl
def register_evaluators(register):
    register(LogitDiff())
    register(LabelLogitShift())
