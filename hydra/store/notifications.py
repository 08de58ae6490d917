"""``NotificationStore``: the notifications of ended runs and their delivery attempts.

* ``notifications/<run id>`` (:class:`Notice`) is written once, by the winner of the run's end
  fence (``hydra.dispatch.notices``), after it is filed in the due index (``hydra:notify:due``,
  :class:`~hydra.broker.due.NoticeDue`): whoever crashes after the run's end is recorded
  leaves a notice the leading controller finds. From then on only the leading controller
  writes it (``hydra.control.notifier``): which targets it goes to (``deliveries``, read from
  the job, or its namespace's default, when it is first handled), and each attempt.
* ``notify_state/<job id>``: the job's last end for good (succeeded, failed, timed out, dead
  letter), which tells a success after a failure (``recovered``).

Every document is addressed by ``_id``; nothing here is swept from MongoDB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import redis
from pymongo.errors import DuplicateKeyError

from hydra import clock, names
from hydra.broker.due import NoticeDue
from hydra.model.records import Record
from hydra.store.base import Store

#: The states of one delivery: waiting for its (next) attempt, or done one way or another.
PENDING, DELIVERED, FAILED, REFUSED = "pending", "delivered", "failed", "refused"


@dataclass
class Notice(Record):
    """What an ended run tells its job's targets (one per run id)."""

    id: str
    job_id: str = ""
    namespace: str = ""
    status: str = ""
    outcome: str | None = None
    #: Its events, most specific first (hydra.model.notify.events_of).
    events: list[str] = field(default_factory=list)
    created_at: datetime | None = None
    #: Set once the controller chose its targets (``deliveries``).
    resolved: bool = False
    #: One per target: kind, event, url, secret (webhook), state, attempts [{at, status_code, error}], next_at.
    deliveries: list[dict] = field(default_factory=list)
    done: bool = False


class NotificationStore(Store[Notice]):
    collection_name, record_type, kind = names.NOTIFICATIONS, Notice, "notification"

    def enqueue(self, notice: Notice) -> bool:
        """Write a run's notice, filed in the due index first (noted in the backlog when Redis
        cannot be reached: the leading controller files it). False: it was written already."""
        notice.created_at = clock.utcnow()
        filed = self._indexed(lambda: NoticeDue(self.index.redis).add(notice.id, clock.epoch()), "notice", notice.id)
        try:
            self._collection.insert_one(notice.to_doc())
        except DuplicateKeyError:
            return False
        if not filed:
            self._backlog("notice", notice.id)
        return True

    def save(self, notice: Notice) -> None:
        """The leading controller's write of its deliveries (the only writer after the first)."""
        self._collection.replace_one({"_id": notice.id}, notice.to_doc())

    def open_ids(self, limit: int = 10_000) -> list[str]:
        """The notices not done yet (for the controller to file again after Redis lost its
        due index: the one sweep of this collection, once per Redis reset)."""
        return [doc["_id"] for doc in self._native("notices_open", {"done": False}, limit=limit)]

    # -- the job's last end for good (recovered) -----------------------------------------------
    def previous(self, job_id: str) -> str | None:
        doc = self._named(names.NOTIFY_STATE).find_one({"_id": job_id})
        return doc.get("status") if doc else None

    def settle(self, job_id: str, status: str, run_id: str) -> None:
        doc = {"_id": job_id, "status": status, "run_id": run_id, "at": clock.utcnow()}
        self._named(names.NOTIFY_STATE).replace_one({"_id": job_id}, doc, upsert=True)


def file_due(run_ids: list[str], client: redis.Redis) -> None:
    """File notices in the due index (the backlog's, once Redis answers)."""
    due = NoticeDue(client)
    for run_id in run_ids:
        due.add(run_id, clock.epoch())
