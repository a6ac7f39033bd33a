"""Helpers every command shares: JSON output, running a step with progress, list options.

They live here (the faces layer) so command modules never import `emolab.cli`, which
imports them in turn when the CLI starts.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import click

from ..errors import BadInput


def out_json(obj) -> None:
    from ..session import _jsonable

    click.echo(json.dumps(obj, indent=2, default=_jsonable))


def run_step(step, session, params: dict, as_json: bool, with_session: bool = False):
    """Run a core step with CLI progress. With --json the result is printed here and None
    returned; otherwise the result goes back for the command's own table."""
    from ..progress_cli import cli_progress

    with cli_progress(as_json) as progress:
        result = step.run(session, params, progress)
    if not as_json:
        return result
    out_json({"session": str(session.path), **result} if with_session else result)
    return None


def console():
    from rich.console import Console

    return Console(highlight=False)


def default_session_path(model: str) -> Path:
    root = Path(os.environ.get("EMOLAB_SESSIONS", "sessions"))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{model.replace(':', '_').replace('/', '_')}-{stamp}"


def csv_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items


def assignments_option(flag: str, what: str):
    """A repeatable `KEY=VALUE` option (`--param alpha=0.5 --param layer=3`): the values stay
    strings here and are typed by the component's declared parameters, so a typo or a wrong
    type is the component's one-line error."""
    dest = flag.lstrip("-").replace("-", "_") + "s"
    return click.option(flag, dest, multiple=True, metavar="KEY=VALUE", help=what)


def assignments(pairs, flag: str) -> dict[str, str]:
    from ..params import parse_assignments

    return parse_assignments(pairs, flag)


def float_list(value: str, what: str) -> list[float]:
    """A comma-separated number option (`--alphas 0.1,0.3`); `what` names it in the error."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise BadInput(f"{what} list is empty")
    try:
        return [float(v) for v in items]
    except ValueError:
        raise BadInput(f"bad {what} list '{value}' (use numbers, e.g. 0.1,0.3)") from None


def int_list(value: str, what: str) -> list[int]:
    """Whole numbers only: `1.5` as a layer span is a typo, not a value to round."""
    nums = float_list(value, what)
    if any(not n.is_integer() for n in nums):
        raise BadInput(f"bad {what} list '{value}' (use whole numbers, e.g. 1,3)")
    return [int(n) for n in nums]
