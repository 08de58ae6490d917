"""``RunFences``: the write-once protocol of a run attempt, and its record read back through it.

Every attempt has two write-once records in ``run_fences``, keyed ``<run_id>/start`` and
``<run_id>/end``. Inserting one is the only way to take a decision:

* a worker may execute an attempt only after inserting its ``start`` fence; a duplicate
  start means another delivery of the same message is running it, or that the attempt was
  ended before any worker took it;
* an attempt's outcome is whoever inserts its ``end`` fence first - the worker's result,
  the controller's ``lost``, or a user's ``cancelled``; later claims are refused.

Every ender that may end an attempt no worker has started first takes its start fence itself
(a *hold*: a start fence naming no worker, :meth:`RunFences.hold`), then inserts the end
(:meth:`RunFences.finish`). So the start insert alone decides whether a worker may run it:
a worker's claim reads the end fence only when its insert fails. Only the worker whose claim
holds the start fence ends without a hold (``finish(holding=True)``), so the common path pays
nothing for it. A hold whose ender stopped before its end was recorded is ended by the
controller's sweep of sent runs (``hydra.control.sweeps``). Readers that merge the start fence
in show a hold as what it is: not started.

Why inserts and not conditional updates: a unique-key insert is atomic on MongoDB and on
FerretDB alike, while FerretDB 1.24 applies ``update_one({_id, status})`` as read-then-write,
so two racing "conditional" updates can both succeed (measured: 25 of 30 trials with eight
racers). The fences keep the guarantee on both servers. A third fence, ``<run_id>/retry``,
lets a run be retried by hand only once.

``job_runs`` documents are a materialized view written by ``_id``: when the attempt is
recorded (queued or pending: ``RunStore.record``, hydra.store.runs) and when its end fence is
won (every field of the end, kept in the fence too, so any later attempt to end the run
re-applies it). A worker starting the attempt writes only its start fence: a run read back
(:meth:`RunFences.find`, every listing) whose record still says ``queued`` but whose start
fence names a worker is ``running`` on that worker since the fence's time - one write less per
run, and no "running" that could land after the end. Each ended run is mirrored onto its job
(``JobStore.mirror``).

``RunStore`` (hydra.store.runs) is these fences plus the record and the queries; the code
outside the stores uses ``RunStore``.
"""

from __future__ import annotations

from typing import NoReturn

import redis
from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from hydra import clock, names
from hydra.broker.index import Index
from hydra.errors import Conflict, RunEnded
from hydra.model.namespaces import DEFAULT_NAMESPACE
from hydra.model.outcome import Outcome
from hydra.model.records import RUN_END_FIELDS, Fence, Job, Run
from hydra.model.status import RunStatus
from hydra.store.base import Store
from hydra.store.jobs import JobStore, new_id

#: Statuses of a run no worker has started (a queued run read back may be running: see find).
NOT_STARTED = (RunStatus.PENDING.value, RunStatus.QUEUED.value)

#: Refused deliveries noted on one run, at most (a flood of forged messages cannot grow it).
MAX_REFUSALS = 20


