"""Declared parameters and the one validator every component and step goes through.

A component (`Component.params`) and a step (`steps/<x>.py: PARAMS`) declare each parameter
once: name, type, default, range or choices, help. `validate` turns what a user, the CLI,
the TUI or a replayed log gave into the complete, typed set, or stops with one line that
names the parameter and what is allowed (scikit-learn's `_parameter_constraints` habit).
Steps call it first thing, before any model loads, and log what it returns.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadInput

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Param:
    """One typed parameter.

    `type` is str, int, float, bool, list or dict, or a tuple of them (e.g. `(str, list)` for
    a layer spec that is 'all', '10-20' or a list of ints). A list's elements have type
    `item`; a string given for a list is split on commas, so `--param heads=a,b` works.
    `min`/`max` bound numbers (every element of a list of numbers); `choices` bounds strings.
    None is allowed when the default is None or `nullable` is set.
    `tune` lists the values a step may choose among on the dev split (an extractor's C,
    shrinkage or number of components: `emolab extract` tries each and keeps dev's best), so
    a knob that decides held-out accuracy is never left at a guess nor picked on test.
    """

    name: str
    type: type | tuple[type, ...]
    default: Any
    help: str = ""
    choices: tuple = ()
    min: float | None = None
    max: float | None = None
    item: type | None = None
    nullable: bool = False
    tune: tuple = ()

    @property
    def types(self) -> tuple[type, ...]:
        return self.type if isinstance(self.type, tuple) else (self.type,)

    def type_name(self) -> str:
        names = []
        for t in self.types:
            names.append(f"list of {(self.item or str).__name__}" if t is list else t.__name__)
        return " or ".join(names)

    def parse(self, raw: Any, owner: str = "") -> Any:
        """`raw` (often a string from the command line) as this parameter's type, checked
        against its range and choices; BadInput naming the parameter otherwise."""
        where = f"{owner}: " if owner else ""
        if raw is None:
            if self.default is None or self.nullable:
                return None
            raise BadInput(f"{where}parameter '{self.name}' must be {self.type_name()}, got None")
        types = self.types
        as_list = list in types and (
            isinstance(raw, (list, tuple)) or (isinstance(raw, str) and str not in types)
        )
        if as_list:
            items = (
                [x.strip() for x in raw.split(",") if x.strip()] if isinstance(raw, str) else raw
            )
            return [self._check(self._scalar(x, self.item or str, where), where) for x in items]
        if isinstance(raw, str) and str in types:
            return self._check(raw, where)
        scalar = next((t for t in types if t not in (list, str)), None)
        if scalar is None:
            raise BadInput(
                f"{where}parameter '{self.name}' must be {self.type_name()}, got {raw!r}"
            )
        return self._check(self._scalar(raw, scalar, where), where)

    def _scalar(self, raw: Any, t: type, where: str) -> Any:
        bad = BadInput(f"{where}parameter '{self.name}' must be {t.__name__}, got {raw!r}")
        if t is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.strip().lower() in _TRUE + _FALSE:
                return raw.strip().lower() in _TRUE
            if isinstance(raw, int) and raw in (0, 1):
                return bool(raw)
            raise bad
        if t is int:
            if isinstance(raw, bool):
                raise bad
            if isinstance(raw, int):
                return raw
            if isinstance(raw, float) and raw.is_integer():
                return int(raw)
            if isinstance(raw, str):
                try:
                    return int(raw.strip())
                except ValueError:
                    raise bad from None
            raise bad
        if t is float:
            if isinstance(raw, bool):
                raise bad
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise bad from None
            if not math.isfinite(value):
                raise BadInput(
                    f"{where}parameter '{self.name}' must be a finite number, got {raw!r}"
                )
            return value
        if t is str:
            if isinstance(raw, str):
                return raw
            raise bad
        if t is dict:
            if isinstance(raw, Mapping):
                return dict(raw)
            raise bad
        if isinstance(raw, t):
            return raw
        raise bad

    def _check(self, value: Any, where: str) -> Any:
        if self.choices and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise BadInput(
                f"{where}parameter '{self.name}' must be one of {allowed}, got {value!r}"
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.min is not None and value < self.min:
                raise BadInput(
                    f"{where}parameter '{self.name}' must be at least {self.min}, got {value}"
                )
            if self.max is not None and value > self.max:
                raise BadInput(
                    f"{where}parameter '{self.name}' must be at most {self.max}, got {value}"
                )
        return value

    def describe(self) -> dict:
        """The declaration as JSON (for `emolab plugins --json`, the TUI's forms, docs)."""
        return {
            "name": self.name,
            "type": self.type_name(),
            "default": self.default,
            "help": self.help,
            "choices": list(self.choices),
            "min": self.min,
            "max": self.max,
            "tune": list(self.tune),
        }


def validate(decl: Iterable[Param], given: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """The complete, typed parameter set: `given` checked against `decl`, defaults filled in.

    An unknown key, a wrong type, a number out of range or a string not among the choices
    is one BadInput line naming `owner` and the parameter."""
    known = {p.name: p for p in decl}
    for key in given:
        if key not in known:
            raise BadInput(f"{owner} has no parameter '{key}' (has: {', '.join(known) or 'none'})")
    return {
        name: p.parse(given[name], owner) if name in given else copy.deepcopy(p.default)
        for name, p in known.items()
    }


def defaults(decl: Iterable[Param]) -> dict[str, Any]:
    """Every declared parameter at its default."""
    return {p.name: copy.deepcopy(p.default) for p in decl}


def parse_assignments(pairs: Iterable[str], what: str = "--param") -> dict[str, str]:
    """`["alpha=0.5", "layer=3"]` -> `{"alpha": "0.5", "layer": "3"}` (values stay strings;
    `validate` types them against the component's declaration)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"{what} takes key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def schema(decl: Iterable[Param]) -> list[dict]:
    return [p.describe() for p in decl]
