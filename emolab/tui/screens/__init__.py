"""One module per screen; the app maps its modes onto these classes."""

from .compare import CompareScreen
from .heads import HeadsScreen
from .help import HelpScreen
from .layers import LayersScreen
from .log import LogScreen
from .plugins import PluginsScreen
from .sessions import SessionsScreen
from .steer import SteerScreen

__all__ = [
    "CompareScreen",
    "HeadsScreen",
    "HelpScreen",
    "LayersScreen",
    "LogScreen",
    "PluginsScreen",
    "SessionsScreen",
    "SteerScreen",
]
