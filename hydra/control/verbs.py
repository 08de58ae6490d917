"""Control verbs on jobs and runs: submit, update, delete, pause, resume, trigger, retry, cancel.
The REST API (``api.jobs``, ``api.runs``) maps HTTP onto these.

Each verb takes the principal acting (``actor``): it checks the actor's role in the job's
namespace (``hydra.control.access``) and records what it did in the audit trail.

* **submit** - the job's ``user`` is the actor unless it names another, which needs the
  actor's act-as right; its namespace is the one it names, else the actor's home namespace.
  A plain job runs now; a job with ``scheduled_at`` in the future gets its run recorded at
  once as pending with ``not_before`` (``hydra.dispatch.attempts.schedule``: MongoDB plus the
  due index, published by the controller when due - never a broker ETA); a job with a cron
  ``schedule`` runs on its ticks (``hydra.control.scheduler``). A job that declares a
  required parameter without a default (``hydra.model.params``) is stored without a run: it
  runs when a trigger gives the value.
* **update** (PUT: a whole body; PATCH: top-level fields merged into the stored body, and an
  ``http`` into the stored request field by field, so write-only values left out are kept:
  ``hydra.model.redaction.patched``; then validated as a whole) - affects future runs only: every attempt's message is built from
  the stored job when it is published. A changed ``schedule`` or ``timezone`` restarts the
  cron from now; a changed ``scheduled_at`` replaces the one-off run that has not started.
  A job stays in its namespace.
* **delete** - soft: the job gets ``deleted_at``, its schedule stops, its runs that have not
  started are cancelled, and its history stays readable (``GET /runs/{id}``,
  ``GET /jobs/{id}`` and ``/runs``). A deleted job is left out of listings and refuses verbs.
* **pause / resume** - stop and restart a job's automatic runs: a cron job's ticks (ticks
  during the pause are not run later), and the runs the jobs that name it in their
  ``on_success`` / ``on_failure`` / ``on_completion`` would start (the ending run notes that
  it was paused). Manual triggers still work while paused. A job with neither has nothing to pause.
* **trigger** - one run now, whatever the schedule (overlap policies concern ticks only), with
  the values the trigger gives for the job's parameters (checked against its declaration:
  InvalidJob naming the parameter under ``params``); the audit trail records them, secret
  ones redacted.
* **retry** (of a run that failed, timed out, was cancelled or dead-lettered) - one more
  attempt of the same chain (``attempt + 1``, ``retry_of``, the same parameter values); if it fails too the job's retry
  policy applies as for any attempt. A run is retried at most once (a ``<run_id>/retry``
  fence decides concurrent requests); its ``retried_by`` names the new run.
* **cancel** - see ``hydra.control.cancel``.

Each verb takes the dispatch pipeline to use (default: this process's, through
``hydra.celery.app.current_pipeline``).
"""

from __future__ import annotations

from datetime import datetime

from hydra import clock
from hydra.broker import metrics
from hydra.broker.schedules import ScheduleFeed
from hydra.celery.app import current_pipeline
from hydra.control.access import Reader, require_submit
from hydra.control.cancel import cancel_run
from hydra.dispatch import dependants, resources
from hydra.dispatch.attempts import schedule
from hydra.dispatch.pipeline import Pipeline
from hydra.errors import Conflict, Forbidden, InvalidJob
from hydra.model.access import Principal
from hydra.model.params import needs_values, resolve, shown
from hydra.model.records import Chain, Dispatched, Job, Run
from hydra.model.redaction import patched
from hydra.model.spec import load_job
from hydra.model.status import RETRYABLE, RunStatus
from hydra.store.audit import AuditStore
from hydra.store.edges import EdgeStore
from hydra.store.jobs import new_id


def audit(actor: Principal, action: str, *, namespace: str | None, target: str | None, also=None, **details) -> None:
    """Record in the audit trail that ``actor`` did ``action`` (never with a secret in ``details``);
    ``also(pipe)``: Redis commands to send with the event's filing (``AuditStore.record``)."""
    AuditStore().record(
        actor=actor.user, via=actor.via, action=action, namespace=namespace, target=target, details=details, also=also
    )


def own(spec: dict, actor: Principal, *, before: Job | None = None) -> dict:
    """The body with its user and namespace settled for ``actor``: the actor's own user and home
    namespace unless the body names others; another user needs the act-as right. Raises
    Forbidden, or InvalidJob when the settled user breaks the body's rules."""
    spec = dict(spec)
    spec["user"] = spec.get("user") or (before.user if before else actor.user)
    if not actor.may_act_as(spec["user"]):  # also to change a job that runs as someone else
        raise Forbidden(f"{actor.user!r} may not submit as {spec['user']!r} (needs the act-as right)")
    spec["namespace"] = spec.get("namespace") or (before.namespace if before else actor.home)
    if before is not None and spec["namespace"] != before.namespace:
        raise InvalidJob({"namespace": [f"a job stays in its namespace {before.namespace!r}"]})
    allowed = (spec.get("affinity") or {}).get("allowed_users") or []
    if allowed and spec["user"] not in allowed:
        raise InvalidJob({"user": [f"{spec['user']!r} is not in affinity.allowed_users"]})
    return spec


