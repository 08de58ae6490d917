"""Run records: one ``job_runs`` document per attempt, and the fences that decide races.

Every attempt has two write-once records in ``run_fences``, keyed ``<run_id>/start`` and
``<run_id>/end``. Inserting one is the only way to take a decision:

* a worker may execute an attempt only after inserting its ``start`` fence and seeing no
  ``end`` fence; a duplicate start means another delivery of the same message is running it;
* an attempt's outcome is whoever inserts its ``end`` fence first - the worker's result,
  the controller's ``lost``, or a user's ``cancelled``; later claims are refused.

Why inserts and not conditional updates: a unique-key insert is atomic on MongoDB and on
FerretDB alike, while FerretDB 1.24 (SQLite backend) applies ``update_one({_id, status})``
as read-then-write, so two racing "conditional" updates can both succeed (measured: 25 of
30 trials with eight racers). The fences keep the guarantee on both servers.

``job_runs`` documents are a materialized view written by ``_id`` after winning a fence.
The only write that can land out of order is a worker's "running" after the end was
recorded (a worker frozen between its start fence and that write); the worker re-reads
the end fence after writing and restores the recorded end (see :meth:`RunStore.claim`),
and any later attempt to end the run re-applies the recorded end too.
"""
from __future__ import annotations

from datetime import datetime, timezone

from pymongo.errors import DuplicateKeyError

from hydra import names, pagination
from hydra.db import Store
from hydra.errors import RunEnded
from hydra.status import RunStatus


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


#: Fields of an outcome (see hydra.executor.Outcome.as_dict) copied onto the run.
OUTCOME_FIELDS = (
    "status", "returncode", "stdout", "stderr", "stdout_bytes", "stderr_bytes",
    "stdout_truncated", "stderr_truncated", "started_at", "finished_at", "duration", "error", "pid",
    "outcome", "decision", "live_chunks",
)


def _as_datetime(value):
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


