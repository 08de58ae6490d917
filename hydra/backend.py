"""Hydra's Celery result backend: a task's result is its ``job_runs`` record.

Configured as ``result_backend = "hydra.backend:HydraBackend"``, so every way a
``hydra.run_command`` task can end - it returned, it raised, its pool process died, it was
revoked - reaches :meth:`HydraBackend._store_result` and is recorded through the run
fences (``hydra.runs``). Reading works the Celery way too: ``AsyncResult(run_id).get()``
returns the run's outcome or raises the matching ``hydra.errors.CommandError``.

MongoDB outages are retried with Celery's own backoff (``result_backend_always_retry``),
so a worker keeps a finished run's result until the store is back.
"""
from __future__ import annotations

import logging

from celery import states
from celery.backends.base import BaseBackend
from redis.exceptions import RedisError

from hydra import errors
from hydra.attempts import end_attempt
from hydra.db import UNAVAILABLE_ERRORS
from hydra.jobs import Chain, JobStore
from hydra.registry import Registry
from hydra.runs import RunStore
from hydra.status import RunStatus
from hydra.worker import end_orphaned_command

log = logging.getLogger(__name__)

_COMMAND_ERRORS = {cls.__name__: cls for cls in (
    errors.CommandError, errors.CommandFailed, errors.CommandTimedOut, errors.CommandCancelled,
    errors.Refused)}

#: How a run status reads as a Celery state.
CELERY_STATE = {
    RunStatus.PENDING: states.PENDING,
    RunStatus.QUEUED: states.PENDING,
    RunStatus.RUNNING: states.STARTED,
    RunStatus.SUCCEEDED: states.SUCCESS,
    RunStatus.CANCELLED: states.REVOKED,
}
_ERROR_FOR_STATUS = {
    RunStatus.TIMED_OUT: errors.CommandTimedOut,
    RunStatus.CANCELLED: errors.CommandCancelled,
}


def outcome_from(result, state: str) -> dict | None:
    """The run outcome a Celery (state, encoded result) pair stands for; None for states
    that are not an end (STARTED, RETRY: Hydra records those itself)."""
    if state == states.SUCCESS:
        return dict(result) if isinstance(result, dict) else {
            "status": RunStatus.SUCCEEDED.value, "error": None}
    if state == states.REVOKED:
        return {"status": RunStatus.CANCELLED.value, "error": "cancelled (task revoked)"}
    if state != states.FAILURE:
        return None
    exc_type = (result or {}).get("exc_type", "Exception") if isinstance(result, dict) else "Exception"
    message = (result or {}).get("exc_message") if isinstance(result, dict) else result
    if exc_type in _COMMAND_ERRORS and isinstance(message, (list, tuple)) and len(message) == 2 \
            and isinstance(message[1], dict) and message[1].get("status"):
        return dict(message[1])
    text = message[0] if isinstance(message, (list, tuple)) and len(message) == 1 else message
    if exc_type == "WorkerLostError":
        return {"status": RunStatus.LOST.value, "error": f"the process running the command died: {text}"}
    if exc_type in ("TimeLimitExceeded", "SoftTimeLimitExceeded"):
        return {"status": RunStatus.TIMED_OUT.value, "error": f"Celery time limit exceeded: {text}"}
    return {"status": RunStatus.FAILED.value, "error": f"{exc_type}: {text}"}


class HydraBackend(BaseBackend):
    """Stores run outcomes in MongoDB through the run fences; reads them back for AsyncResult."""

    def __init__(self, app, url=None, **kwargs):
        super().__init__(app, url=url or "hydra://", **kwargs)
        self.runs = RunStore()
        self.registry = Registry()

    def exception_safe_to_retry(self, exc) -> bool:
        return isinstance(exc, UNAVAILABLE_ERRORS)

    def _store_result(self, task_id, result, state, traceback=None, request=None, **kwargs):
        outcome = outcome_from(result, state)
        if outcome is None:
            return result
        worker = getattr(request, "hostname", None) if request is not None else None
        if outcome["status"] == RunStatus.LOST.value:  # its pool process died: no orphan may live on
            end_orphaned_command(task_id)
        job, attempt = self._job_and_attempt(task_id, request)
        chain = Chain.from_headers(request) if request is not None else Chain()
        recorded = end_attempt(task_id, outcome, by=worker or "worker", job=job, attempt=attempt, chain=chain,
                               runs=self.runs)
        if not recorded:
            log.warning("late result discarded", extra={
                "event": "run.late_result", "run_id": task_id, "worker": worker,
                "status": outcome.get("status")})
        if worker:
            try:
                self.registry.add_load(worker, -1)
            except RedisError:  # the controller resets loads of idle workers
                pass
        return result

    def _job_and_attempt(self, task_id: str, request) -> tuple[dict, int]:
        """The job as the message carried it (the pool process has the kwargs), or as stored
        (the main process, reporting a pool process that died, has only the headers)."""
        message = getattr(request, "kwargs", None) if request is not None else None
        if message:
            return message, int(message.get("attempt") or 1)
        run = self.runs.find(task_id) or {}
        job = JobStore().find(run.get("job_id") or "") or {"_id": run.get("job_id")}
        return job, int(run.get("attempt") or 1)

    def _get_task_meta_for(self, task_id):
        doc = self.runs.find(task_id)
        if doc is None:
            return {"status": states.PENDING, "result": None, "task_id": task_id}
        status = RunStatus(doc["status"])
        state = CELERY_STATE.get(status, states.FAILURE)
        meta = {"task_id": task_id, "status": state, "date_done": doc.get("finished_at"),
                "traceback": None, "children": []}
        outcome = {key: doc.get(key) for key in (
            "status", "returncode", "stdout", "stderr", "error", "worker_id", "attempt", "duration")}
        if state == states.SUCCESS:
            meta["result"] = outcome
        elif state in (states.FAILURE, states.REVOKED):
            cls = _ERROR_FOR_STATUS.get(status, errors.CommandFailed)
            message = doc.get("error") or f"{status.value} (exit status {doc.get('returncode')})"
            meta["result"] = {"exc_type": cls.__name__, "exc_module": cls.__module__,
                              "exc_message": [message, _jsonable(outcome)]}
        else:
            meta["result"] = None
        return meta

    def _forget(self, task_id):
        """Runs are history: forgetting a result keeps the record."""


def _jsonable(outcome: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in outcome.items()}
