"""``RunStore``: run records, one ``job_runs`` document per attempt, and the queries over them.

The writes that decide races (claiming an attempt, ending it, refusing a message, holding it
for a cancel, a retry by hand) are the write-once fences of :mod:`hydra.store.fences`, which
``RunStore`` extends; read its docstring first. Here: recording an attempt as queued or pending
(``record``, mirrored onto its job, ``JobStore.mirror``), and the listings, lookups and counts.

Every record is filed in the Redis indexes (``hydra.broker.index``) as it is written; the
listings and sweeps below read them, and MongoDB's declared queries until they are built.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from hydra import clock, names
from hydra.broker.index_entries import ACTIVE_VALUES, Active
from hydra.model.fanout import Binding
from hydra.model.namespaces import DEFAULT_NAMESPACE
from hydra.model.params import Values
from hydra.model.records import Chain, Dispatched, Job, Run
from hydra.model.status import RunStatus
from hydra.store import flows, pages
from hydra.store.fences import NOT_STARTED, RunFences

#: Milliseconds after which an index entry naming a run that was never stored is dropped.
DANGLING_AFTER_MS = 120_000


class RunStore(RunFences):
    """Run records: the fences (:class:`RunFences`), recording attempts, and the queries."""

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
        sent_at: float | None = None,
    ) -> bool:
        """Record an attempt as queued on a worker's queue or pending (with the reason);
        ``binding``: the fan-out it belongs to and the worker it is bound to; ``sent_at``
        (epoch seconds): its message is about to be sent, noted in ``hydra:sent``
        (``hydra.broker.sent``) in the same round trip as its index entries, before the insert.

        Called just before its message is sent. Recording the same attempt again (a pending
        run being placed) updates the placement of the existing record - unless ``only_new``:
        then a record with that id already there means someone else created this attempt
        first (a cron tick fired twice), nothing is written and False returned.
        """
        now = clock.utcnow()
        status = placement.status
        placed_at = now if status == RunStatus.QUEUED else None
        run = Run.of_job(
            job,
            id=run_id,
            attempt=attempt,
            retry_of=chain.retry_of,
            lost=chain.lost,
            failed=chain.failed,
            not_before=not_before,
            queued_at=now,
            placed_at=placed_at,
            status=status.value,
            queue=placement.queue,
            worker_id=placement.worker_id,
            pending_reason=placement.reason,
            spec_digest=digest,
            flow=flows.begun(run_id),  # its flow record, if any, was written just before (FlowStore.begin)
            **(params.fields() if params else {}),
            **(binding.fields() if binding else {}),
        )
        # Filed first (only what is missing: the run may exist), so that the sweeps of runs
        # in progress find it even if this process dies right after the insert.
        filed = self._indexed(lambda: self.index.put_run(run, new=True, sent_at=sent_at), "run", run_id)
        try:
            self._insert(run.to_doc())
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

    # -- queries ------------------------------------------------------------------------
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
