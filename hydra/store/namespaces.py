"""``NamespaceStore``: what an operator set for a namespace - its quotas and its jobs' default
notification targets, and its jobs' default and maximum resource limits (``namespaces``;
``hydra.model.resources``).

A namespace exists as soon as a job names it; a document here only records limits. No
document, or a limit left unset, means the defaults (``HYDRA_DEFAULT_MAX_RUNNING``,
``HYDRA_DEFAULT_MAX_QUEUED``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hydra import clock, names
from hydra.model.records import Record
from hydra.model.resources import NamespaceResources
from hydra.store.base import Store


@dataclass
class NamespaceLimits(Record):
    id: str
    #: Runs of the namespace placed on workers and not ended (queued or running) at most.
    max_running: int | None = None
    #: Runs of the namespace waiting in workers' queues at most.
    max_queued: int | None = None
    #: Its jobs' resource limits when they set none, and at most (hydra.model.resources).
    default_memory_mb: int | None = None
    default_cpu: float | None = None
    max_memory_mb: int | None = None
    max_cpu: float | None = None
    #: Notification targets of its jobs that name none (hydra.model.notify); secrets included.
    notify: list[dict] | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None

    @property
    def resources(self) -> NamespaceResources:
        """Its jobs' default and maximum resource limits."""
        return NamespaceResources(
            default_memory_mb=self.default_memory_mb,
            default_cpu=self.default_cpu,
            max_memory_mb=self.max_memory_mb,
            max_cpu=self.max_cpu,
        )


class NamespaceStore(Store[NamespaceLimits]):
    collection_name, record_type, kind = names.NAMESPACES, NamespaceLimits, "namespace"

    def put(self, limits: NamespaceLimits, *, by: str) -> NamespaceLimits:
        limits.updated_at, limits.updated_by = clock.utcnow(), by
        doc = limits.to_doc()
        self._collection.replace_one({"_id": limits.id}, doc, upsert=True)
        return limits

    def delete(self, namespace: str) -> bool:
        """Forget the namespace's limits (the defaults hold again); whether there were any."""
        return self._collection.delete_one({"_id": namespace}).deleted_count == 1

    def limits(self, namespace: str) -> NamespaceLimits:
        """The namespace's limits (an empty record when none were set)."""
        return self.find(namespace) or NamespaceLimits(id=namespace)

    def all(self) -> list[NamespaceLimits]:
        return [NamespaceLimits.from_doc(doc) for doc in self._native("namespaces", {})]
