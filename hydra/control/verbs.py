"""Control verbs on jobs and runs: submit, update, delete, pause, resume, trigger, retry.
The REST API (``api.jobs``, ``api.runs``) maps HTTP onto these.

* **submit** - a plain job runs now; a job with ``scheduled_at`` in the future gets its run
  recorded at once as pending with ``not_before`` (``hydra.dispatch.attempts.schedule``:
  MongoDB plus the due index, published by the controller when due - never a broker ETA); a
  job with a cron ``schedule`` runs on its ticks (``hydra.control.scheduler``).
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

Each verb takes the dispatch pipeline to use (default: the app's).
"""

from __future__ import annotations

from datetime import datetime

from hydra import clock
from hydra.broker import metrics
from hydra.broker.schedules import ScheduleFeed
from hydra.celery.app import app
from hydra.control.cancel import cancel_run
from hydra.dispatch.attempts import schedule
from hydra.dispatch.pipeline import Pipeline
from hydra.errors import Conflict
from hydra.model.records import Chain, Dispatched, Job
from hydra.model.spec import load_job
from hydra.model.status import RETRYABLE, RunStatus
from hydra.store.jobs import new_id


def submit(
    spec: dict, *, source: str = "api", pipeline: Pipeline | None = None
) -> tuple[Job, Dispatched | None, datetime | None]:
    """Store a validated job body and start it as it asks: (job, first run or None, when it starts)."""
    pipeline = pipeline or app.pipeline
    jobs = pipeline.jobs
    if spec.get("schedule"):
        job = jobs.create(spec, source=source)
        metrics.job_submitted(source)
        ScheduleFeed().notify(job.id)
        return job, None, job.next_run_at()
    run_id = new_id()
    job = jobs.create(spec, source=source, first_run_id=run_id)
    metrics.job_submitted(source)
    at = spec.get("scheduled_at")
    if at is not None and at > clock.utcnow():
        return job, _schedule_once(job, at, pipeline, run_id), at
    return job, pipeline.dispatch(job, run_id=run_id), None


def _schedule_once(job: Job, at: datetime, pipeline: Pipeline, run_id: str | None = None) -> Dispatched:
    run_id = schedule(job, at=at, run_id=run_id, reason="scheduled_at", runs=pipeline.runs)
    pipeline.jobs.set_scheduled_run(job.id, run_id)
    return Dispatched(run_id, RunStatus.PENDING, reason=f"starts at {at.isoformat()}")


def as_body(fields: dict) -> dict:
    """Job fields as a user would send them (datetimes as ISO 8601 text)."""
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in fields.items()}


def update(
    job_id: str, *, spec: dict | None = None, patch: dict | None = None, pipeline: Pipeline | None = None
) -> Job:
    """Replace the job's body by ``spec`` (validated, PUT) or merge ``patch`` (some fields,
    PATCH) into it and validate the result; returns the stored job.
    Raises NotFound, Conflict (deleted) or InvalidJob (naming the field)."""
    pipeline = pipeline or app.pipeline
    job = pipeline.jobs.live(job_id)
    if patch is not None:
        spec = load_job(as_body({**job.spec(), **patch}))
    assert spec is not None
    changed = (spec.get("schedule"), spec.get("timezone")) != (job.schedule, job.timezone)
    updated = pipeline.jobs.replace(job_id, spec, schedule_changed=changed)
    if not _same_instant(spec.get("scheduled_at"), job.scheduled_at):
        _reschedule_once(updated, job.scheduled_run_id, pipeline)
    ScheduleFeed().notify(job_id)
    return pipeline.jobs.get(job_id)


def _same_instant(a: datetime | None, b: datetime | None) -> bool:
    """Equal up to MongoDB's millisecond precision (None equals None only)."""
    if a is None or b is None:
        return a is b
    return abs((a - b).total_seconds()) < 0.001


def _reschedule_once(job: Job, previous_run: str | None, pipeline: Pipeline) -> None:
    """``scheduled_at`` changed: the one-off run that has not started yet makes way for one at
    the new time (or none, when ``scheduled_at`` was removed)."""
    if previous_run:
        run = pipeline.runs.find(previous_run)
        if run is not None and run.status in (RunStatus.PENDING.value, RunStatus.QUEUED.value):
            try:
                cancel_run(previous_run, by="reschedule", pipeline=pipeline)
            except Conflict:
                pass
    if job.scheduled_at is not None:
        if job.scheduled_at > clock.utcnow():
            _schedule_once(job, job.scheduled_at, pipeline)
        else:
            pipeline.dispatch(job)


def delete(job_id: str, *, pipeline: Pipeline | None = None) -> None:
    """Soft-delete the job (idempotent); cancel its runs that have not started."""
    pipeline = pipeline or app.pipeline
    job = pipeline.jobs.get(job_id)
    if job.deleted_at:
        return
    pipeline.jobs.mark_deleted(job_id)
    ScheduleFeed().notify(job_id)
    for run in pipeline.runs.not_started(job_id):
        try:
            cancel_run(run.id, by="delete", pipeline=pipeline)
        except Conflict:  # it ended meanwhile
            pass


def pause(job_id: str, *, pipeline: Pipeline | None = None) -> Job:
    jobs = (pipeline or app.pipeline).jobs
    job = jobs.live(job_id)
    if not job.schedule:
        raise Conflict(f"job {job_id!r} has no schedule to pause")
    if job.paused:
        return job
    paused = jobs.pause(job_id)
    ScheduleFeed().notify(job_id)
    return paused


def resume(job_id: str, *, pipeline: Pipeline | None = None) -> Job:
    jobs = (pipeline or app.pipeline).jobs
    job = jobs.live(job_id)
    if not job.schedule:
        raise Conflict(f"job {job_id!r} has no schedule to resume")
    if not job.paused:
        return job
    resumed = jobs.resume(job_id)
    ScheduleFeed().notify(job_id)
    return resumed


def trigger(job_id: str, *, pipeline: Pipeline | None = None) -> Dispatched:
    pipeline = pipeline or app.pipeline
    return pipeline.dispatch(pipeline.jobs.live(job_id))


def retry(run_id: str, *, pipeline: Pipeline | None = None) -> tuple[str, Dispatched]:
    """Start one more attempt after a run that did not succeed (see the module docstring);
    returns (job id, the new attempt)."""
    pipeline = pipeline or app.pipeline
    run = pipeline.runs.get(run_id)
    if run.run_status not in RETRYABLE:
        raise Conflict(
            f"run {run_id} is {run.status}; only {', '.join(sorted(s.value for s in RETRYABLE))} runs can be retried"
        )
    job = pipeline.jobs.live(run.job_id)
    new_run = new_id()
    pipeline.runs.take_retry(run_id, new_run)
    return job.id, pipeline.dispatch(
        job, attempt=run.attempt + 1, chain=Chain(run_id, run.lost, run.failed), run_id=new_run
    )