def env_names(spec: dict) -> list[str]:
    return sorted(spec.get("env") or {})


def admit(spec: dict, actor: Principal) -> dict:
    """The validated job body as ``actor`` submits it (user and namespace settled by
    :func:`own`), once ``actor`` may submit there; raises Forbidden or InvalidJob. Checked
    once per submission: an idempotent one (``hydra.control.submission``) admits the body
    before it claims its key, then :func:`start` s it."""
    spec = own(spec, actor)
    require_submit(actor, spec["namespace"])
    return spec


def submit(
    spec: dict,
    *,
    actor: Principal,
    source: str = "api",
    pipeline: Pipeline | None = None,
    job_id: str | None = None,
) -> tuple[Job, Dispatched | None, datetime | None]:
    """Store a validated job body and start it as it asks: (job, first run or None, when it
    starts); ``job_id`` when it was decided beforehand (a job file's claimed name)."""
    return start(admit(spec, actor), actor=actor, source=source, pipeline=pipeline, job_id=job_id)


def start(
    spec: dict,
    *,
    actor: Principal,
    source: str = "api",
    pipeline: Pipeline | None = None,
    job_id: str | None = None,
    run_id: str | None = None,
) -> tuple[Job, Dispatched | None, datetime | None]:
    """Store a job body :func:`admit` returned and start it as it asks: (job, first run or
    None, when it starts).

    ``job_id`` and ``run_id`` are the ids to use when they were decided beforehand (an
    idempotent submission, ``hydra.control.submission``): a job stored under ``job_id``
    already raises Duplicate, and then nothing was done."""
    pipeline = current_pipeline(pipeline)
    spec = resources.settle(spec, pipeline.router)  # the namespace's default and maximum limits
    jobs = pipeline.jobs
    dependants.check(spec, job_id=job_id, jobs=jobs, principal=actor)
    run_id = None if starts_later(spec) else run_id or new_id()
    job = jobs.create(spec, source=source, first_run_id=run_id, job_id=job_id)
    dependants.keep(job.id, spec)
    audit(  # the fields of a Python submission's event too (hydra.dispatch.submissions.audit_submission)
        actor,
        "job.submit",
        namespace=job.namespace,
        target=job.id,
        also=lambda pipe: metrics.job_submitted(source, pipe),  # counted in the event's filing round trip
        run=run_id,
        source=source,
        user=job.user,
        name=job.name,
        env=env_names(spec),
    )
    if run_id is None:
        if not spec.get("schedule"):  # waits for a trigger with its parameters' values
            return job, None, None
        ScheduleFeed().notify(job.id)
        return job, None, job.next_run_at()
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
    job_id: str,
    *,
    actor: Principal,
    spec: dict | None = None,
    patch: dict | None = None,
    pipeline: Pipeline | None = None,
) -> Job:
    """Replace the job's body by ``spec`` (validated, PUT) or merge ``patch`` (some fields,
    PATCH) into it and validate the result; returns the stored job.
    Raises NotFound, Forbidden, Conflict (deleted) or InvalidJob (naming the field)."""
    pipeline = current_pipeline(pipeline)
    job = _live(actor, "update", job_id, pipeline)
    if patch is not None:
        spec = load_job(as_body(patched(job.spec(), patch)))
    assert spec is not None
    spec = resources.settle(own(spec, actor, before=job), pipeline.router)
    dependants.check(spec, job_id=job_id, jobs=pipeline.jobs, principal=actor)
    changed = (spec.get("schedule"), spec.get("timezone")) != (job.schedule, job.timezone)
    updated = pipeline.jobs.replace(job_id, spec, schedule_changed=changed)
    dependants.keep(job_id, spec, job.spec())
    if not _same_instant(spec.get("scheduled_at"), job.scheduled_at):
        _reschedule_once(updated, job.scheduled_run_id, pipeline)
    ScheduleFeed().notify(job_id)
    changes = sorted(name for name in (patch if patch is not None else spec) if name != "env")
    audit(actor, "job.update", namespace=job.namespace, target=job_id, fields=changes, env=env_names(spec))
    return pipeline.jobs.get(job_id)


def _live(actor: Principal, action: str, job_id: str, pipeline: Pipeline) -> Job:
    """The job for a verb: NotFound / Forbidden for the actor, Conflict once deleted."""
    job = Reader(actor, runs=pipeline.runs).job(job_id, action)
    if job.deleted_at:
        raise Conflict(f"job {job_id!r} was deleted")
    return job


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


