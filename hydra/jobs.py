"""Job definitions (``job_definitions``) and dispatching a job's attempts.

A job is what a user submitted; each execution of it is a run attempt (``hydra.runs``).
Dispatching an attempt records it and publishes one ``hydra.run_command`` message, routed
by the affinity router; the publish hook (``hydra.publish``) writes the run record, so a
Python user's ``apply_async`` and a REST submission are recorded the same way.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from hydra import metrics, names, pagination
from hydra.db import Store
from hydra.errors import Conflict
from hydra.runs import RunStore, utcnow
from hydra.spec import message_kwargs
from hydra.status import RunStatus

log = logging.getLogger(__name__)

#: What can go wrong talking to the broker while publishing.
BROKER_ERRORS = (KombuOperationalError, RedisError, ConnectionError, OSError)


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Dispatched:
    run_id: str
    status: RunStatus
    worker_id: str | None = None
    reason: str | None = None


class JobStore(Store):
    """All reads and writes of ``job_definitions``."""

    collection_name, kind = names.JOB_DEFINITIONS, "job"

    @property
    def jobs(self):
        return self.db[self.collection_name]

    def create(self, spec: dict, *, source: str = "api", first_run_id: str | None = None) -> dict:
        """Store a validated job body (``hydra.spec.load_job``) and return the document.

        With ``first_run_id`` the job is stored as accepted-but-not-yet-dispatched in the
        same insert: if the process dies before the run is recorded, the controller's
        reconciler dispatches it, so an accepted job is never half-written or lost.
        """
        now = utcnow()
        doc = {"_id": new_id(), **spec, "source": source, "status": None, "last_run_id": first_run_id,
               "paused": False, "created_at": now, "updated_at": now, "schedule_since": now}
        if first_run_id:
            # Stored as it will most likely be once published, so the publish hook has nothing to
            # write to the job (hydra.runs: record_published); "pending" is written if it is not.
            doc.update(status=RunStatus.QUEUED.value, undispatched=True)
        if doc.get("timeout") is None:
            doc.pop("timeout", None)
        self.jobs.insert_one(doc)
        metrics.job_submitted(source)
        return doc

    def live(self, job_id: str) -> dict:
        """The job, for a verb that changes it: NotFound, or Conflict once it was deleted."""
        job = self.get(job_id)
        if job.get("deleted_at"):
            raise Conflict(f"job {job_id!r} was deleted")
        return job

    def undispatched(self, limit: int = 1000) -> list[dict]:
        """Jobs accepted whose first run was never recorded (see :meth:`create`); a one-off
        whose ``scheduled_at`` is still ahead waits for its time."""
        now = utcnow()
        return [job for job in self.jobs.find({"undispatched": True}).limit(limit)
                if not (job.get("scheduled_at") and job["scheduled_at"] > now)]

    def list(self, *, status: RunStatus | None = None, user: str | None = None, limit: int = 50,
             cursor: str | None = None) -> tuple[list[dict], str | None]:
        """Jobs newest first (deleted ones left out), and the next page's cursor."""
        query: dict = {"deleted_at": None}
        if status is not None:
            query["status"] = status.value
        if user is not None:
            query["user"] = user
        return pagination.page(self.jobs, query, time_field="created_at", limit=limit, cursor=cursor)


@dataclass(frozen=True)
class Chain:
    """How an attempt follows the earlier attempts of the same run chain.

    ``lost`` counts earlier attempts lost while running, ``failed`` those that failed or
    timed out (see hydra.lifecycle). Carried in message headers, read back by workers as
    request attributes, and stored on the run.
    """

    retry_of: str | None = None
    lost: int = 0
    failed: int = 0

    def headers(self) -> dict:
        return {"hydra_retry_of": self.retry_of, "hydra_lost": self.lost, "hydra_failed": self.failed}

    @classmethod
    def from_headers(cls, headers) -> "Chain":
        get = headers.get if isinstance(headers, dict) else (lambda key, default=None: getattr(headers, key, default))
        return cls(get("hydra_retry_of"), int(get("hydra_lost", 0) or 0), int(get("hydra_failed", 0) or 0))

    @classmethod
    def of_run(cls, run: dict) -> "Chain":
        return cls(run.get("retry_of"), int(run.get("lost") or 0), int(run.get("failed") or 0))


def dispatch(job: dict, *, attempt: int = 1, chain: Chain = Chain(), runs: RunStore | None = None,
             run_id: str | None = None) -> Dispatched:
    """Publish attempt ``attempt`` of ``job`` and return where it went.

    When the broker cannot be reached the attempt is still recorded, as pending with the
    reason, and the controller's reconciler publishes it once the broker is back: an
    accepted job is never lost to a broker outage.
    """
    from hydra.celery import app  # late: the Celery app imports this module's neighbours
    from hydra.publish import expect_job, take_placement

    runs = runs or RunStore()
    run_id = run_id or new_id()
    headers = chain.headers()
    expect_job(job)
    try:
        app.send_task(names.TASK_RUN_COMMAND, kwargs=message_kwargs(job, attempt), task_id=run_id,
                      headers=headers, retry=True, retry_policy={"max_retries": 2, "interval_start": 0.1,
                                                                  "interval_step": 0.3})
    except BROKER_ERRORS as exc:
        reason = f"broker unavailable ({exc.__class__.__name__}); will be published when it is back"
        log.warning("publish failed for run %s of job %s: %s", run_id, job["_id"], exc,
                    extra={"event": "run.publish_failed", "run_id": run_id, "job_id": job["_id"]})
        runs.record_published(run_id=run_id, job=job, attempt=attempt, status=RunStatus.PENDING,
                              queue=None, worker_id=None, reason=reason, chain=chain)
        return Dispatched(run_id, RunStatus.PENDING, reason=reason)
    placement = take_placement(run_id)
    if placement is not None:
        return placement
    doc = runs.get(run_id)
    return Dispatched(run_id, RunStatus(doc["status"]), worker_id=doc.get("worker_id"),
                      reason=doc.get("pending_reason"))
