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

``job_runs`` documents are a materialized view written by ``_id``: when the attempt is
recorded (queued or pending) and when its end fence is won (every field of the end, kept in
the fence too, so any later attempt to end the run re-applies it). A worker starting the
attempt writes only its start fence: a run read back (:meth:`RunStore.find`, every listing)
whose record still says ``queued`` but whose start fence names a worker is ``running`` on
that worker since the fence's time - one write less per run, and no "running" that could
land after the end. Each recorded or ended run is mirrored onto its job (``JobStore.mirror``).

Every record is filed in the Redis indexes (``hydra.broker.index``) as it is written; the
listings and sweeps below read them, and MongoDB's declared queries until they are built.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from hydra import clock, names
from hydra.broker.index import ACTIVE_VALUES, Active, Index
from hydra.errors import Conflict, RunEnded
from hydra.model.fanout import Binding
from hydra.model.outcome import Outcome
from hydra.model.params import Values
from hydra.model.records import RUN_END_FIELDS, Chain, Dispatched, Fence, Job, Run
from hydra.model.spec import DEFAULT_NAMESPACE
from hydra.model.status import RunStatus
from hydra.store import pages
from hydra.store.base import Store
from hydra.store.jobs import JobStore, new_id

#: Statuses of a run no worker has started (a queued run read back may be running: see find).
NOT_STARTED = (RunStatus.PENDING.value, RunStatus.QUEUED.value)
#: Milliseconds after which an index entry naming a run that was never stored is dropped.
DANGLING_AFTER_MS = 120_000

#: Refused deliveries noted on one run, at most (a flood of forged messages cannot grow it).
MAX_REFUSALS = 20


