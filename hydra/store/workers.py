"""``WorkerStore``: the ``workers`` view behind ``GET /workers/`` (written by the leading controller).

The live registry in Redis (``hydra.broker.registry``) is what the router reads; this view
is what people read, and it outlives a Redis flush.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from hydra import clock, names
from hydra.model.records import Record
from hydra.store.base import Store

#: What a worker's view shows of its drain (read from ``worker_drains``, never written here).
DRAIN_FIELDS = ("drained", "drained_by", "drained_at", "drain_reason")


@dataclass
class WorkerView(Record):
    """A worker as ``GET /workers/`` shows it."""

    id: str
    os: str = ""
    tags: list[str] = field(default_factory=list)
    allowed_users: list[str] | None = None
    #: The namespaces whose jobs it runs (None: all).
    namespaces: list[str] | None = None
    max_concurrency: int = 1
    shells: list[str] = field(default_factory=list)
    queue: str = ""
    #: It can enforce jobs' resource limits (memory and cpu cgroup controllers).
    resource_limits: bool = False
    status: str = "online"
    last_heartbeat: datetime | None = None
    heartbeat_interval: float | None = None
    current_running: int = 0
    processed: int | None = None
    hostname: str | None = None
    pid: int | None = None
    first_seen: datetime | None = None
    updated_at: datetime | None = None
    #: Runs routed to it and not finished (from the registry; not stored).
    load: int = 0
    #: Drained (``hydra.store.drains``; not stored here): who drained it, when and why.
    drained: bool = False
    drained_by: str | None = None
    drained_at: datetime | None = None
    drain_reason: str | None = None


class WorkerStore(Store[WorkerView]):
    collection_name, record_type, kind = names.WORKERS, WorkerView, "worker"

    def put(self, worker: WorkerView) -> None:
        """Write a worker's current state (created on first sight, with ``first_seen``)."""
        doc = worker.to_doc()
        for key in ("_id", "first_seen", "load", *DRAIN_FIELDS):
            doc.pop(key)
        doc["updated_at"] = clock.utcnow()
        self._collection.update_one(
            {"_id": worker.id}, {"$set": doc, "$setOnInsert": {"first_seen": clock.utcnow()}}, upsert=True
        )

    def remove(self, worker_id: str) -> None:
        self._collection.delete_one({"_id": worker_id})

    def all(self) -> list[WorkerView]:
        """Every worker the controller lists (not history: offline ones are forgotten after
        HYDRA_FORGET_AFTER), by id."""
        return [WorkerView.from_doc(doc) for doc in self._native("workers", {})]