class RunFences(Store[Run]):
    """The fence writes of ``job_runs``/``run_fences`` (see the module docstring); ``find`` and
    ``find_many`` read a run back as the fences say it stands."""

    collection_name, record_type, kind = names.JOB_RUNS, Run, "run"

    def __init__(
        self,
        db: Database | None = None,
        jobs: JobStore | None = None,
        index: Index | None = None,
        *,
        timeout: float | None = None,
    ):
        super().__init__(
            db, index if index is not None else (jobs.index if jobs is not None else None), timeout=timeout
        )
        self.jobs = jobs or JobStore(db, self.index, timeout=timeout)

    @property
    def _fences(self) -> Collection:
        return self._named(names.RUN_FENCES)

    # -- worker side ------------------------------------------------------------------
    def claim(
        self, run_id: str, *, message: dict, worker_id: str, pid: int | None = None, incarnation: str | None = None
    ) -> Fence:
        """Take the attempt for execution on ``worker_id``; return its start fence.

        ``message`` is the task's kwargs (its job, user and namespace file the attempt as
        running in the indexes). ``incarnation`` (the worker process's token,
        hydra.celery.worker.INCARNATION) tells the controller which process of the worker
        holds the attempt. Raises RunEnded when the attempt already ended (lost, cancelled)
        or another delivery of the same message holds it.

        One operation: the start fence (the decision, and from then on what says the run is
        running: see the module docstring). An attempt ended before any worker took it - lost
        with a worker that vanished, refused, cancelled - had its start fence taken by its
        ender first (:meth:`finish`), so the insert fails; only then are the fences read, to
        say why (and to re-apply an end whose ender may have died before writing it).
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
            self._refuse_claim(run_id)
        namespace = message.get("namespace") or DEFAULT_NAMESPACE
        job_id, user = message.get("job_id") or "", message.get("user") or ""
        self._keep(
            lambda: self.index.run_claimed(namespace, run_id, worker_id=worker_id, job_id=job_id, user=user),
            "run",
            run_id,
        )
        return Fence.from_doc(start)

    def _refuse_claim(self, run_id: str) -> NoReturn:
        """A claim's start insert failed: raise RunEnded saying why. A start fence naming no
        worker is a hold (the attempt is being, or was, ended before it started): its end is
        re-applied when the record does not show it, should its ender have died before
        writing it (not otherwise: the job may have newer runs, which the re-applied end
        would hide)."""
        held = self.start_of(run_id)
        if held is not None and held.worker_id:
            raise RunEnded(f"run {run_id} is already held by {held.worker_id}")
        end = self.end_of(run_id)
        if end is not None:
            recorded = self._collection.find_one({"_id": run_id}, {"status": 1})
            if recorded is None or recorded.get("status") != end.status:
                self._materialize_end(end)
            raise RunEnded(f"run {run_id} already ended as {end.status}")
        raise RunEnded(f"run {run_id} is held by {held.by if held else None}, which is ending it")

    def finish(
        self,
        run_id: str,
        outcome: Outcome,
        *,
        status: RunStatus,
        by: str,
        raw: RunStatus | None = None,
        decision: str | None = None,
        job: Job | None = None,
        attempt: int | None = None,
        holding: bool = False,
    ) -> bool:
        """Record the attempt's end as ``status`` (``raw``: what the attempt itself came to,
        when ``status`` says what followed). Returns False, recording nothing new, when the end
        was already recorded by someone else; that end is then re-applied to the view.
        ``job`` and ``attempt`` describe the attempt should it have no record (a message
        published past Hydra's pipeline): the record is then created with its end.

        Unless ``holding`` (the caller holds the attempt's start fence: the worker whose claim
        took it, a cancel that took it), the start fence is taken first (:meth:`hold`; a
        failed insert when a worker holds it), so that no worker can start the attempt after
        its end: a claim decides by its start insert alone, without reading the end."""
        if not status.is_terminal:
            raise ValueError(f"{status} is not an end state")
        if not holding:
            self.hold(run_id, by=by)
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
        self._materialize_end(Fence.from_doc(end), job=job, attempt=attempt, worker_id=outcome.worker_id)
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
                filed = self._indexed(lambda: self.index.put_run(orphan, new=True), "run", run_id)
                try:
                    self._collection.insert_one(orphan.to_doc())
                except DuplicateKeyError:  # recorded meanwhile: end or note that one below
                    pass
                if not filed:
                    self._backlog("run", run_id)
            status = RunStatus.DEAD_LETTER if dead_letter else RunStatus.FAILED
            outcome = Outcome(status=status, error=f"refused: {reason}", finished_at=now)
            if self.finish(run_id, outcome, status=status, decision="refused", by=by):
                if existing is not None:
                    self._push_refusal(run_id, note, keep=None)
                return run_id
        self.note_refusal(run_id, note)
        return run_id

    def note_refusal(self, run_id: str, note: dict) -> None:
        """Add a refused delivery to the run's ``refusals`` (at most :data:`MAX_REFUSALS` kept)."""
        self._push_refusal(run_id, note, keep=MAX_REFUSALS)

    def _push_refusal(self, run_id: str, note: dict, *, keep: int | None) -> None:
        """``$push`` the note, one writer per run at a time: FerretDB applies an update as a
        read and a write of the whole document, so two pool processes refusing copies of one
        message in the same milliseconds lost a note (measured). A short Redis lock orders
        them; without Redis the note is pushed unordered (on MongoDB ``$push`` is atomic)."""
        try:
            lock = self.index.redis.lock(names.refusals_lock(run_id), timeout=10, blocking_timeout=10)
            held = lock.acquire()
        except redis.RedisError:
            lock, held = None, False
        try:
            run = self.find(run_id)
            if run is not None and (keep is None or len(run.refusals or []) < keep):
                self._collection.update_one({"_id": run_id}, {"$push": {"refusals": note}})
        finally:
            if lock is not None and held:
                try:
                    lock.release()
                except redis.RedisError:  # expired or Redis gone: the next writer waits at most 10 s
                    pass

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
        it (a cancel of a queued or pending run; every end but its worker's, :meth:`finish`).
        False when the fence is taken already (a worker holds it, or another ender)."""
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
        doc = self._collection.find_one_and_update(
            {"_id": run_id}, {"$set": {"retried_by": new_run_id}}, return_document=ReturnDocument.AFTER
        )
        if doc is not None:
            run = Run.from_doc(doc)
            self._keep(lambda: self.index.put_run(run), "run", run_id)

    def request_cancel(self, run_id: str) -> None:
        """Note on the run that its cancellation was asked for (see hydra.control.cancel)."""
        self._collection.update_one({"_id": run_id}, {"$set": {"cancel_requested_at": clock.utcnow()}})

    def cancel_requested(self, run_id: str) -> bool:
        doc = self._collection.find_one({"_id": run_id})
        return bool(doc and doc.get("cancel_requested_at"))

    def end_of(self, run_id: str) -> Fence | None:
        doc = self._fences.find_one({"_id": names.fence_id(run_id, "end")})
        return Fence.from_doc(doc) if doc is not None else None

    def start_of(self, run_id: str) -> Fence | None:
        doc = self._fences.find_one({"_id": names.fence_id(run_id, "start")})
        return Fence.from_doc(doc) if doc is not None else None

    def _materialize_end(
        self, end: Fence, *, job: Job | None = None, attempt: int | None = None, worker_id: str | None = None
    ) -> None:
        fields = dict(end.record)
        fields["ended_by"] = end.by
        fields.setdefault("duration", None)
        # (no projection: FerretDB 1.24 does not implement findAndModify's "fields")
        doc = self._collection.find_one_and_update({"_id": end.run_id}, {"$set": fields})
        if doc is None:
            doc = self._record_missing(end, fields, job, attempt or 1, worker_id)
        run = Run.from_doc({**doc, **fields})
        if run.job_id:
            self.jobs.mirror(run.job_id, end.run_id, RunStatus(fields["status"]), ended_at=run.finished_at or end.at)
        self._keep(lambda: self.index.run_ended(run), "run", end.run_id)

    def _record_missing(self, end: Fence, fields: dict, job: Job | None, attempt: int, worker_id: str | None) -> dict:
        """The attempt has no record (its message was published past Hydra's pipeline): make
        it from what its message said, with its end - so that the end is visible at
        GET /runs/<id> even for an attempt of no job (a refused message that was never Hydra's)."""
        queued_at = fields.get("started_at") or end.at
        if job is None or not job.id:
            run = Run(id=end.run_id, attempt=attempt, worker_id=worker_id, queued_at=queued_at)
        else:
            run = Run.of_job(
                job,
                id=end.run_id,
                attempt=attempt,
                worker_id=worker_id,
                queue=names.worker_queue(worker_id) if worker_id else None,
                queued_at=queued_at,
            )
        doc = run.to_doc()
        doc.update(fields)
        try:
            self._collection.insert_one(doc)
        except DuplicateKeyError:  # recorded meanwhile after all
            self._collection.update_one({"_id": end.run_id}, {"$set": fields})
        return doc

    # -- the record read back through the fences ---------------------------------------
    def find(self, run_id: str) -> Run | None:
        doc = self._collection.find_one({"_id": run_id})
        return self._current([Run.from_doc(doc)])[0] if doc is not None else None

    def recorded_start(self, run_id: str) -> tuple[str | None, bool | None] | None:
        """What a worker admitting the run needs of its record: the execution digest its
        publisher recorded, and whether it has a flow record (``Run.flow``: None when the
        record does not say); None when no run is recorded. One read by ``_id``: unlike
        :meth:`find` it does not look at the start fence (the worker needs what was recorded,
        not whether it runs), and it fetches those two fields alone: the whole record (the
        job's fields, the placement) was encoded by the server and decoded here for them."""
        doc = self._collection.find_one({"_id": run_id}, {"spec_digest": 1, "flow": 1})
        return (doc.get("spec_digest"), doc.get("flow")) if doc is not None else None

    def find_many(self, run_ids: list[str]) -> dict[str, Run]:
        """The runs of ``run_ids`` that exist, by id (each fetched by ``_id``)."""
        docs = self._docs(self._collection, run_ids)
        return {run.id: run for run in self._current([Run.from_doc(doc) for doc in docs.values()])}

    def _current(self, runs: list[Run]) -> list[Run]:
        """The runs as they stand: one still recorded as not started whose start fence names
        a worker is running there (a worker's claim writes only the fence); a hold (a fence
        naming no worker, taken by an ender) is not a start."""
        waiting = {names.fence_id(run.id, "start"): run for run in runs if run.status in NOT_STARTED}
        if waiting:
            for fence_id, doc in self._docs(self._fences, list(waiting)).items():
                if doc.get("worker_id"):
                    run = waiting[fence_id]
                    run.status, run.worker_id = RunStatus.RUNNING.value, doc["worker_id"]
                    run.started_at, run.pid = clock.aware(doc.get("at")), doc.get("pid")
        return runs
