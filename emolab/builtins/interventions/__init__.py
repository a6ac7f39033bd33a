"""Built-in interventions, one module each."""

from ...hookspecs import hookimpl
from .activation_patch import ActivationPatch
from .comma_zeroing import CommaZeroing
from .directional_ablation import DirectionalAblation
from .directional_patch import DirectionalPatch
from .enhance import Enhance
from .head_ablation import HeadAblation
from .residual_add import ResidualAdd


@hookimpl
def register_interventions(register):
    for component in (
        ResidualAdd(),
        DirectionalAblation(),
        DirectionalPatch(),
        HeadAblation(),
        CommaZeroing(),
        ActivationPatch(),
        Enhance(),
    ):
        register(component)
