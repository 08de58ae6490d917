"""``AuditStore``: who did what to which job, run, token or namespace, and when (``audit_events``).

Every verb adds an event, so the trail grows with the history: its listing reads the Redis
indexes (``hydra.broker.index``: the events of a namespace, of an actor, of a target, newest
first) and fetches the page's events by ``_id`` - O(page) - and runs the declared MongoDB
queries only until the controller has rebuilt those indexes.

Insert-only: an event is never changed or deleted by Hydra. Each names its actor (the
principal's user and how it authenticated), the action (``job.submit``, ``run.cancel``,
``token.revoke``, ...), the namespace and the target, and details that never include a
secret (environment variables are named, not valued).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hydra import clock, names
from hydra.model.records import Record
from hydra.store import pages
from hydra.store.base import Store


@dataclass
class AuditEvent(Record):
    id: str
    at: datetime | None = None
    actor: str = ""
    via: str = ""
    action: str = ""
    namespace: str | None = None
    target: str | None = None
    details: dict = field(default_factory=dict)


class AuditStore(Store[AuditEvent]):
    collection_name, record_type, kind = names.AUDIT_EVENTS, AuditEvent, "audit event"
    index_part = "audit"

    def record(
        self,
        *,
        actor: str,
        via: str,
        action: str,
        namespace: str | None,
        target: str | None,
        details: dict | None = None,
        also: Callable[[Any], object] | None = None,
    ) -> AuditEvent:
        """Insert the event, then file it in the indexes; ``also(pipe)`` adds Redis commands
        of the caller's to that filing's round trip (``hydra.control.verbs``: the submission
        counted for ``/metrics``)."""
        event = AuditEvent(
            id=str(uuid.uuid4()),
            at=clock.utcnow(),
            actor=actor,
            via=via,
            action=action,
            namespace=namespace,
            target=target,
            details=details or {},
        )
        self._insert(event.to_doc())
        self._keep(lambda: self.file(event, also=also), "audit", event.id)
        return event

    def file(self, event: AuditEvent, pipe: Any = None, also: Callable[[Any], object] | None = None) -> None:
        """File the event in the indexes (``hydra.store.reindex`` files them again)."""
        self.index.put_audit(
            event.id,
            at=event.at,
            namespace=event.namespace,
            actor=event.actor,
            target=event.target,
            pipe=pipe,
            also=also,
        )

    def find_many(self, event_ids: list[str]) -> dict[str, AuditEvent]:
        return {ident: AuditEvent.from_doc(doc) for ident, doc in self._docs(self._collection, event_ids).items()}

    def list(
        self,
        *,
        namespaces: list[str] | None = None,
        actor: str | None = None,
        target: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]:
        """Events newest first; only those of ``namespaces`` when given (events about tokens,
        which belong to no namespace, only when not limited)."""

        def accept(event: AuditEvent) -> bool:
            return (
                (namespaces is None or event.namespace in namespaces)
                and (actor is None or event.actor == actor)
                and (target is None or event.target == target)
            )

        if self._index_usable():
            spaces: list[str | None] = [*self.index.namespaces(), None] if namespaces is None else list(namespaces)
            keys = [self.index.audit_key(ns, actor=actor, target=target) for ns in spaces]
            return pages.indexed_page(self.index, keys, limit=limit, cursor=cursor, fetch=self.find_many, accept=accept)
        where: dict = {}
        if actor is not None:
            where["actor"] = actor
        if target is not None:
            where["target"] = target
        if namespaces is not None:
            where["namespace"] = {"$in": namespaces}
        name = "audit_of_target" if target is not None else "audit_of_actor" if actor is not None else None
        name = name or ("audit_of_namespaces" if namespaces is not None else "audit")
        return self._native_page(
            name,
            where,
            limit=limit,
            cursor=cursor,
            accept=accept,
            load=lambda docs: [AuditEvent.from_doc(doc) for doc in docs],
        )
