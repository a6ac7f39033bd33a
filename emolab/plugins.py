"""The plugin manager: built-ins, entry points and single-file plugins, registered alike.

Entry points are loaded one at a time and every hook implementation is called on its own,
so a plugin that fails to import or raises inside a hook is recorded (and shown by
`emolab plugins`) instead of taking the tool down.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pluggy

from . import hookspecs
from .api import Aligner, Component, DatasetSource, Evaluator, Extractor, Intervention, ModelSource
from .errors import UnknownName, unknown
from .version import __version__

DEFAULT_PLUGINS = (
    "emolab.builtins.models",
    "emolab.builtins.datasets",
    "emolab.builtins.extractors",
    "emolab.builtins.interventions",
    "emolab.builtins.evaluators",
    "emolab.builtins.aligners",
    "emolab.commands.listings",
    "emolab.commands.extract",
    "emolab.commands.steer",
    "emolab.commands.replay",
    "emolab.commands.demo",
    "emolab.commands.tui",
    "emolab.commands.analysis",
    "emolab.commands.classify",
    "emolab.commands.sweep",
    "emolab.commands.ablate",
    "emolab.commands.checkpoints",
    "emolab.commands.plot",
    "emolab.commands.vectors",
    "emolab.commands.report",
    "emolab.commands.hooks",
    "emolab.commands.study",
    "emolab.commands.contexts",
)
# Built-in command modules (they import click) load only when the CLI starts: `add_commands`.
COMMANDS_PACKAGE = "emolab.commands."

# hook name -> (registry kind, component base class)
KINDS = {
    "register_extractors": ("extractors", Extractor),
    "register_aligners": ("aligners", Aligner),
    "register_interventions": ("interventions", Intervention),
    "register_evaluators": ("evaluators", Evaluator),
    "register_models": ("models", ModelSource),
    "register_datasets": ("datasets", DatasetSource),
}


@dataclass
class PluginInfo:
    name: str
    version: str
    source: str  # "builtin", "entrypoint" or "file"
    package: str = ""
    components: dict[str, list[str]] = field(default_factory=dict)
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    # names this plugin registered that another plugin (a built-in first) already had
    collisions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "package": self.package,
            "hooks": self.hooks,
            "components": self.components,
            "error": self.error,
            "collisions": self.collisions,
        }


# what a plugin may raise while loading without stopping the app: its bugs, and also a
# `sys.exit()` or a KeyboardInterrupt raised by its own code at import time
PLUGIN_ERRORS = (Exception, SystemExit, KeyboardInterrupt)


def _short_error(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" ({Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


class Registry:
    """Every registered component, by kind and name, plus what each plugin did."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("emolab")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.components: dict[str, dict[str, Component]] = {k: {} for k, _ in KINDS.values()}
        self.owner: dict[tuple[str, str], str] = {}

    # -- loading -------------------------------------------------------------------
    def add_module(self, module, name: str, version: str, source: str, package: str = "") -> None:
        self.plugins[name] = PluginInfo(name, version, source, package)
        self.pm.register(module, name=name)

    def add_failed(self, name: str, version: str, source: str, package: str, error: str) -> None:
        self.plugins[name] = PluginInfo(name, version, source, package, error=error)

    def collect(self) -> None:
        """Call every plugin's hooks one by one, isolating failures."""
        for hook_name, (kind, base) in KINDS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                info = self.plugins[impl.plugin_name]
                info.hooks.append(hook_name)

                def register(component, _info=info, _kind=kind, _base=base) -> None:
                    if not isinstance(component, _base):
                        raise TypeError(f"{component!r} is not a {_base.__name__}")
                    taken = self.owner.get((_kind, component.name))
                    if taken is not None:  # first come keeps it: a built-in is never replaced
                        _info.collisions.append(
                            f"{_kind[:-1]} '{component.name}' is already registered by {taken}"
                            " (kept theirs)"
                        )
                        return
                    component.version = _info.version
                    self.components[_kind][component.name] = component
                    self.owner[(_kind, component.name)] = _info.name
                    _info.components.setdefault(_kind, []).append(component.name)

                try:
                    impl.function(register=register)
                except PLUGIN_ERRORS as exc:  # a plugin's bug must not stop the app
                    info.error = _short_error(exc)
        for impl in self.pm.hook.register_commands.get_hookimpls():
            self.plugins[impl.plugin_name].hooks.append("register_commands")

    def add_commands(self, cli) -> None:
        """Load the built-in command modules (only now, so the core never imports click)
        and let every plugin add its commands to `cli`."""
        for modname in DEFAULT_PLUGINS:
            if modname.startswith(COMMANDS_PACKAGE) and modname not in self.plugins:
                module = importlib.import_module(modname)
                self.add_module(module, modname, __version__, "builtin", "emolab")
                self.plugins[modname].hooks.append("register_commands")
        for impl in self.pm.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except PLUGIN_ERRORS as exc:
                self.plugins[impl.plugin_name].error = _short_error(exc)

    # -- lookup --------------------------------------------------------------------
    def get(self, kind: str, name: str, **params) -> Component:
        """A configured copy of the component `name` of `kind` (prefix-aware for sources)."""
        table = self.components[kind]
        if name in table:
            comp = table[name]
        else:
            comp = next(
                (
                    c
                    for c in table.values()
                    if getattr(c, "prefix", None) and name.startswith(c.prefix)
                ),
                None,
            )
            if comp is None:
                raise unknown(kind.rstrip("s"), name, table)
        return comp.with_params(**params) if params else comp

    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])

    def plugin_of(self, kind: str, name: str) -> PluginInfo:
        key = (kind, name)
        if key not in self.owner:
            prefixed = [c for c in self.components[kind].values() if getattr(c, "prefix", None)]
            match = next((c for c in prefixed if name.startswith(c.prefix)), None)
            if match is None:
                raise unknown(kind.rstrip("s"), name, self.components[kind])
            key = (kind, match.name)
        return self.plugins[self.owner[key]]


