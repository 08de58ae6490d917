"""A stored record that cannot be shown never breaks an answer: in a listing it is skipped,
flagged in its store (``unrenderable``: the reason, for an operator to find and fix) and
logged; shown alone it is Unrenderable (a Conflict: 409 in REST, FAILED_PRECONDITION in
gRPC). REST's schemas (``api.schemas.common.Tolerant``) and gRPC's messages (``hydra.rpc``) both
render through here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from hydra.celery.app import current_pipeline
from hydra.errors import Conflict, Unavailable
from hydra.model.records import Job, Run

log = logging.getLogger(__name__)
T = TypeVar("T")


class Unrenderable(Conflict):
    """A stored record this version cannot render (flagged for an operator)."""


def flag(item: Any, exc: Exception) -> None:
    """Log that ``item`` could not be rendered and flag it in its store (once per reason)."""
    reason = f"{exc.__class__.__name__}: {exc}"[:500]
    ident = getattr(item, "id", None)
    log.warning(
        "stored record cannot be rendered: %s",
        reason,
        extra={"event": "record.unrenderable", "job_id" if isinstance(item, Job) else "run_id": ident},
    )
    runs = current_pipeline().runs
    store = runs.jobs if isinstance(item, Job) else runs if isinstance(item, Run) else None
    if store is not None and ident is not None and getattr(item, "unrenderable", None) != reason:
        try:
            store.flag_unrenderable(ident, reason)
        except Unavailable:
            pass


def render_one(item: Any, render: Callable[[Any], T]) -> T:
    """``render(item)``, or Unrenderable (after flagging it)."""
    try:
        return render(item)
    except Exception as exc:  # noqa: BLE001 - whatever a stored record holds
        flag(item, exc)
        raise Unrenderable(
            f"{type(item).__name__.lower()} {getattr(item, 'id', '?')!r} is stored in a form this version cannot "
            f"render ({exc.__class__.__name__}); it is flagged for an operator"
        ) from None


def render_each(items: Iterable[Any], render: Callable[[Any], T]) -> tuple[list[T], list[str]]:
    """Each item rendered, and the ids of those skipped (flagged) because they could not be."""
    rendered: list[T] = []
    skipped: list[str] = []
    for item in items:
        try:
            rendered.append(render(item))
        except Exception as exc:  # noqa: BLE001
            flag(item, exc)
            skipped.append(str(getattr(item, "id", "?")))
    return rendered, skipped
