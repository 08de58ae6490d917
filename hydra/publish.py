"""Publishing ``hydra.run_command``: validate before, record after routing.

Whoever publishes - the API, the controller, a Python user's ``apply_async`` or
``send_task`` - goes through :meth:`hydra.celery.Hydra.send_task`, which calls
:func:`prepare` first: the kwargs are validated with the job schema (an invalid message is
never sent; the caller gets ``InvalidJob`` naming the field), normalized, and a message
without ``job_id`` gets a job definition of its own (so a MongoDB outage also stops the
publish). Celery then asks the affinity router for the queue, and just before the message
leaves, :func:`record_publish` (``before_task_publish``) records the attempt in
``job_runs`` as queued on its worker or pending with the reason, and replaces
``kwargsrepr`` by a short summary (logs and Flower show the job, user and command, never
the environment's values).

Celery does not let a signal handler stop a publish, so recording is the one step that can
fail without stopping it; the worker's claim then creates the record (``RunStore.claim``).
"""
from __future__ import annotations

import logging
import threading

from celery.signals import before_task_publish

from hydra import names
from hydra.errors import InvalidJob
from hydra.jobs import Chain, Dispatched, JobStore
from hydra.router import route_task
from hydra.runs import RunStore
from hydra.spec import load_message
from hydra.status import RunStatus

log = logging.getLogger(__name__)

_local = threading.local()


def expect_job(job: dict) -> None:
    """Tell :func:`prepare` which stored job the next publish in this thread runs (saves a read)."""
    _local.job = job


def take_placement(run_id: str) -> Dispatched | None:
    """Where :func:`record_publish` placed ``run_id``, if it was this thread's last publish."""
    placement = getattr(_local, "placement", None)
    _local.placement = None
    return placement if placement is not None and placement.run_id == run_id else None


def prepare(args, kwargs) -> dict:
    """Validate and normalize a message's kwargs; give it a job. Raises InvalidJob."""
    if args:
        raise InvalidJob({"args": ["hydra.run_command takes keyword arguments only; "
                                   "use apply_async(kwargs={...})"]})
    message = load_message(kwargs or {})
    expected, _local.job = getattr(_local, "job", None), None
    job_id = message.get("job_id")
    jobs = JobStore()
    if job_id is None:
        spec = {key: value for key, value in message.items() if key not in ("job_id", "attempt")}
        job = jobs.create(spec, source="python")
        message["job_id"] = job["_id"]
    elif expected is not None and expected.get("_id") == job_id:
        job = expected
    else:
        job = jobs.find(job_id)
        if job is None:
            raise InvalidJob({"job_id": [f"no job {job_id!r}"]})
    _local.prepared = job
    return message


def summary(message: dict) -> str:
    command = message.get("command") or " ".join(message.get("args") or [])
    if message.get("executor") == "http":
        command = "{method} {url}".format(**(message.get("http") or {"method": "?", "url": "?"}))
    if len(command) > 160:
        command = command[:157] + "..."
    return repr({"job": message.get("name"), "user": message.get("user"), "command": command,
                 "attempt": message.get("attempt", 1)})


def placement_of(routing_key: str | None) -> tuple[RunStatus, str | None]:
    """(status, worker id) implied by the queue a message is published to."""
    if routing_key == names.PENDING_QUEUE:
        return RunStatus.PENDING, None
    if routing_key and routing_key.startswith(names.WORKER_QUEUE_PREFIX):
        return RunStatus.QUEUED, routing_key[len(names.WORKER_QUEUE_PREFIX):]
    return RunStatus.QUEUED, None


@before_task_publish.connect(sender=names.TASK_RUN_COMMAND, weak=False)
def record_publish(sender=None, body=None, routing_key=None, headers=None, **_):
    _args, message, _embed = body
    job, _local.prepared = getattr(_local, "prepared", None), None
    run_id = headers["id"]
    headers["kwargsrepr"] = summary(message)
    status, worker_id = placement_of(routing_key)
    reason = None
    try:
        if job is None or job.get("_id") != message.get("job_id"):
            job = JobStore().get(message["job_id"])
        if status == RunStatus.PENDING:
            reason = route_task.place(message).reason
        RunStore().record_published(run_id=run_id, job=job, attempt=message.get("attempt", 1),
                                    status=status, queue=routing_key, worker_id=worker_id, reason=reason,
                                    chain=Chain.from_headers(headers))
    except Exception:  # noqa: BLE001 - Celery would swallow it; say what happened instead
        log.exception("run %s published without its record; the worker will record it", run_id)
        return
    _local.placement = Dispatched(run_id, status, worker_id=worker_id, reason=reason)
    log.info("run published", extra={"event": "run.published", "run_id": run_id, "job_id": job["_id"],
                                     "status": status.value, "worker": worker_id, "reason": reason})