class RunStore(Store[Run]):
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
        params: Values | None = None,
        binding: Binding | None = None,
    ) -> bool:
        """Record an attempt as queued on a worker's queue or pending (with the reason);
        ``binding``: the fan-out it belongs to and the worker it is bound to.

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
            **(params.fields() if params else {}),
            **(binding.fields() if binding else {}),
        )
        # Filed first (only what is missing: the run may exist), so that the sweeps of runs
        # in progress find it even if this process dies right after the insert.
        filed = self._indexed(lambda: self.index.put_run(run, new=True), "run", run_id)
        try:
            self._collection.insert_one(run.to_doc())
            stored = run
        except DuplicateKeyError:
            if only_new:
                return False
            if self.end_of(run_id) is not None:
                return True  # ended (e.g. cancelled while pending): keep the recorded end
            where: dict[str, object] = {
                "status": status.value,
                "queue": placement.queue,
                "worker_id": placement.worker_id,
                "pending_reason": placement.reason,
                "placed_at": placed_at,
            }
            if digest is not None:
                where["spec_digest"] = digest
            where.update(params.fields() if params else {})
            where.update(binding.fields() if binding else {})
            doc = self._collection.find_one_and_update(
                {"_id": run_id}, {"$set": where}, return_document=ReturnDocument.AFTER
            )
            stored = Run.from_doc(doc) if doc is not None else run
            filed = self._indexed(lambda: self.index.put_run(stored), "run", run_id) and filed
        if not filed:
            self._backlog("run", run_id)
        if job.last_run_id != run_id or job.status != status.value:
            self.jobs.mirror(job.id, run_id, status)
            self._keep(
                lambda: self.index.job_run_changed(job.namespace, job.id, job.user, status.value, run_id, "record"),
                "job",
                job.id,
            )
        return True

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

        Two operations: the start fence (the decision, and from then on what says the run
        is running: see the module docstring) and a read of the end fence (an attempt ended
        before any worker took it - lost with a worker that vanished - must not start).
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
        end = self.end_of(run_id)
        if end is not None:
            self._materialize_end(end)  # (re-)applied: its ender may have died before writing it
            raise RunEnded(f"run {run_id} already ended as {end.status}")
        namespace = message.get("namespace") or DEFAULT_NAMESPACE
        job_id, user = message.get("job_id") or "", message.get("user") or ""
        self._keep(
            lambda: self.index.run_claimed(namespace, run_id, worker_id=worker_id, job_id=job_id, user=user),
            "run",
            run_id,
        )
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
        job: Job | None = None,
        attempt: int | None = None,
    ) -> bool:
        """Record the attempt's end as ``status`` (``raw``: what the attempt itself came to,
        when ``status`` says what followed). Returns False, recording nothing new, when the end
        was already recorded by someone else; that end is then re-applied to the view.
        ``job`` and ``attempt`` describe the attempt should it have no record (a message
        published past Hydra's pipeline): the record is then created with its end."""
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
            run = Run(
                id=end.run_id,
                job_id=job.id,
                job_name=job.name,
                user=job.user,
                namespace=job.namespace,
                attempt=attempt,
                priority=job.priority,
                executor=job.executor or "shell",
                command=job.command,
                args=job.args,
                shell=job.shell,
                timeout=job.timeout,
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

    # -- reads --------------------------------------------------------------------------
    def find(self, run_id: str) -> Run | None:
        doc = self._collection.find_one({"_id": run_id})
        return self._current([Run.from_doc(doc)])[0] if doc is not None else None

    def recorded_digest(self, run_id: str) -> str | None:
        """The execution digest the run's publisher recorded (None: no record, or none
        recorded). One read by ``_id``: unlike :meth:`find` it does not look at the start
        fence (a worker admitting the run needs what was recorded, not whether it runs)."""
        doc = self._collection.find_one({"_id": run_id})
        return doc.get("spec_digest") if doc is not None else None

    def find_many(self, run_ids: list[str]) -> dict[str, Run]:
        """The runs of ``run_ids`` that exist, by id (each fetched by ``_id``)."""
        docs = self._docs(self._collection, run_ids)
        return {run.id: run for run in self._current([Run.from_doc(doc) for doc in docs.values()])}

    def _current(self, runs: list[Run]) -> list[Run]:
        """The runs as they stand: one still recorded as not started whose start fence names
        a worker is running there (a worker's claim writes only the fence)."""
        waiting = {names.fence_id(run.id, "start"): run for run in runs if run.status in NOT_STARTED}
        if waiting:
            for fence_id, doc in self._docs(self._fences, list(waiting)).items():
                if doc.get("worker_id"):
                    run = waiting[fence_id]
                    run.status, run.worker_id = RunStatus.RUNNING.value, doc["worker_id"]
                    run.started_at, run.pid = clock.aware(doc.get("at")), doc.get("pid")
        return runs

    def for_job(self, job_id: str, *, limit: int = 100, cursor: str | None = None) -> list[Run]:
        """Runs of a job, newest first (see :meth:`page_for_job` for the next page's cursor)."""
        return self.page_for_job(job_id, limit=limit, cursor=cursor)[0]

    def page_for_job(
        self, job_id: str, *, limit: int = 100, cursor: str | None = None, namespace: str | None = None
    ) -> tuple[list[Run], str | None]:
        """A page of the job's runs, newest first, and the next page's cursor. O(page)."""

        def accept(run: Run) -> bool:
            return run.job_id == job_id

        if self._index_usable():
            namespace = namespace or self._namespace_of(job_id)
            if namespace is None:
                return [], None
            keys = [self.index.runs_key(namespace, job_id)]
            return pages.indexed_page(self.index, keys, limit=limit, cursor=cursor, fetch=self.find_many, accept=accept)
        return self._native_page(
            "runs_of_job", {"job_id": job_id}, limit=limit, cursor=cursor, accept=accept, load=self._load
        )

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
        ``namespaces`` when given. O(page)."""

        def accept(run: Run) -> bool:
            return (
                run.status == RunStatus.DEAD_LETTER.value
                and (namespaces is None or run.namespace in namespaces)
                and (job_id is None or run.job_id == job_id)
                and (include_retried or not run.retried_by)
            )

        if self._index_usable():
            spaces = self.index.namespaces() if namespaces is None else namespaces
            keys = [
                key for ns in spaces for key in self.index.dead_keys(ns, job_id=job_id, include_retried=include_retried)
            ]
            return pages.indexed_page(self.index, keys, limit=limit, cursor=cursor, fetch=self.find_many, accept=accept)
        where: dict = {"status": RunStatus.DEAD_LETTER.value}
        if not include_retried:
            where["retried_by"] = None
        if job_id is not None:
            where["job_id"] = job_id
            if namespaces is not None:
                where["namespace"] = {"$in": namespaces}
            name = "dead_letters_of_job"
        else:
            if namespaces is not None:
                where["namespace"] = {"$in": namespaces}
            else:
                where = self._all_namespaces(names.JOB_RUNS, where)
            name = "dead_letters"
        return self._native_page(name, where, limit=limit, cursor=cursor, accept=accept, load=self._load)

    def not_started(self, job_id: str) -> list[Run]:
        """A job's runs that no worker has started yet (pending or queued). O(runs in progress)."""

        def accept(run: Run) -> bool:
            return run.job_id == job_id and run.status in NOT_STARTED

        if self._index_usable():
            return self._in_progress(lambda a: a.job_id == job_id and a.status in NOT_STARTED, accept)
        docs = self._native("runs_not_started", {"job_id": job_id, "status": {"$in": list(NOT_STARTED)}})
        return [run for run in self._load(docs) if accept(run)]

    def active_on(self, worker_id: str) -> list[Run]:
        """Attempts placed on (queued) or running on a worker. O(runs in progress)."""
        statuses = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)

        def accept(run: Run) -> bool:
            return run.worker_id == worker_id and run.status in statuses

        if self._index_usable():
            return self._in_progress(lambda a: a.worker_id == worker_id, accept)
        docs = self._native("runs_active_on", {"worker_id": worker_id, "status": {"$in": list(statuses)}})
        return [run for run in self._load(docs) if accept(run)]

    def with_status(self, statuses: list[RunStatus], limit: int = 10_000) -> list[Run]:
        """Runs whose status is one of ``statuses``. O(runs in progress) for statuses of runs
        in progress (the sweeps); any other status is read from MongoDB (its declared query)."""
        wanted = {status.value for status in statuses}

        def accept(run: Run) -> bool:
            return run.status in wanted

        if wanted <= ACTIVE_VALUES and self._index_usable():
            # a run a worker claimed may still be filed as queued: running is asked of both
            filed = wanted | ({RunStatus.QUEUED.value} if RunStatus.RUNNING.value in wanted else set())
            return self._in_progress(lambda a: a.status in filed, accept)[:limit]
        stored = wanted | (set(NOT_STARTED) if RunStatus.RUNNING.value in wanted else set())
        where = self._all_namespaces(names.JOB_RUNS, {"status": {"$in": sorted(stored)}})
        return [run for run in self._load(self._native("runs_with_status", where, limit=limit)) if accept(run)][:limit]

    def unpublished(self, now: datetime | None = None, limit: int = 10_000) -> list[Run]:
        """Pending runs that were never published to any queue (recorded while the broker was
        unreachable, or delayed runs that are due). O(runs in progress)."""
        now = now or clock.utcnow()
        due = clock.millis(now)

        def accept(run: Run) -> bool:
            return (
                run.status == RunStatus.PENDING.value
                and not run.queue
                and (run.not_before is None or run.not_before <= now)
            )

        if self._index_usable():
            return self._in_progress(
                lambda a: (
                    a.status == RunStatus.PENDING.value
                    and not a.has_queue
                    and (a.not_before is None or a.not_before <= due)
                ),
                accept,
            )[:limit]
        return [run for run in self.with_status([RunStatus.PENDING], limit) if accept(run)]

    def of_jobs(self, job_ids: list[str]) -> list[Run]:
        """Every attempt of these jobs. O(their runs)."""
        if self._index_usable():
            jobs = self.jobs.find_many(job_ids)
            keys = [self.index.runs_key(job.namespace, job.id) for job in jobs.values()]
            return list(self.find_many([ident for _, ident in self.index.newest(keys)]).values())
        return self._load(self._native("runs_of_jobs", {"job_id": {"$in": list(job_ids)}}))

    def _load(self, docs: list[dict]) -> list[Run]:
        return self._current([Run.from_doc(doc) for doc in docs])

    def _namespace_of(self, job_id: str) -> str | None:
        doc = self.jobs._collection.find_one({"_id": job_id})
        return doc.get("namespace", DEFAULT_NAMESPACE) if doc is not None else None

    def _refile(self, run: Run) -> None:
        self._indexed(lambda: self.index.put_run(run), "run", run.id)

    def _in_progress(self, keep: Callable[[Active], bool], accept: Callable[[Run], bool]) -> list[Run]:
        """Runs the ``active`` index files as in progress and ``keep`` selects, fetched by
        ``_id`` and kept when their record matches ``accept``. An entry whose record ended is
        filed again from the record (it no longer is in progress: an end is final); one whose
        record never appeared is dropped after a grace (its insert failed)."""
        entries = [entry for entry in self.index.active() if keep(entry)]
        found = self.find_many([entry.run_id for entry in entries])
        now = clock.millis(clock.utcnow())
        runs = []
        for entry in sorted(entries, key=lambda e: (e.queued_at, e.run_id)):
            run = found.get(entry.run_id)
            if run is None:
                if now - entry.queued_at > DANGLING_AFTER_MS:
                    self.index.forget_active(entry.namespace, entry.run_id)
                continue
            if run.status not in ACTIVE_VALUES:
                self._refile(run)
                continue
            if accept(run):
                runs.append(run)
        return runs
