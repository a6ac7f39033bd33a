"""Built-in evaluators, one module each."""

from ...hookspecs import hookimpl
from .classifier import Classifier
from .flip_rate import FlipRate
from .label_logit_shift import LabelLogitShift
from .logit_diff import LogitDiff
from .perplexity_ratio import PerplexityRatio


@hookimpl
def register_evaluators(register):
    for component in (LogitDiff(), LabelLogitShift(), FlipRate(), PerplexityRatio(), Classifier()):
        register(component)
