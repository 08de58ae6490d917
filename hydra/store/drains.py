"""``DrainStore``: which workers are drained - taken out of placement by an operator
(``worker_drains``, one document per drained worker).

This collection is the record of truth of a drain: it outlives a Redis flush and a
controller failover. The router reads its copy in Redis (``hydra.broker.registry``), which
the drain verbs write at once and the leading controller keeps equal to this collection
(``hydra.control.drain``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hydra import clock, names
from hydra.model.records import Record
from hydra.store.base import Store


@dataclass
class Drain(Record):
    """A drained worker: who drained it, when, and why."""

    id: str
    by: str = ""
    at: datetime | None = None
    reason: str | None = None


class DrainStore(Store[Drain]):
    collection_name, record_type, kind = names.WORKER_DRAINS, Drain, "drain"

    def put(self, worker_id: str, *, by: str, reason: str | None) -> Drain:
        """Drain ``worker_id`` (again: the latest drain's author, time and reason are kept)."""
        drain = Drain(id=worker_id, by=by, at=clock.utcnow(), reason=reason)
        self._collection.replace_one({"_id": worker_id}, drain.to_doc(), upsert=True)
        return drain

    def delete(self, worker_id: str) -> bool:
        """Undrain ``worker_id``; whether it was drained."""
        return self._collection.delete_one({"_id": worker_id}).deleted_count == 1

    def all(self) -> dict[str, Drain]:
        """Every drained worker, by id."""
        return {doc["_id"]: Drain.from_doc(doc) for doc in self._native("drains", {})}