def delete(job_id: str, *, actor: Principal, pipeline: Pipeline | None = None) -> None:
    """Soft-delete the job (idempotent); cancel its runs that have not started."""
    pipeline = current_pipeline(pipeline)
    job = Reader(actor, runs=pipeline.runs).job(job_id, "delete")
    if job.deleted_at:
        return
    pipeline.jobs.mark_deleted(job_id)
    dependants.keep(job_id, {}, job.spec())  # it starts nothing any more; jobs naming it note it as deleted
    ScheduleFeed().notify(job_id)
    for run in pipeline.runs.not_started(job_id):
        try:
            cancel_run(run.id, by="delete", pipeline=pipeline)
        except Conflict:  # it ended meanwhile
            pass
    audit(actor, "job.delete", namespace=job.namespace, target=job_id)


def pause(job_id: str, *, actor: Principal, pipeline: Pipeline | None = None) -> Job:
    pipeline = current_pipeline(pipeline)
    job = _live(actor, "pause", job_id, pipeline)
    if not job.schedule and not EdgeStore().upstream_of(job_id):
        raise Conflict(f"job {job_id!r} has no schedule, and no job starts it: nothing to pause")
    if job.paused:
        return job
    paused = pipeline.jobs.pause(job_id)
    ScheduleFeed().notify(job_id)
    audit(actor, "job.pause", namespace=job.namespace, target=job_id)
    return paused


def resume(job_id: str, *, actor: Principal, pipeline: Pipeline | None = None) -> Job:
    pipeline = current_pipeline(pipeline)
    job = _live(actor, "resume", job_id, pipeline)
    if not job.schedule and not job.paused:
        raise Conflict(f"job {job_id!r} has no schedule to resume")
    if not job.paused:
        return job
    resumed = pipeline.jobs.resume(job_id)
    ScheduleFeed().notify(job_id)
    audit(actor, "job.resume", namespace=job.namespace, target=job_id)
    return resumed


def starts_later(spec: dict) -> bool:
    """A job body whose first run is not recorded at submit: a cron job's (its ticks start it),
    and one with a required parameter without a default (a trigger starts it)."""
    return bool(spec.get("schedule") or needs_values(spec))


def trigger(
    job_id: str, *, actor: Principal, params: dict | None = None, pipeline: Pipeline | None = None
) -> Dispatched:
    """One run of the job now, with ``params`` (the values of its parameters: the defaults
    for the others). Raises InvalidJob naming each bad parameter under ``params``."""
    pipeline = current_pipeline(pipeline)
    job = _live(actor, "trigger", job_id, pipeline)
    values, errors = resolve(job.params, params)
    if errors:
        raise InvalidJob({"params": errors})
    dispatched = pipeline.dispatch(job, params=values)
    secret = [item["name"] for item in job.params or () if item.get("secret")]
    audit(
        actor,
        "job.trigger",
        namespace=job.namespace,
        target=job_id,
        run=dispatched.run_id,
        **({"params": shown(values, secret)} if job.params else {}),
    )
    return dispatched


def retry(run_id: str, *, actor: Principal, pipeline: Pipeline | None = None) -> tuple[str, Dispatched]:
    """Start one more attempt after a run that did not succeed (see the module docstring);
    returns (job id, the new attempt)."""
    pipeline = current_pipeline(pipeline)
    run = Reader(actor, runs=pipeline.runs).run(run_id, "retry")
    if run.run_status not in RETRYABLE:
        raise Conflict(
            f"run {run_id} is {run.status}; only {', '.join(sorted(s.value for s in RETRYABLE))} runs can be retried"
        )
    job = _live(actor, "retry", run.job_id, pipeline)
    new_run = new_id()
    pipeline.runs.take_retry(run_id, new_run)
    dispatched = pipeline.dispatch(
        job, attempt=run.attempt + 1, chain=Chain(run_id, run.lost, run.failed), run_id=new_run, params=run.params
    )
    audit(actor, "run.retry", namespace=run.namespace, target=run_id, run=new_run)
    return job.id, dispatched


def cancel(run_id: str, *, actor: Principal, pipeline: Pipeline | None = None) -> tuple[Run, bool]:
    """Cancel a run for ``actor`` (see ``hydra.control.cancel.cancel_run``)."""
    pipeline = current_pipeline(pipeline)
    run = Reader(actor, runs=pipeline.runs).run(run_id, "cancel")
    cancelled, ended = cancel_run(run.id, by=actor.user, pipeline=pipeline)
    audit(actor, "run.cancel", namespace=run.namespace, target=run_id, ended=ended)
    return cancelled, ended
