"""``RunStore``: run records, one ``job_runs`` document per attempt, and the fences that decide races.

Every attempt has two write-once records in ``run_fences``, keyed ``<run_id>/start`` and
``<run_id>/end``. Inserting one is the only way to take a decision:

* a worker may execute an attempt only after inserting its ``start`` fence and seeing no
  ``end`` fence; a duplicate start means another delivery of the same message is running it;
* an attempt's outcome is whoever inserts its ``end`` fence first - the worker's result,
  the controller's ``lost``, or a user's ``cancelled``; later claims are refused.

Why inserts and not conditional updates: a unique-key insert is atomic on MongoDB and on
FerretDB alike, while FerretDB 1.24 applies ``update_one({_id, status})`` as read-then-write,
so two racing "conditional" updates can both succeed (measured: 25 of 30 trials with eight
racers). The fences keep the guarantee on both servers. A third fence, ``<run_id>/retry``,
lets a run be retried by hand only once.

``job_runs`` documents are a materialized view written by ``_id`` after winning a fence.
The only write that can land out of order is a worker's "running" after the end was
recorded (a worker frozen between its start fence and that write); the worker re-reads
the end fence after writing and restores the recorded end (see :meth:`RunStore.claim`),
and any later attempt to end the run re-applies the recorded end too. Each change of a run
is mirrored onto its job (``JobStore.mirror``).
"""

from __future__ import annotations

from datetime import datetime

from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from hydra import clock, names
from hydra.errors import Conflict, RunEnded
from hydra.model.outcome import Outcome
from hydra.model.records import RUN_END_FIELDS, Chain, Dispatched, Fence, Job, Run
from hydra.model.spec import DEFAULT_NAMESPACE
from hydra.model.status import RunStatus
from hydra.store.base import Store
from hydra.store.jobs import JobStore, new_id
from hydra.store.pages import page

#: Refused deliveries noted on one run, at most (a flood of forged messages cannot grow it).
MAX_REFUSALS = 20


