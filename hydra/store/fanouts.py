"""``FanoutStore``: fan-outs (``fanouts``) and their workers' write-once slots (``fanout_slots``).

A plan is written once, when the job starts (``hydra.dispatch.fanout``), before any of its
runs is recorded. Each worker then has up to two slots, each an insert-only document whose
``_id`` decides races (FerretDB applies conditional updates as read-then-write):

* ``<fan-out>/<worker>/start``: ``started`` (its run was started, once) or ``skipped``
  (stop_on_failure, or its worker was offline at its turn), with the reason;
* ``<fan-out>/<worker>/end``: its run's final status (the first final end of its runs),
  written by the end-fence winner of that run, who then starts the next waiting worker.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from hydra import clock, names
from hydra.errors import Duplicate
from hydra.model.fanout import STARTED, Plan
from hydra.model.records import Record
from hydra.store.base import Store


@dataclass
class Slot(Record):
    """A worker's start or end in a fan-out."""

    id: str
    fanout_id: str = ""
    worker: str = ""
    state: str | None = None  # start: started | skipped
    status: str | None = None  # end: the run's final status
    run_id: str | None = None
    reason: str | None = None


def slot_id(fanout_id: str, worker: str, kind: str) -> str:
    return f"{fanout_id}/{worker}/{kind}"


class FanoutStore(Store[Slot]):
    collection_name, record_type, kind = names.FANOUT_SLOTS, Slot, "fan-out slot"

    @property
    def _plans(self) -> Collection:
        return self._named(names.FANOUTS)

    def create(self, plan: Plan) -> Plan:
        """Write a fan-out's plan (once, before its runs); Duplicate when it was written already."""
        plan.created_at = clock.utcnow()
        doc = dataclasses.asdict(plan)
        doc["_id"] = doc.pop("id")
        try:
            self._plans.insert_one(doc)
        except DuplicateKeyError:
            raise Duplicate(f"fan-out {plan.id} exists") from None
        return plan

    def plan(self, fanout_id: str) -> Plan | None:
        doc = self._plans.find_one({"_id": fanout_id})
        if doc is None:
            return None
        doc["id"] = doc.pop("_id")
        doc["created_at"] = clock.aware(doc["created_at"]) if doc.get("created_at") else None
        return Plan(**{key: doc.get(key) for key in (f.name for f in dataclasses.fields(Plan)) if key in doc})

    def take(self, fanout_id: str, worker: str, kind: str, **values: str | None) -> bool:
        """Write a worker's start or end slot; whether this call wrote it (False: it was there)."""
        slot = Slot(id=slot_id(fanout_id, worker, kind), fanout_id=fanout_id, worker=worker, **values)
        try:
            self._collection.insert_one({**slot.to_doc(), "at": clock.utcnow()})
        except DuplicateKeyError:
            return False
        return True

    def start(self, fanout_id: str, worker: str, run_id: str) -> bool:
        """Take the worker's start slot to start its run; whether this call took it."""
        return self.take(fanout_id, worker, "start", state=STARTED, run_id=run_id)

    def slots(self, plan: Plan, kind: str) -> dict[str, dict]:
        """The workers' ``kind`` slots that exist (worker -> document): one lookup by ``_id`` each."""
        ids = {slot_id(plan.id, worker, kind): worker for worker in plan.workers}
        return {ids[key]: doc for key, doc in self._docs(self._collection, list(ids)).items()}
