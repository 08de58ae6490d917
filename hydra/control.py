"""Control verbs on jobs and runs (seed 002): submit, update, delete, pause, resume,
trigger, retry. The REST API (``api.jobs``, ``api.runs``) maps HTTP onto these.

* **submit** - a plain job runs now; a job with ``scheduled_at`` in the future gets its run
  recorded at once as pending with ``not_before`` (``hydra.attempts.schedule``: MongoDB plus
  the Redis due index, published by the controller when due - never a broker ETA); a job
  with a cron ``schedule`` runs on its ticks (``hydra.scheduler``).
* **update** (PUT: a whole body; PATCH: top-level fields merged into the stored body, then
  validated as a whole) - affects future runs only: every attempt's message is built from
  the stored job when it is published. A changed ``schedule`` or ``timezone`` restarts the
  cron from now; a changed ``scheduled_at`` replaces the one-off run that has not started.
* **delete** - soft: the job gets ``deleted_at``, its schedule stops, its runs that have not
  started are cancelled, and its history stays readable (``GET /runs/{id}``,
  ``GET /jobs/{id}`` and ``/runs``). A deleted job is left out of listings and refuses verbs.
* **pause / resume** - stop and restart a cron job's ticks; ticks during the pause are not
  run later. Manual triggers still work while paused.
* **trigger** - one run now, whatever the schedule (overlap policies concern ticks only).
* **retry** (of a run that failed, timed out, was cancelled or dead-lettered) - one more
  attempt of the same chain (``attempt + 1``, ``retry_of``); if it fails too the job's retry
  policy applies as for any attempt. A run is retried at most once (a ``<run_id>/retry``
  fence decides concurrent requests); its ``retried_by`` names the new run.
"""
from __future__ import annotations

from datetime import datetime

from pymongo.errors import DuplicateKeyError

from hydra import names, scheduler
from hydra.attempts import schedule
from hydra.cancel import cancel_run
from hydra.errors import Conflict
from hydra.jobs import Chain, Dispatched, JobStore, dispatch, new_id
from hydra.runs import RunStore, utcnow
from hydra.spec import JobSpecSchema, load_job
from hydra.status import RunStatus

#: Run outcomes a user may retry.
RETRYABLE = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED, RunStatus.DEAD_LETTER})
_SPEC_FIELDS = tuple(JobSpecSchema().fields)


def submit(spec: dict, *, source: str = "api") -> tuple[dict, Dispatched | None, datetime | None]:
    """Store a validated job body and start it as it asks: (job, first run or None, when it starts)."""
    jobs = JobStore()
    if spec.get("schedule"):
        job = jobs.create(spec, source=source)
        scheduler.notify(job["_id"])
        return job, None, scheduler.next_run_at(job)
    run_id = new_id()
    job = jobs.create(spec, source=source, first_run_id=run_id)
    at = spec.get("scheduled_at")
    if at is not None and at > utcnow():
        return job, _schedule_once(job, at, run_id), at
    return job, dispatch(job, run_id=run_id), None


def _schedule_once(job: dict, at: datetime, run_id: str | None = None) -> Dispatched:
    run_id = schedule(job, at=at, run_id=run_id, reason="scheduled_at")
    JobStore().jobs.update_one({"_id": job["_id"]}, {"$set": {"scheduled_run_id": run_id}})
    return Dispatched(run_id, RunStatus.PENDING, reason=f"starts at {at.isoformat()}")


def as_body(fields: dict) -> dict:
    """Job fields as a user would send them (datetimes as ISO 8601 text)."""
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in fields.items()}


def update(job_id: str, *, spec: dict | None = None, patch: dict | None = None) -> dict:
    """Replace the job's body by ``spec`` (validated, PUT) or merge ``patch`` (some fields,
    PATCH) into it and validate the result; returns the stored job.
    Raises NotFound, Conflict (deleted) or InvalidJob (naming the field)."""
    jobs = JobStore()
    job = jobs.live(job_id)
    if patch is not None:
        stored = {key: job[key] for key in _SPEC_FIELDS if job.get(key) is not None}
        spec = load_job(as_body({**stored, **patch}))
    now = utcnow()
    changes: dict = {"$set": {**spec, "updated_at": now}}
    if (spec.get("schedule"), spec.get("timezone")) != (job.get("schedule"), job.get("timezone")):
        changes["$set"]["schedule_since"] = now
        changes["$unset"] = {"queued_tick": ""}
    jobs.jobs.update_one({"_id": job_id}, changes)
    if not _same_instant(spec.get("scheduled_at"), job.get("scheduled_at")):
        _reschedule_once(jobs.get(job_id), job.get("scheduled_run_id"))
    scheduler.notify(job_id)
    return jobs.get(job_id)


