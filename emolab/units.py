"""Layer and head specs as users type them ('all', '10-20', 'L.H,...'), parsed with one-line
errors. The steps and the interventions both read them, so they live below both."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import BadInput, UnknownName

# how a layer spec is written: the help of every layer option and the error of a bad one
LAYER_SPEC = "all, 5, 2,5,8 or 10-20"


def layer_list(spec: str) -> list[int]:
    """'3', '2,5,8' or '10-20' -> the layer indices written, unchecked against any model."""
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise BadInput(f"bad layer list '{spec}' (use {LAYER_SPEC})") from None
    return out


def parse_layers(spec: str | Sequence[int] | None, n_layers: int) -> list[int]:
    """'all', '3', '2,5,8', '10-20' or a list -> layer indices, range-checked."""
    if spec is None or spec == "all":
        return list(range(n_layers))
    out = layer_list(spec) if isinstance(spec, str) else list(spec)
    for layer in out:
        if not 0 <= layer < n_layers:
            raise BadInput(f"layer {layer} out of range: the model has layers 0-{n_layers - 1}")
    return out


def unit_pairs(
    spec: str, n_layers: int, n_units: int, bad: str, unknown: str
) -> list[tuple[int, int]]:
    """'L.U,L.U' -> [(layer, unit)], each in range; `bad` and `unknown` are the one-line
    errors (formatted with `part`) for a malformed and an out-of-range pair."""
    out = []
    for part in [p.strip() for p in str(spec).split(",") if p.strip()]:
        try:
            layer, unit = (int(x) for x in part.split("."))
        except ValueError:
            raise BadInput(bad.format(part=part)) from None
        if not (0 <= layer < n_layers and 0 <= unit < n_units):
            raise UnknownName(unknown.format(part=part))
        out.append((layer, unit))
    return out


def parse_heads(spec: str, n_layers: int, n_heads: int) -> list[tuple[int, int]]:
    """'L.H,L.H' -> [(layer, head)]: the notation of the head-attribution literature."""
    out = unit_pairs(
        spec,
        n_layers,
        n_heads,
        "bad head '{part}' (use L.H, e.g. 3.1)",
        f"unknown head '{{part}}' (the model has layers 0-{n_layers - 1} and heads "
        f"0-{n_heads - 1})",
    )
    if not out:
        raise BadInput("no heads given (use L.H,... e.g. 3.1,4.0)")
    return out