class RunStore(Store[Run]):
    collection_name, record_type, kind = names.JOB_RUNS, Run, "run"

    def __init__(self, db: Database | None = None, jobs: JobStore | None = None):
        super().__init__(db)
        self.jobs = jobs or JobStore(db)

    @property
    def _fences(self) -> Collection:
        return self.db[names.RUN_FENCES]

    # -- creation ---------------------------------------------------------------------
    def record(
        self,
        run_id: str,
        job: Job,
        *,
        attempt: int,
        placement: Dispatched,
        chain: Chain = Chain(),
        not_before: datetime | None = None,
        only_new: bool = False,
        digest: str | None = None,
    ) -> bool:
        """Record an attempt as queued on a worker's queue or pending (with the reason).

        Called just before its message is sent. Recording the same attempt again (a pending
        run being placed) updates the placement of the existing record - unless ``only_new``:
        then a record with that id already there means someone else created this attempt
        first (a cron tick fired twice), nothing is written and False returned.
        """
        now = clock.utcnow()
        status = placement.status
        placed_at = now if status == RunStatus.QUEUED else None
        run = Run(
            id=run_id,
            job_id=job.id,
            job_name=job.name,
            user=job.user,
            namespace=job.namespace,
            attempt=attempt,
            retry_of=chain.retry_of,
            lost=chain.lost,
            failed=chain.failed,
            not_before=not_before,
            priority=job.priority,
            executor=job.executor or "shell",
            url=(job.http or {}).get("url"),
            command=job.command,
            args=job.args,
            shell=job.shell,
            timeout=job.timeout,
            queued_at=now,
            placed_at=placed_at,
            status=status.value,
            queue=placement.queue,
            worker_id=placement.worker_id,
            pending_reason=placement.reason,
            spec_digest=digest,
        )
        try:
            self._collection.insert_one(run.to_doc())
        except DuplicateKeyError:
            if only_new:
                return False
            if self.end_of(run_id) is not None:
                return True  # ended (e.g. cancelled while pending): keep the recorded end
            where = {
                "status": status.value,
                "queue": placement.queue,
                "worker_id": placement.worker_id,
                "pending_reason": placement.reason,
                "placed_at": placed_at,
            }
            if digest is not None:
                where["spec_digest"] = digest
            self._collection.update_one({"_id": run_id}, {"$set": where})
        if job.last_run_id != run_id or job.status != status.value:
            self.jobs.mirror(job.id, run_id, status)
        return True

    # -- worker side ------------------------------------------------------------------
    def claim(
        self, run_id: str, *, message: dict, worker_id: str, pid: int | None = None, incarnation: str | None = None
    ) -> Fence:
        """Take the attempt for execution on ``worker_id``; return its start fence.

        ``message`` is the task's kwargs: should the publisher have failed to record the
        attempt, the record is created here from it. ``incarnation`` (the worker process's
        token, hydra.celery.worker.INCARNATION) tells the controller which process of the
        worker holds the attempt. Raises RunEnded when the attempt already ended (lost,
        cancelled) or another delivery of the same message holds it.
        """
        now = clock.utcnow()
        start = {
            "_id": names.fence_id(run_id, "start"),
            "run_id": run_id,
            "worker_id": worker_id,
            "pid": pid,
            "worker_incarnation": incarnation,
            "at": now,
        }
        try:
            self._fences.insert_one(start)
        except DuplicateKeyError:
            held = self.start_of(run_id)
            raise RunEnded(f"run {run_id} is already held by {held.worker_id if held else None}") from None
        job_id = message.get("job_id")
        self._collection.update_one(
            {"_id": run_id},
            {
                "$set": {"status": RunStatus.RUNNING.value, "worker_id": worker_id, "started_at": now, "pid": pid},
                "$setOnInsert": {
                    "job_id": job_id,
                    "job_name": message.get("name"),
                    "user": message.get("user"),
                    "namespace": message.get("namespace") or DEFAULT_NAMESPACE,
                    "attempt": message.get("attempt", 1),
                    "priority": message.get("priority"),
                    "command": message.get("command"),
                    "args": message.get("args"),
                    "shell": message.get("shell"),
                    "timeout": message.get("timeout"),
                    "queue": names.worker_queue(worker_id),
                    "queued_at": now,
                    "stdout": "",
                    "stderr": "",
                },
            },
            upsert=True,
        )
        end = self.end_of(run_id)
        if end is not None:  # ended while we were claiming: undo our "running"
            self._materialize_end(end)
            raise RunEnded(f"run {run_id} already ended as {end.status}")
        if job_id:
            self.jobs.mirror(job_id, run_id, RunStatus.RUNNING)
        return Fence.from_doc(start)

    def finish(
        self,
        run_id: str,
        outcome: Outcome,
        *,
        status: RunStatus,
        by: str,
        raw: RunStatus | None = None,
        decision: str | None = None,
    ) -> bool:
        """Record the attempt's end as ``status`` (``raw``: what the attempt itself came to,
        when ``status`` says what followed). Returns False, recording nothing new, when the end
        was already recorded by someone else; that end is then re-applied to the view."""
        if not status.is_terminal:
            raise ValueError(f"{status} is not an end state")
        end = {key: value for key, value in outcome.fields().items() if key in RUN_END_FIELDS}
        end.update(status=status.value, _id=names.fence_id(run_id, "end"), run_id=run_id, by=by, at=clock.utcnow())
        if raw is not None:
            end["outcome"] = raw.value
        if decision:
            end["decision"] = decision
        end.setdefault("finished_at", end["at"])
        try:
            self._fences.insert_one(end)
        except DuplicateKeyError:
            existing = self.end_of(run_id)
            if existing is not None:
                self._materialize_end(existing)
            return False
        self._materialize_end(Fence.from_doc(end))
        return True

    def refuse(
        self,
        run_id: str | None,
        reason: str,
        *,
        by: str,
        end_it: bool = False,
        dead_letter: bool = False,
        claimed_job: str | None = None,
    ) -> str:
        """Record that a message for ``run_id`` was refused (nothing of it ran); returns the
        run id the refusal is recorded under (a new one when the message had none).

        * No run is recorded under that id (a message Hydra never published): one is, ended
          ``failed`` (``dead_letter`` for a message nobody could decode) with the reason, its
          ``outcome`` saying ``refused``, under the claimed job when that job exists.
        * The run is recorded and has not ended: with ``end_it`` (a message Hydra signed that
          this worker must not run) it ends ``failed`` with the reason, and nothing follows;
          otherwise (a forged or undecodable message naming a real run, which must not be able
          to end it) the refusal is noted on the run (``refusals``) and the run goes on waiting
          for its real message.
        * The run has ended (a replay): the refusal is noted on it.
        """
        now = clock.utcnow()
        run_id = run_id or new_id()
        note = {"at": now, "by": by, "reason": reason[:2000]}
        existing = self.find(run_id)
        if existing is None or (end_it and self.end_of(run_id) is None):
            if existing is None:
                # Not attached to the job it claims (a forged message must not change that job's
                # status or runs), but in its namespace, so that the job's owners can read it.
                job = self.jobs.find(claimed_job) if claimed_job else None
                if claimed_job:
                    note["reason"] = f"{note['reason']} (the message claims job {claimed_job[:64]!r})"
                orphan = Run(
                    id=run_id,
                    namespace=job.namespace if job else DEFAULT_NAMESPACE,
                    status=RunStatus.QUEUED.value,
                    queued_at=now,
                    refusals=[note],
                )
                try:
                    self._collection.insert_one(orphan.to_doc())
                except DuplicateKeyError:  # recorded meanwhile: end or note that one below
                    pass
            status = RunStatus.DEAD_LETTER if dead_letter else RunStatus.FAILED
            outcome = Outcome(status=status.value, error=f"refused: {reason}", finished_at=now)
            if self.finish(run_id, outcome, status=status, decision="refused", by=by):
                if existing is not None:
                    self._collection.update_one({"_id": run_id}, {"$push": {"refusals": note}})
                return run_id
        self.note_refusal(run_id, note)
        return run_id

    def note_refusal(self, run_id: str, note: dict) -> None:
        """Add a refused delivery to the run's ``refusals`` (at most :data:`MAX_REFUSALS` kept)."""
        run = self.find(run_id)
        if run is not None and len(run.refusals or []) < MAX_REFUSALS:
            self._collection.update_one({"_id": run_id}, {"$push": {"refusals": note}})

    def note_revived(self, run_id: str, reason: str) -> None:
        """The run's message vanished and it is published again: count it, say why."""
        self._collection.update_one(
            {"_id": run_id},
            {
                "$inc": {"revived": 1},
                "$push": {"refusals": {"at": clock.utcnow(), "by": "controller", "reason": reason}},
            },
        )

    def hold(self, run_id: str, *, by: str) -> bool:
        """Take the attempt's start fence without running it, so that no worker ever starts
        it (a cancel of a queued or pending run). False when a worker holds it already."""
        try:
            self._fences.insert_one(
                {
                    "_id": names.fence_id(run_id, "start"),
                    "run_id": run_id,
                    "worker_id": None,
                    "by": by,
                    "at": clock.utcnow(),
                }
            )
        except DuplicateKeyError:
            return False
        return True

    def take_retry(self, run_id: str, new_run_id: str) -> None:
        """Decide that ``new_run_id`` retries ``run_id`` by hand; Conflict if another did first."""
        try:
            self._fences.insert_one(
                {
                    "_id": names.fence_id(run_id, "retry"),
                    "run_id": run_id,
                    "retried_by": new_run_id,
                    "at": clock.utcnow(),
                }
            )
        except DuplicateKeyError:
            doc = self._fences.find_one({"_id": names.fence_id(run_id, "retry")}) or {}
            raise Conflict(f"run {run_id} was already retried as {doc.get('retried_by')}") from None
        self._collection.update_one({"_id": run_id}, {"$set": {"retried_by": new_run_id}})

    def request_cancel(self, run_id: str) -> None:
        """Note on the run that its cancellation was asked for (see hydra.control.cancel)."""
        self._collection.update_one({"_id": run_id}, {"$set": {"cancel_requested_at": clock.utcnow()}})

    def cancel_requested(self, run_id: str) -> bool:
        run = self.find(run_id)
        return bool(run and run.cancel_requested_at)

    def end_of(self, run_id: str) -> Fence | None:
        doc = self._fences.find_one({"_id": names.fence_id(run_id, "end")})
        return Fence.from_doc(doc) if doc is not None else None

    def start_of(self, run_id: str) -> Fence | None:
        doc = self._fences.find_one({"_id": names.fence_id(run_id, "start")})
        return Fence.from_doc(doc) if doc is not None else None

    def _materialize_end(self, end: Fence) -> None:
        fields = dict(end.record)
        fields["ended_by"] = end.by
        fields.setdefault("duration", None)
        # (no projection: FerretDB 1.24 does not implement findAndModify's "fields")
        # Upserted: an end is visible at GET /runs/<id> even for an attempt nobody recorded
        # (a refused message that was never Hydra's).
        placeholder = {"job_id": "", "namespace": DEFAULT_NAMESPACE, "attempt": 1, "queued_at": end.at}
        before = self._collection.find_one_and_update(
            {"_id": end.run_id},
            {"$set": fields, "$setOnInsert": {k: v for k, v in placeholder.items() if k not in fields}},
            upsert=True,
        )
        if before and before.get("job_id"):
            self.jobs.mirror(before["job_id"], end.run_id, RunStatus(fields["status"]))

    # -- reads --------------------------------------------------------------------------
    def for_job(self, job_id: str, *, limit: int = 100, cursor: str | None = None) -> list[Run]:
        """Runs of a job, newest first (see :meth:`page_for_job` for the next page's cursor)."""
        return self.page_for_job(job_id, limit=limit, cursor=cursor)[0]

    def page_for_job(self, job_id: str, *, limit: int = 100, cursor: str | None = None) -> tuple[list[Run], str | None]:
        return self._page({"job_id": job_id}, limit, cursor)

    def dead_letters(
        self,
        *,
        limit: int = 100,
        cursor: str | None = None,
        job_id: str | None = None,
        include_retried: bool = False,
        namespaces: list[str] | None = None,
    ) -> tuple[list[Run], str | None]:
        """Dead-lettered runs, newest first; by default those not retried yet; only those of
        ``namespaces`` when given."""
        query: dict = {"status": RunStatus.DEAD_LETTER.value}
        if namespaces is not None:
            query["namespace"] = {"$in": namespaces}
        if job_id is not None:
            query["job_id"] = job_id
        if not include_retried:
            query["retried_by"] = None
        return self._page(query, limit, cursor)

    def not_started(self, job_id: str) -> list[Run]:
        """A job's runs that no worker has started yet (pending or queued)."""
        return self._find({"job_id": job_id, "status": {"$in": [RunStatus.PENDING.value, RunStatus.QUEUED.value]}})

    def active_on(self, worker_id: str) -> list[Run]:
        """Attempts placed on (queued) or running on a worker."""
        return self._find(
            {"worker_id": worker_id, "status": {"$in": [RunStatus.QUEUED.value, RunStatus.RUNNING.value]}}
        )

    def with_status(self, statuses: list[RunStatus], limit: int = 10_000) -> list[Run]:
        return self._find({"status": {"$in": [s.value for s in statuses]}}, limit)

    def of_jobs(self, job_ids: list[str]) -> list[Run]:
        """Every attempt of these jobs (one query)."""
        return self._find({"job_id": {"$in": job_ids}})

    def _find(self, query: dict, limit: int = 0) -> list[Run]:
        return [Run.from_doc(doc) for doc in self._collection.find(query).limit(limit)]

    def _page(self, query: dict, limit: int, cursor: str | None) -> tuple[list[Run], str | None]:
        docs, next_cursor = page(self._collection, query, time_field="queued_at", limit=limit, cursor=cursor)
        return [Run.from_doc(doc) for doc in docs], next_cursor
