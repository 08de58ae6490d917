"""``JobStore``: every read and write of ``job_definitions``.

A job is what a user submitted; each execution of it is a run attempt (``hydra.store.runs``).
A job's ``status`` and ``last_run_id`` mirror its most recently changed run; the run store
keeps them current through :meth:`JobStore.mirror`.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from pymongo.errors import DuplicateKeyError

from hydra import clock, names
from hydra.errors import Conflict, Duplicate
from hydra.model.records import Job
from hydra.model.spec import DEFAULT_NAMESPACE
from hydra.model.status import RunStatus
from hydra.store.base import Store
from hydra.store.pages import page


def new_id() -> str:
    return str(uuid.uuid4())


def stored_spec(spec: dict) -> dict:
    """A job body as stored: a structured ``http.body`` as JSON text (``http.body_json``), so
    any JSON a webhook sends - nested arrays, keys with '$' or '.' - is stored alike on
    MongoDB and FerretDB (``Job.from_doc`` turns it back)."""
    http = spec.get("http")
    if isinstance(http, dict) and http.get("body") is not None and not isinstance(http["body"], str):
        return {**spec, "http": {**http, "body": None, "body_json": json.dumps(http["body"], separators=(",", ":"))}}
    return spec


class JobStore(Store[Job]):
    collection_name, record_type, kind = names.JOB_DEFINITIONS, Job, "job"

    # -- writes ---------------------------------------------------------------------------
    def create(
        self, spec: dict, *, source: str = "api", first_run_id: str | None = None, job_id: str | None = None
    ) -> Job:
        """Store a validated job body (``hydra.model.spec.load_job``) and return the job.

        With ``first_run_id`` the job is stored as accepted-but-not-yet-dispatched in the
        same insert: if the process dies before the run is recorded, the controller's
        reconciler dispatches it, so an accepted job is never half-written or lost.
        With ``job_id`` (decided beforehand: an idempotent submission) a job already stored
        under that id raises Duplicate, and nothing is written.
        """
        now = clock.utcnow()
        doc = {
            "_id": job_id or new_id(),
            **stored_spec(spec),
            "source": source,
            "status": None,
            "last_run_id": first_run_id,
            "paused": False,
            "created_at": now,
            "updated_at": now,
            "schedule_since": now,
        }
        if first_run_id:
            # Stored as it will most likely be once published, so that recording the run has
            # nothing to write to the job (see mirror); "pending" is written if it is not.
            doc.update(status=RunStatus.QUEUED.value, undispatched=True)
        if doc.get("timeout") is None:
            doc.pop("timeout", None)
        doc["namespace"] = doc.get("namespace") or DEFAULT_NAMESPACE
        try:
            self._collection.insert_one(doc)
        except DuplicateKeyError:
            raise Duplicate(f"job {doc['_id']!r} exists already") from None
        return Job.from_doc(doc)

    def mirror(self, job_id: str, run_id: str, status: RunStatus) -> None:
        """The job's run ``run_id`` changed to ``status``: the job shows it as its latest."""
        self._collection.update_one(
            {"_id": job_id},
            {
                "$set": {"status": status.value, "last_run_id": run_id, "updated_at": clock.utcnow()},
                "$unset": {"undispatched": ""},
            },
        )

    def replace(self, job_id: str, spec: dict, *, schedule_changed: bool) -> Job:
        """Replace the job's body by ``spec`` (already validated); a changed schedule restarts
        its cron from now and forgets a waiting tick. Returns the stored job."""
        now = clock.utcnow()
        changes: dict = {"$set": {**stored_spec(spec), "updated_at": now}}
        if schedule_changed:
            changes["$set"]["schedule_since"] = now
            changes["$unset"] = {"queued_tick": ""}
        self._collection.update_one({"_id": job_id}, changes)
        return self.get(job_id)

    def mark_deleted(self, job_id: str) -> None:
        now = clock.utcnow()
        self._collection.update_one({"_id": job_id}, {"$set": {"deleted_at": now, "updated_at": now}})

    def pause(self, job_id: str) -> Job:
        now = clock.utcnow()
        self._collection.update_one({"_id": job_id}, {"$set": {"paused": True, "paused_at": now, "updated_at": now}})
        return self.get(job_id)

    def resume(self, job_id: str) -> Job:
        """Unpause: the schedule counts from now (ticks during the pause are not missed ones)."""
        now = clock.utcnow()
        self._collection.update_one(
            {"_id": job_id},
            {
                "$set": {"paused": False, "schedule_since": now, "updated_at": now},
                "$unset": {"paused_at": "", "queued_tick": ""},
            },
        )
        return self.get(job_id)

    def set_scheduled_run(self, job_id: str, run_id: str) -> None:
        """The run that a one-off job's ``scheduled_at`` will start."""
        self._collection.update_one({"_id": job_id}, {"$set": {"scheduled_run_id": run_id}})

    def remember_tick(
        self, job_id: str, tick: datetime, *, queued: bool = False, skipped: bool = False, released: bool = False
    ) -> None:
        """Store how far the job's cron schedule got (a new scheduler resumes from there)."""
        update: dict = {"$max": {"last_fire_at": tick}}  # a waiting tick fires after later ones
        marks: dict = {"queued_tick": tick} if queued else {}
        if skipped:
            marks["last_skipped_at"] = tick
        if marks:
            update["$set"] = marks
        if released:
            update["$unset"] = {"queued_tick": ""}
        self._collection.update_one({"_id": job_id}, update)

    def set_schedule_since(self, job_id: str, since: datetime) -> None:
        """Let the job's cron schedule count from ``since``, as if it had been set then (how far
        it got is forgotten); the scheduler, told of the change, catches up from there."""
        self._collection.update_one(
            {"_id": job_id}, {"$set": {"schedule_since": since}, "$unset": {"last_fire_at": ""}}
        )

    # -- reads ----------------------------------------------------------------------------
    def live(self, job_id: str) -> Job:
        """The job, for a verb that changes it: NotFound, or Conflict once it was deleted."""
        job = self.get(job_id)
        if job.deleted_at:
            raise Conflict(f"job {job_id!r} was deleted")
        return job

    def undispatched(self, limit: int = 1000) -> list[Job]:
        """Jobs accepted whose first run was never recorded (see :meth:`create`); a one-off
        whose ``scheduled_at`` is still ahead waits for its time."""
        now = clock.utcnow()
        jobs = [Job.from_doc(doc) for doc in self._collection.find({"undispatched": True}).limit(limit)]
        return [job for job in jobs if not (job.scheduled_at and job.scheduled_at > now)]

    def count(self) -> int:
        """How many jobs are stored, deleted ones included."""
        return self._collection.count_documents({})

    def scheduled(self) -> list[Job]:
        """Every job with a cron schedule (the scheduler loads them when it starts leading)."""
        return [Job.from_doc(doc) for doc in self._collection.find({"schedule": {"$ne": None}})]

    def list(
        self,
        *,
        status: RunStatus | None = None,
        user: str | None = None,
        namespaces: list[str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """Jobs newest first (deleted ones left out), and the next page's cursor; only those of
        ``namespaces`` when given."""
        query: dict = {"deleted_at": None}
        if namespaces is not None:
            query["namespace"] = {"$in": namespaces}
        if status is not None:
            query["status"] = status.value
        if user is not None:
            query["user"] = user
        docs, next_cursor = page(self._collection, query, time_field="created_at", limit=limit, cursor=cursor)
        return [Job.from_doc(doc) for doc in docs], next_cursor