class RunStore(Store):
    """All reads and writes of ``job_runs`` and ``run_fences``."""

    collection_name, kind = names.JOB_RUNS, "run"

    @property
    def runs(self):
        return self.db[self.collection_name]

    @property
    def fences(self):
        return self.db[names.RUN_FENCES]

    # -- creation ---------------------------------------------------------------------
    def record_published(self, *, run_id: str, job: dict, attempt: int, status: RunStatus,
                         queue: str | None, worker_id: str | None, reason: str | None = None,
                         chain=None, not_before: datetime | None = None, only_new: bool = False) -> bool:
        """Record an attempt as queued (on ``worker_id``'s queue) or pending (``reason``).

        Called just before its message is published. Publishing the same attempt again
        (a pending run being placed) updates the placement of the existing record - unless
        ``only_new``: then a record with that id already there means someone else created
        this attempt first (a cron tick fired twice), nothing is written and False returned.
        """
        now = utcnow()
        placement = {"status": status.value, "queue": queue, "worker_id": worker_id,
                     "pending_reason": reason}
        doc = {
            "_id": run_id,
            "job_id": job["_id"],
            "job_name": job.get("name"),
            "user": job.get("user"),
            "attempt": attempt,
            "retry_of": getattr(chain, "retry_of", None),
            "lost": getattr(chain, "lost", 0),
            "failed": getattr(chain, "failed", 0),
            "not_before": not_before,
            "priority": job.get("priority"),
            "executor": job.get("executor") or "shell",
            "url": (job.get("http") or {}).get("url"),
            "command": job.get("command"),
            "args": job.get("args"),
            "shell": job.get("shell"),
            "timeout": job.get("timeout"),
            "queued_at": now,
            "placed_at": now if status == RunStatus.QUEUED else None,
            "started_at": None,
            "finished_at": None,
            "duration": None,
            "returncode": None,
            "stdout": "",
            "stderr": "",
            "error": None,
            **placement,
        }
        try:
            self.runs.insert_one(doc)
        except DuplicateKeyError:
            if only_new:
                return False
            if self.end_of(run_id) is not None:
                return True  # ended (e.g. cancelled while pending): keep the recorded end
            placement["placed_at"] = now if status == RunStatus.QUEUED else None
            self.runs.update_one({"_id": run_id}, {"$set": placement})
        if job.get("last_run_id") != run_id or job.get("status") != status.value:
            self._touch_job(job["_id"], run_id, status)
        return True

    # -- worker side ------------------------------------------------------------------
    def claim(self, run_id: str, *, message: dict, worker_id: str, pid: int | None = None,
              incarnation: str | None = None) -> dict:
        """Take the attempt for execution on ``worker_id``; return the start record.

        ``message`` is the task's kwargs: should the publisher have failed to record the
        attempt, the record is created here from it. ``incarnation`` (the worker process's
        token, hydra.worker.INCARNATION) tells the controller which process of the worker holds the attempt. Raises RunEnded when the attempt already
        ended (lost, cancelled) or another delivery of the same message holds it.
        """
        now = utcnow()
        start = {"_id": names.fence_id(run_id, "start"), "run_id": run_id, "worker_id": worker_id,
                 "pid": pid, "worker_incarnation": incarnation, "at": now}
        try:
            self.fences.insert_one(start)
        except DuplicateKeyError:
            held = self.fences.find_one({"_id": start["_id"]}) or {}
            raise RunEnded(f"run {run_id} is already held by {held.get('worker_id')}") from None
        job_id = message.get("job_id")
        self.runs.update_one({"_id": run_id}, {
            "$set": {"status": RunStatus.RUNNING.value, "worker_id": worker_id, "started_at": now, "pid": pid},
            "$setOnInsert": {
                "job_id": job_id, "job_name": message.get("name"), "user": message.get("user"),
                "attempt": message.get("attempt", 1), "priority": message.get("priority"),
                "command": message.get("command"), "args": message.get("args"),
                "shell": message.get("shell"), "timeout": message.get("timeout"),
                "queue": names.worker_queue(worker_id),
                "queued_at": now, "stdout": "", "stderr": ""}}, upsert=True)
        end = self.end_of(run_id)
        if end is not None:  # ended while we were claiming: undo our "running"
            self._materialize_end(end)
            raise RunEnded(f"run {run_id} already ended as {end['status']}")
        if job_id:
            self._touch_job(job_id, run_id, RunStatus.RUNNING)
        return start

    def finish(self, run_id: str, outcome: dict, *, by: str) -> bool:
        """Record the attempt's end. Returns False (and records nothing new) when the end
        was already recorded by someone else; that end is then re-applied to the view."""
        status = RunStatus(outcome["status"])
        if not status.is_terminal:
            raise ValueError(f"{status} is not an end state")
        end = {key: _as_datetime(outcome.get(key)) for key in OUTCOME_FIELDS if key in outcome}
        end.update({"_id": names.fence_id(run_id, "end"), "run_id": run_id, "status": status.value,
                    "by": by, "at": utcnow()})
        end.setdefault("finished_at", end["at"])
        try:
            self.fences.insert_one(end)
        except DuplicateKeyError:
            existing = self.end_of(run_id)
            if existing is not None:
                self._materialize_end(existing)
            return False
        self._materialize_end(end)
        return True

    def hold(self, run_id: str, *, by: str) -> bool:
        """Take the attempt's start fence without running it, so that no worker ever starts
        it (a cancel of a queued or pending run). False when a worker holds it already."""
        try:
            self.fences.insert_one({"_id": names.fence_id(run_id, "start"), "run_id": run_id,
                                    "worker_id": None, "by": by, "at": utcnow()})
        except DuplicateKeyError:
            return False
        return True

    def request_cancel(self, run_id: str) -> None:
        """Note on the run that its cancellation was asked for (see hydra.cancel)."""
        self.runs.update_one({"_id": run_id}, {"$set": {"cancel_requested_at": utcnow()}})

    def cancel_requested(self, run_id: str) -> bool:
        doc = self.find(run_id)
        return bool(doc and doc.get("cancel_requested_at"))

    def end_of(self, run_id: str) -> dict | None:
        return self.fences.find_one({"_id": names.fence_id(run_id, "end")})

    def start_of(self, run_id: str) -> dict | None:
        return self.fences.find_one({"_id": names.fence_id(run_id, "start")})

    def _materialize_end(self, end: dict) -> None:
        run_id = end["run_id"]
        fields = {key: end[key] for key in OUTCOME_FIELDS if key in end}
        fields["ended_by"] = end.get("by")
        if "duration" not in fields:
            fields["duration"] = None
        # (no projection: FerretDB 1.24 does not implement findAndModify's "fields")
        result = self.runs.find_one_and_update({"_id": run_id}, {"$set": fields})
        if result and result.get("job_id"):
            self._touch_job(result["job_id"], run_id, RunStatus(end["status"]))

    def _touch_job(self, job_id: str, run_id: str, status: RunStatus) -> None:
        """Mirror the status of the job's most recently changed run onto the job."""
        self.db[names.JOB_DEFINITIONS].update_one({"_id": job_id}, {
            "$set": {"status": status.value, "last_run_id": run_id, "updated_at": utcnow()},
            "$unset": {"undispatched": ""}})

    # -- reads --------------------------------------------------------------------------
    def for_job(self, job_id: str, *, limit: int = 100, cursor: str | None = None) -> list[dict]:
        """Runs of a job, newest first (see :meth:`page_for_job` for the next page's cursor)."""
        return self.page_for_job(job_id, limit=limit, cursor=cursor)[0]

    def page_for_job(self, job_id: str, *, limit: int = 100, cursor: str | None = None) -> tuple[list[dict], str | None]:
        return pagination.page(self.runs, {"job_id": job_id}, time_field="queued_at", limit=limit, cursor=cursor)

    def dead_letters(self, *, limit: int = 100, cursor: str | None = None, job_id: str | None = None,
                     include_retried: bool = False) -> tuple[list[dict], str | None]:
        """Dead-lettered runs, newest first; by default those not retried yet."""
        query: dict = {"status": RunStatus.DEAD_LETTER.value}
        if job_id is not None:
            query["job_id"] = job_id
        if not include_retried:
            query["retried_by"] = None
        return pagination.page(self.runs, query, time_field="queued_at", limit=limit, cursor=cursor)

    def not_started(self, job_id: str) -> list[dict]:
        """A job's runs that no worker has started yet (pending or queued)."""
        return list(self.runs.find({"job_id": job_id, "status": {"$in": [
            RunStatus.PENDING.value, RunStatus.QUEUED.value]}}))

    def active_on(self, worker_id: str) -> list[dict]:
        """Attempts placed on (queued) or running on a worker."""
        return list(self.runs.find({"worker_id": worker_id,
                                    "status": {"$in": [RunStatus.QUEUED.value, RunStatus.RUNNING.value]}}))

    def with_status(self, statuses: list[RunStatus], limit: int = 10_000) -> list[dict]:
        return list(self.runs.find({"status": {"$in": [s.value for s in statuses]}}).limit(limit))

