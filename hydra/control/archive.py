"""Exporting history through the API (``GET /export/runs``, ``hydra export``): the runs that
ended before a cutoff, as the JSON Lines retention writes before it prunes them.

It is an admin's read of whole namespaces: an admin of ``*`` exports any namespace (all of
them by default), another caller only namespaces it administers. The rights and the cutoff are
checked before the first line, so a refusal is an error answer, never a cut-off stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from hydra import clock
from hydra.errors import BrokerUnavailable, Forbidden, InvalidJob
from hydra.model.access import EVERY_NAMESPACE, Principal, Role
from hydra.settings import get_settings
from hydra.store.retention import MIN_DAYS, Retention, run_line


def _namespaces(actor: Principal, wanted: list[str]) -> list[str] | None:
    """The namespaces to export (None: every one); Forbidden for one the actor does not administer."""
    if actor.role_in(EVERY_NAMESPACE) == Role.ADMIN:
        return wanted or None
    managed = [ns for ns in actor.roles if ns != EVERY_NAMESPACE and actor.can("manage", ns)]
    refused = [ns for ns in wanted if ns not in managed]
    if refused or not managed:
        which = f"namespace {refused[0]!r}" if refused else "any namespace"
        raise Forbidden(f"{actor.user!r} may not export {which} (needs admin)")
    return wanted or managed


def export_runs(actor: Principal, *, older_than: float | None, namespaces: list[str]) -> Iterator[str]:
    """The JSON Lines (one run record each, newline included) of every run in ``namespaces``
    (all the actor may export when empty) that ended more than ``older_than`` days ago
    (None: what retention prunes next, ``HYDRA_RETENTION_DAYS``; 0: every run that ended).
    Raises Forbidden, InvalidJob or BrokerUnavailable before yielding anything."""
    chosen = _namespaces(actor, namespaces)
    days = older_than
    if days is None:
        days = get_settings().retention_days
        if days <= 0:
            raise InvalidJob({"older_than": ["retention keeps everything (HYDRA_RETENTION_DAYS=0): give older_than"]})
        days = max(days, MIN_DAYS)
    now = clock.utcnow()
    cutoff = now - timedelta(days=days) if days > 0 else now + timedelta(days=1)
    retention = Retention()
    if not retention.index.built():
        raise BrokerUnavailable("the Redis indexes are being rebuilt by the controller; try again when it is done")
    return (run_line(run) + "\n" for run in retention.old_runs(cutoff, namespaces=chosen))