def _load_builtins(reg: Registry) -> None:
    for modname in DEFAULT_PLUGINS:
        if modname.startswith(COMMANDS_PACKAGE):
            continue
        reg.add_module(importlib.import_module(modname), modname, __version__, "builtin", "emolab")


def _selected_entry_points() -> list[md.EntryPoint]:
    eps = list(md.entry_points(group="emolab"))
    only = os.environ.get("EMOLAB_LOAD_PLUGINS")
    if only is not None:
        wanted = {s.strip() for s in only.split(",") if s.strip()}
        eps = [ep for ep in eps if ep.name in wanted]
    return eps


def _load_entry_points(reg: Registry) -> None:
    for ep in _selected_entry_points():
        dist = ep.dist
        package = dist.metadata["Name"] if dist else ""
        version = dist.version if dist else "?"
        try:
            module = ep.load()
        except PLUGIN_ERRORS as exc:
            reg.add_failed(ep.name, version, "entrypoint", package, _short_error(exc))
            continue
        reg.add_module(module, ep.name, version, "entrypoint", package)


def _load_plugin_dir(reg: Registry) -> None:
    folder = os.environ.get("EMOLAB_PLUGINS_DIR")
    if not folder or not Path(folder).is_dir():
        return
    for path in sorted(Path(folder).glob("*.py")):
        name = path.stem
        try:
            spec = importlib.util.spec_from_file_location(f"emolab_plugin_{name}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except PLUGIN_ERRORS as exc:
            reg.add_failed(name, "file", "file", str(path), _short_error(exc))
            continue
        reg.add_module(module, name, getattr(module, "__version__", "file"), "file", str(path))


_REGISTRY: Registry | None = None


def registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        reg = Registry()
        _load_builtins(reg)
        _load_entry_points(reg)
        _load_plugin_dir(reg)
        reg.collect()
        _REGISTRY = reg
    return _REGISTRY


def reset() -> None:
    """Forget the registry so the next call reloads plugins (tests, `emolab install`)."""
    global _REGISTRY
    _REGISTRY = None
    for mod in [m for m in sys.modules if m.startswith("emolab_plugin_")]:
        del sys.modules[mod]


def get(kind: str, name: str, **params) -> Component:
    return registry().get(kind, name, **params)


def load_model(name: str, device: str = "cpu", dtype: str = "float32"):
    """Load (once per process) the model registered as `name` on `device` in `dtype`:
    loading by name is the registry's job, so `models.py` (the machinery) never imports
    the registry. A source whose `load` takes `dtype` loads in it (hf: models straight from
    their files, with device_map="auto" on cuda); any other is loaded as it comes and cast."""
    import inspect

    from .errors import ModelUnavailable
    from .models import cast, loaded_once, resolve_device, torch_dtype

    device = resolve_device(device)
    torch_dtype(dtype)

    def make():
        source = get("models", name)
        ok, why = source.available(name)
        if not ok:
            raise ModelUnavailable(f"model '{name}' is not available here: {why}")
        try:
            if "dtype" in inspect.signature(source.load).parameters:
                model = source.load(name, device, dtype=dtype)
            else:
                model = cast(source.load(name, device), dtype)
        except Exception as exc:
            if "OutOfMemory" in type(exc).__name__ or "out of memory" in str(exc):
                raise ModelUnavailable(
                    f"model '{name}' does not fit on {device} in {dtype} "
                    "(try --dtype bfloat16, or a GPU box with more memory)"
                ) from None
            raise
        _ = model.blocks  # an architecture without a hook map fails here, in one line
        return model

    return loaded_once(name, device, dtype, make)


__all__ = ["registry", "reset", "get", "load_model", "Registry", "PluginInfo", "UnknownName"]
