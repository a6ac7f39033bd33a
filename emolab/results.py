"""Find a step's results through the session log, never by file name or modification time.

Every step records the files it wrote in its log event (`outputs`, paths relative to the
session folder). Readers — the TUI screens, the figures, the HTML report, the Python API —
ask here for "the outputs of the latest `heads` step for anger" instead of globbing, so a
renamed artifact or a second step of the same kind never makes them read the wrong file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .session import Session


@dataclass(frozen=True)
class Output:
    """One file a logged step wrote, with the event that wrote it."""

    event: dict
    relpath: str
    path: Path

    @property
    def kind(self) -> str:
        return self.event.get("kind", "")

    @property
    def seq(self) -> int:
        return int(self.event.get("seq", 0))

    @property
    def params(self) -> dict:
        return self.event.get("params") or {}


def _matches(value: Any, wanted: str) -> bool:
    """A param matches when it equals `wanted` or is a list holding it (emotions=[...])."""
    if isinstance(value, (list, tuple)):
        return wanted in value
    return value == wanted


def outputs(
    session: Session,
    kind: str | None = None,
    *,
    suffix: str | None = None,
    status: str = "ok",
    **params: str,
) -> Iterator[Output]:
    """Outputs of closed steps, oldest first, filtered by step kind, file suffix and params.

    `params` filters on the step's logged parameters, e.g. `emotion="anger"`; a step that
    did not log the parameter does not match.
    """
    for event in session.steps():
        if status and event.get("status") != status:
            continue
        if kind is not None and event.get("kind") != kind:
            continue
        logged = event.get("params") or {}
        if any(k not in logged or not _matches(logged[k], v) for k, v in params.items()):
            continue
        for rel in event.get("outputs") or []:
            if suffix is not None and not rel.endswith(suffix):
                continue
            yield Output(event=event, relpath=rel, path=session.path / rel)


def latest(
    session: Session, kind: str | None = None, *, suffix: str | None = None, **params: str
) -> Output | None:
    """The newest matching output whose file still exists, or None."""
    found = [o for o in outputs(session, kind, suffix=suffix, **params) if o.path.is_file()]
    return found[-1] if found else None