def _same_instant(a: datetime | None, b: datetime | None) -> bool:
    """Equal up to MongoDB's millisecond precision (None equals None only)."""
    if a is None or b is None:
        return a is b
    return abs((a - b).total_seconds()) < 0.001


def _reschedule_once(job: dict, previous_run: str | None) -> None:
    """``scheduled_at`` changed: the one-off run that has not started yet makes way for one at
    the new time (or none, when ``scheduled_at`` was removed)."""
    runs = RunStore()
    if previous_run:
        run = runs.find(previous_run)
        if run is not None and run["status"] in (RunStatus.PENDING.value, RunStatus.QUEUED.value):
            try:
                cancel_run(previous_run, by="reschedule", runs=runs)
            except Conflict:
                pass
    at = job.get("scheduled_at")
    if at is not None:
        if at > utcnow():
            _schedule_once(job, at)
        else:
            dispatch(job)


def delete(job_id: str) -> None:
    """Soft-delete the job (idempotent); cancel its runs that have not started."""
    jobs = JobStore()
    job = jobs.get(job_id)
    if job.get("deleted_at"):
        return
    now = utcnow()
    jobs.jobs.update_one({"_id": job_id}, {"$set": {"deleted_at": now, "updated_at": now}})
    scheduler.notify(job_id)
    runs = RunStore()
    for run in runs.not_started(job_id):
        try:
            cancel_run(run["_id"], by="delete", runs=runs)
        except Conflict:  # it ended meanwhile
            pass


def pause(job_id: str) -> dict:
    jobs = JobStore()
    job = jobs.live(job_id)
    if not job.get("schedule"):
        raise Conflict(f"job {job_id!r} has no schedule to pause")
    if not job.get("paused"):
        now = utcnow()
        jobs.jobs.update_one({"_id": job_id}, {"$set": {"paused": True, "paused_at": now, "updated_at": now}})
        scheduler.notify(job_id)
    return jobs.get(job_id)


def resume(job_id: str) -> dict:
    jobs = JobStore()
    job = jobs.live(job_id)
    if not job.get("schedule"):
        raise Conflict(f"job {job_id!r} has no schedule to resume")
    if job.get("paused"):
        now = utcnow()
        jobs.jobs.update_one({"_id": job_id}, {
            "$set": {"paused": False, "schedule_since": now, "updated_at": now},
            "$unset": {"paused_at": "", "queued_tick": ""}})
        scheduler.notify(job_id)
    return jobs.get(job_id)


def trigger(job_id: str) -> Dispatched:
    return dispatch(JobStore().live(job_id))


def retry(run_id: str) -> tuple[str, Dispatched]:
    """Start one more attempt after a run that did not succeed (see the module docstring);
    returns (job id, the new attempt)."""
    runs = RunStore()
    run = runs.get(run_id)
    status = RunStatus(run["status"])
    if status not in RETRYABLE:
        raise Conflict(f"run {run_id} is {status.value}; only {', '.join(sorted(s.value for s in RETRYABLE))} "
                       "runs can be retried")
    job = JobStore().live(run["job_id"])
    new_run = new_id()
    try:
        runs.fences.insert_one({"_id": names.fence_id(run_id, "retry"), "run_id": run_id,
                                "retried_by": new_run, "at": utcnow()})
    except DuplicateKeyError:
        fence = runs.fences.find_one({"_id": names.fence_id(run_id, "retry")}) or {}
        raise Conflict(f"run {run_id} was already retried as {fence.get('retried_by')}") from None
    runs.runs.update_one({"_id": run_id}, {"$set": {"retried_by": new_run}})
    return job["_id"], dispatch(job, attempt=int(run.get("attempt") or 1) + 1,
                                chain=Chain(run_id, int(run.get("lost") or 0), int(run.get("failed") or 0)),
                                runs=runs, run_id=new_run)
