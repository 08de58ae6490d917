"""``JobStore``: every read and write of ``job_definitions``.

A job is what a user submitted; each execution of it is a run attempt (``hydra.store.runs``).
A job's ``status`` and ``last_run_id`` mirror its most recently recorded or ended run; the
run store keeps them current through :meth:`JobStore.mirror`. A worker starting that run
is not written to the job (one write less per run): a job whose latest run a worker has
claimed reads as ``running`` (:meth:`JobStore.find` looks at the run's start fence).

Listings and the controller's sweeps read the Redis indexes (``hydra.broker.index``) and
fetch the jobs by ``_id``; until those are built they run the declared MongoDB queries
(``hydra.store.schema``).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from hydra import clock, names
from hydra.errors import Conflict, Duplicate
from hydra.model.monitoring import ending
from hydra.model.namespaces import DEFAULT_NAMESPACE
from hydra.model.records import Job
from hydra.model.status import RunStatus
from hydra.store import pages
from hydra.store.base import Store

#: Stored job statuses that read as ``running`` once a worker claimed the job's latest run.
CLAIMABLE = (RunStatus.QUEUED.value, RunStatus.PENDING.value)


def new_id() -> str:
    return str(uuid.uuid4())


def stored_statuses(status: RunStatus) -> list[str]:
    """The stored statuses a job listed as ``status`` may have (``running`` is stored as the
    ``queued`` or ``pending`` it was before a worker claimed it)."""
    if status == RunStatus.RUNNING:
        return [*CLAIMABLE, RunStatus.RUNNING.value]
    return [status.value]


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
    index_part = "jobs"

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
        job = Job.from_doc(doc)
        # Filed first: the controller finds an undispatched job through its index entry.
        filed = self._indexed(
            lambda: self.index.put_job(job, latest=first_run_id, undispatched=bool(first_run_id)), "job", job.id
        )
        try:
            self._insert(doc)
        except DuplicateKeyError:  # an idempotent submission's id, stored already (its entry is the same)
            raise Duplicate(f"job {doc['_id']!r} exists already") from None
        if not filed:
            self._backlog("job", job.id)
        return job

    def mirror(self, job_id: str, run_id: str, status: RunStatus, *, ended_at: datetime | None = None) -> None:
        """The job's run ``run_id`` was recorded or ended (at ``ended_at``) as ``status``: the
        job shows it as its latest, and an end that is a success or a failure for good moves
        the job's ``last_success_at`` or ``last_failure_at`` (never back: ``$max``), in the
        same write. (MongoDB only: the run store files the job in the indexes.)"""
        change: dict = {
            "$set": {"status": status.value, "last_run_id": run_id, "updated_at": clock.utcnow()},
            "$unset": {"undispatched": ""},
        }
        which = ending(status.value) if ended_at is not None else None
        if which is not None:
            change["$max"] = {f"last_{which}_at": ended_at}
        self._collection.update_one({"_id": job_id}, change)

    def replace(self, job_id: str, spec: dict, *, schedule_changed: bool) -> Job:
        """Replace the job's body by ``spec`` (already validated); a changed schedule restarts
        its cron from now and forgets a waiting tick. Returns the stored job."""
        now = clock.utcnow()
        changes: dict = {"$set": {**stored_spec(spec), "updated_at": now}}
        if schedule_changed:
            changes["$set"]["schedule_since"] = now
            changes["$unset"] = {"queued_tick": ""}
        before = self._collection.find_one_and_update({"_id": job_id}, changes)
        job = self.get(job_id)
        previous = (before or {}).get("user")
        self._keep(lambda: self.index.put_job(job, previous_user=previous), "job", job_id)
        return job

    def mark_deleted(self, job_id: str) -> None:
        now = clock.utcnow()
        doc = self._collection.find_one_and_update(
            {"_id": job_id}, {"$set": {"deleted_at": now, "updated_at": now}}, return_document=ReturnDocument.AFTER
        )
        if doc is not None:
            job = Job.from_doc(doc)
            self._keep(lambda: self.index.put_job(job), "job", job_id)

    def dispatched(self, job: Job) -> None:
        """The job's first run is recorded: the sweep of undispatched jobs can forget it."""
        self.index.job_dispatched(job.namespace, job.id)

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
    def find(self, job_id: str) -> Job | None:
        doc = self._collection.find_one({"_id": job_id})
        return self._current([Job.from_doc(doc)])[0] if doc is not None else None

    def find_many(self, job_ids: list[str]) -> dict[str, Job]:
        """The jobs of ``job_ids`` that exist, by id (each fetched by ``_id``)."""
        docs = self._docs(self._collection, job_ids)
        return {job.id: job for job in self._current([Job.from_doc(doc) for doc in docs.values()])}

    def _current(self, jobs: list[Job]) -> list[Job]:
        """The jobs as they stand: one whose latest run a worker claimed shows ``running``."""
        waiting = {names.fence_id(j.last_run_id, "start"): j for j in jobs if j.status in CLAIMABLE and j.last_run_id}
        if waiting:
            for fence_id, start in self._docs(self._named(names.RUN_FENCES), list(waiting)).items():
                if start.get("worker_id"):
                    waiting[fence_id].status = RunStatus.RUNNING.value
        return jobs

    def live(self, job_id: str) -> Job:
        """The job, for a verb that changes it: NotFound, or Conflict once it was deleted."""
        job = self.get(job_id)
        if job.deleted_at:
            raise Conflict(f"job {job_id!r} was deleted")
        return job

    def undispatched(self, limit: int = 1000, *, created_before: datetime | None = None) -> list[Job]:
        """Jobs accepted whose first run may never have been recorded (see :meth:`create`),
        created before ``created_before`` if given; a one-off whose ``scheduled_at`` is still
        ahead waits for its time. O(such jobs); from the indexes, only those old enough are
        read (an entry's score is its job's creation time)."""
        now = clock.utcnow()
        if self._index_usable():
            entries = self.index.members(self.index.undispatched_key(ns) for ns in self.index.namespaces())
            if created_before is not None:
                cutoff = clock.millis(created_before)
                entries = [entry for entry in entries if entry[1] < cutoff]
            entries.sort(key=lambda entry: entry[1])
            found = self.find_many([member for _, _, member in entries[:limit]])
            jobs = [found[m] for _, _, m in entries[:limit] if m in found]
        else:
            jobs = [Job.from_doc(doc) for doc in self._native("jobs_undispatched", {"undispatched": True}, limit=limit)]
        if created_before is not None:
            jobs = [j for j in jobs if j.created_at is None or j.created_at < created_before]
        return [j for j in jobs if j.undispatched and not (j.scheduled_at and j.scheduled_at > now)]

    def count(self) -> int:
        """How many jobs are stored, deleted ones included (the collection's own count)."""
        return self._collection.estimated_document_count()

    def scheduled(self) -> list[Job]:
        """Every job with a cron schedule (the scheduler loads them when it starts leading)."""
        if self._index_usable():
            entries = self.index.members(self.index.scheduled_key(ns) for ns in self.index.namespaces())
            jobs = list(self.find_many([member for _, _, member in entries]).values())
        else:
            jobs = [Job.from_doc(doc) for doc in self._native("jobs_scheduled", {"schedule": {"$gt": ""}})]
        return [job for job in jobs if job.schedule and not job.deleted_at]

    def watched(self) -> list[Job] | None:
        """The jobs ``/metrics`` speaks of: every job with a cron schedule or marked
        ``monitor`` (not deleted), from the indexes; None while those are not built (a scan of
        every job at each scrape would cost O(history) on FerretDB)."""
        if not self._index_usable():
            return None
        keys = []
        for namespace in self.index.namespaces():
            keys += [self.index.scheduled_key(namespace), self.index.monitored_key(namespace)]
        ids = list(dict.fromkeys(member for _, _, member in self.index.members(keys)))
        jobs = self.find_many(ids)
        return [jobs[i] for i in ids if i in jobs and (jobs[i].schedule or jobs[i].monitor) and not jobs[i].deleted_at]

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
        ``namespaces`` when given. O(page): from the indexes, else a declared query."""

        def accept(job: Job) -> bool:
            return (
                job.deleted_at is None
                and (namespaces is None or job.namespace in namespaces)
                and (status is None or job.status == status.value)
                and (user is None or job.user == user)
            )

        if self._index_usable():
            spaces = self.index.namespaces() if namespaces is None else namespaces
            keys = [self.index.jobs_key(ns, status=status.value if status else None, user=user) for ns in spaces]
            return pages.indexed_page(self.index, keys, limit=limit, cursor=cursor, fetch=self.find_many, accept=accept)
        where: dict = {"deleted_at": None}
        if namespaces is not None:
            where["namespace"] = {"$in": namespaces}
        else:
            where = self._all_namespaces(names.JOB_DEFINITIONS, where)
        if status is not None:
            where["status"] = {"$in": stored_statuses(status)}
        if user is not None:
            where["user"] = user
        name = {(False, False): "jobs", (True, False): "jobs_by_status", (False, True): "jobs_by_user"}.get(
            (status is not None, user is not None), "jobs_by_user_status"
        )
        return self._native_page(
            name,
            where,
            limit=limit,
            cursor=cursor,
            accept=accept,
            load=lambda docs: self._current([Job.from_doc(doc) for doc in docs]),
        )
