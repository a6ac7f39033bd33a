"""Every call into a plugin goes through here, so a plugin's bug is one line naming it.

`guarded` wraps a call (SystemExit too: a plugin calling `sys.exit` must not end the
step unlogged); the hook functions an intervention returns are wrapped as well, because
they run later, deep inside the model's forward pass. `checked` validates what a plugin
returned (shape and finiteness) before any step uses it.
"""

from __future__ import annotations

import functools

import numpy as np

from .. import plugins
from ..errors import EmolabError, PluginFailed


def who(kind: str, component) -> str:
    """ "kind 'name' (plugin P version)", how every plugin error names its component."""
    name = getattr(component, "name", type(component).__name__)
    try:
        owner = plugins.registry().plugin_of(kind, name)
        return f"{kind[:-1]} '{name}' (plugin {owner.name} {owner.version})"
    except EmolabError:
        return f"{kind[:-1]} '{name}'"


def _failed(kind: str, component, exc: BaseException, where: str = "") -> PluginFailed:
    return PluginFailed(
        f"{who(kind, component)}{where} raised {type(exc).__name__}: {exc}".rstrip(": ")
    )


def guarded(kind: str, component, method: str, *args, **kwargs):
    """Call `component.method(...)`; an exception from its code becomes a PluginFailed
    naming the component and its plugin. Interventions' hook functions are guarded too."""
    try:
        out = getattr(component, method)(*args, **kwargs)
    except EmolabError:
        raise
    except (Exception, SystemExit) as exc:
        raise _failed(kind, component, exc) from exc
    if kind == "interventions" and method == "hooks":
        return guard_hooks(component, out)
    return out


def guard_hooks(component, hooks) -> list[tuple[str, object]]:
    """Check an intervention's `[(hook_name, fn)]` and wrap each fn, so an error raised in
    the forward pass names the intervention and the hook point."""
    try:
        pairs = [(name, fn) for name, fn in hooks]
    except (TypeError, ValueError):
        raise PluginFailed(
            f"{who('interventions', component)} returned {type(hooks).__name__}, "
            "not a list of (hook_name, function) pairs"
        ) from None
    for name, fn in pairs:
        if not isinstance(name, str) or not callable(fn):
            raise PluginFailed(
                f"{who('interventions', component)} returned a hook ({name!r}, {fn!r}), "
                "not (hook_name, function)"
            )
    return [(name, _wrap(component, name, fn)) for name, fn in pairs]


def _wrap(component, hook_name: str, fn):
    @functools.wraps(fn)
    def hook(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EmolabError:
            raise
        except (Exception, SystemExit) as exc:
            raise _failed("interventions", component, exc, f" at {hook_name}") from exc

    return hook


def checked(kind: str, component, value, shape: tuple, what: str = "output") -> np.ndarray:
    """`value` as a float array of `shape` (None: any size) with only finite numbers, or a
    PluginFailed saying what the plugin returned instead."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise PluginFailed(
            f"{who(kind, component)} returned {type(value).__name__} as its {what}, "
            "not an array of numbers"
        ) from None
    ok = arr.ndim == len(shape) and all(
        want is None or got == want for got, want in zip(arr.shape, shape)
    )
    if not ok:
        expected = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise PluginFailed(
            f"{who(kind, component)} returned {what} of shape {list(arr.shape)}, "
            f"expected {expected}"
        )
    if not np.isfinite(arr).all():
        raise PluginFailed(f"{who(kind, component)} returned NaN or inf in its {what}")
    return arr


def fit_directions(ext, pos, neg, context: dict | None = None) -> np.ndarray:
    """An extractor's `[layers, d]` directions, guarded and checked: as many layers as the
    activations have, their width, every number finite."""
    if context is not None:
        out = guarded("extractors", ext, "fit_in_context", pos, neg, context)
    else:
        out = guarded("extractors", ext, "fit", pos, neg)
    shape = (np.shape(pos)[1], np.shape(pos)[2])
    return checked("extractors", ext, out, shape, "directions").astype(np.asarray(pos).dtype)


# expected output shapes of the aligner contract's methods, from their first argument
_ALIGNER_SHAPES = {
    "transform_a": lambda x: (len(x), None),
    "transform_b": lambda x: (len(x), None),
    "map_direction": lambda v: (None,),
}


class Guarded:
    """A plugin component seen through guards: every method call is `guarded`, numbers it
    returns are checked finite (aligner maps also for shape), and a component it returns
    (`fit` returns the fitted aligner) is guarded in turn."""

    def __init__(self, kind: str, component) -> None:
        self._kind, self._component = kind, component

    @property
    def name(self) -> str:
        return self._component.name

    def __getattr__(self, attr: str):
        value = getattr(self._component, attr)
        if not callable(value) or attr.startswith("_"):
            return value

        def call(*args, **kwargs):
            out = guarded(self._kind, self._component, attr, *args, **kwargs)
            if hasattr(out, "name") and hasattr(out, "with_params"):
                return Guarded(self._kind, out)
            if attr in _ALIGNER_SHAPES and args:
                return checked(
                    self._kind, self._component, out, _ALIGNER_SHAPES[attr](args[0]), attr
                )
            if isinstance(out, (int, float, np.ndarray)) and not isinstance(out, bool):
                checked(self._kind, self._component, out, np.shape(out), attr)
            elif isinstance(out, dict) and all(isinstance(v, (int, float)) for v in out.values()):
                checked(self._kind, self._component, list(out.values()), (len(out),), attr)
            return out

        return call
