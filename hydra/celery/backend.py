"""Hydra's Celery result backend: a task's result is its ``job_runs`` record.

Configured as ``result_backend = "hydra.celery.backend:HydraBackend"``, so every way a
``hydra.run_command`` task can end - it returned, it raised, its pool process died, it was
revoked - reaches :meth:`HydraBackend._store_result` and is recorded through the run
fences (``hydra.store.fences``) by ``hydra.dispatch.attempts.end_attempt``. Reading works the Celery way
too: ``AsyncResult(run_id).get()``
returns the run's outcome or raises the matching ``hydra.errors.CommandError``.

MongoDB outages are retried with Celery's own backoff (``result_backend_always_retry``),
so a worker keeps a finished run's result until the store is back.

Only a message Hydra signed can end a run: one this worker admitted
(``hydra.celery.worker.admit``), or - in the worker's main process, reporting a pool process
that died, a time limit, an expiry - one whose signature verifies here. Anything else (a
forged message naming a real run, Celery's report of an unknown task, a remote-control revoke)
is logged and changes nothing. Celery's own follow-ups are not used: Hydra's messages carry
no canvas, and what follows a run - its ``link`` and ``link_error`` steps, its chain, its
chord - is started from its record by whoever records its final end
(``hydra.dispatch.continuation``). A chord is published through :meth:`HydraBackend.apply_chord`
(its body pre-signed and stored with its header's run ids), and the last header part to end
decides its body. ``AsyncResult(id)`` follows a run's retries and failovers: a run that is
retried reads as not ready until its last attempt ended, and then as that attempt's outcome.
"""

from __future__ import annotations

import logging

from celery import states
from celery.backends.base import BaseBackend

from hydra import names
from hydra.broker.registry import Registry
from hydra.celery import remote, worker
from hydra.celery.orphans import end_orphaned_command
from hydra.dispatch import signing
from hydra.dispatch.attempts import end_attempt
from hydra.dispatch.canvas import Canvas, register_chord
from hydra.dispatch.envelope import Envelope
from hydra.dispatch.submissions import KEY_HOLDER, audit_submission
from hydra.errors import (
    Refused,
    StoreUnavailable,
    Unavailable,
    command_error_for,
    command_error_named,
)
from hydra.execution.isolation import end_run
from hydra.model.outcome import Outcome
from hydra.model.records import Chain, Job
from hydra.model.status import FOLLOWED, RunStatus
from hydra.store.flows import FlowStore
from hydra.store.jobs import new_id
from hydra.store.runs import RunStore

log = logging.getLogger(__name__)

#: What AsyncResult.get() answers of a run (its outcome).
OUTCOME_FIELDS = ("status", "returncode", "stdout", "stderr", "error", "worker_id", "attempt", "duration")
#: Attempts followed from one task id at most (retries and failovers).
MAX_FOLLOWED = 200
#: How a run status reads as a Celery state.
CELERY_STATE = {
    RunStatus.PENDING: states.PENDING,
    RunStatus.QUEUED: states.PENDING,
    RunStatus.RUNNING: states.STARTED,
    RunStatus.SUCCEEDED: states.SUCCESS,
    RunStatus.CANCELLED: states.REVOKED,
}


def outcome_from(result, state: str) -> Outcome | None:
    """The run outcome a Celery (state, encoded result) pair stands for; None for states
    that are not an end (STARTED, RETRY: Hydra records those itself)."""
    if state == states.SUCCESS:
        if isinstance(result, dict) and result.get("status"):
            return Outcome.from_dict(result)
        return Outcome(status=RunStatus.SUCCEEDED)
    if state == states.REVOKED:
        return Outcome(status=RunStatus.CANCELLED, error="cancelled (task revoked)")
    if state != states.FAILURE:
        return None
    exc_type = (result or {}).get("exc_type", "Exception") if isinstance(result, dict) else "Exception"
    message = (result or {}).get("exc_message") if isinstance(result, dict) else result
    if (
        command_error_named(exc_type)
        and isinstance(message, (list, tuple))
        and len(message) == 2
        and isinstance(message[1], dict)
        and message[1].get("status")
    ):
        return Outcome.from_dict(message[1])
    text = message[0] if isinstance(message, (list, tuple)) and len(message) == 1 else message
    if exc_type == "WorkerLostError":
        return Outcome(status=RunStatus.LOST, error=f"the process running the command died: {text}")
    if exc_type in ("TimeLimitExceeded", "SoftTimeLimitExceeded"):
        return Outcome(status=RunStatus.TIMED_OUT, error=f"Celery time limit exceeded: {text}")
    return Outcome(status=RunStatus.FAILED, error=f"{exc_type}: {text}")


def authentic(task_id: str, request) -> bool:
    """Whether ``request`` is a message Hydra signed for run ``task_id``: admitted by this
    worker process, or carrying a signature of exactly what it says (``hydra.dispatch.envelope``)."""
    if request is None:
        return False
    if worker.admitted(task_id, request):
        return True
    envelope = Envelope.of_request(names.TASK_RUN_COMMAND, task_id, request)
    return envelope.verify(getattr(request, signing.HEADER, None)) is None


class HydraBackend(BaseBackend):
    """Stores run outcomes in MongoDB through the run fences; reads them back for AsyncResult."""

    def __init__(self, app, url=None, **kwargs):
        super().__init__(app, url=url or "hydra://", **kwargs)
        self.runs = RunStore()
        self.flows = FlowStore(index=self.runs.index)
        self.registry = Registry()

    def exception_safe_to_retry(self, exc) -> bool:
        return isinstance(exc, StoreUnavailable)

    def _store_result(self, task_id, result, state, traceback=None, request=None, **kwargs):
        outcome = outcome_from(result, state)
        if outcome is None:
            return result
        by = self._worker_of(request)
        if state == states.FAILURE and isinstance(result, dict) and result.get("exc_type") == Refused.__name__:
            self._release(by)  # admit() recorded the refusal itself (RunStore.refuse); nothing follows it
            return result
        if not authentic(task_id, request):
            log.warning(
                "end of a message Hydra did not sign ignored",
                extra={"event": "run.unsigned_end", "run_id": task_id, "worker": by, "status": outcome.status},
            )
            return result
        if outcome.status == RunStatus.LOST and by:  # its pool process died: no orphan may live on
            end_orphaned_command(task_id, worker.slot(by))
            try:
                end_run(worker.get_policy(), worker.slot(by), task_id)  # its cgroup: every process, wherever it went
            except Exception:
                log.exception("could not end the cgroup of run %s", task_id)
        job, attempt = self._job_and_attempt(task_id, request)
        chain = Chain.from_headers(request) if request is not None else Chain()
        recorded = end_attempt(
            task_id,
            outcome,
            by=by or "worker",
            job=job,
            attempt=attempt,
            chain=chain,
            pipeline=self.app.pipeline,
            # this process's claim took the start fence (admit); any other end of the message
            # (its pool process died, it failed before its claim) takes it first
            holding=worker.admitted(task_id, request),
        )
        if recorded is None:
            log.warning(
                "late result discarded",
                extra={"event": "run.late_result", "run_id": task_id, "worker": by, "status": outcome.status},
            )
        self._release(by)
        return result

    def mark_as_failure(
        self, task_id, exc, traceback=None, request=None, store_result=True, call_errbacks=True, state=states.FAILURE
    ):
        """Record the failure, and nothing else: Celery would then mark the later steps of the
        request's chain failed and start its errbacks, whatever request it was handed; Hydra's
        messages carry none, and what follows a run starts from its record."""
        if store_result:
            self.store_result(task_id, exc, state, traceback=traceback, request=request)

    def on_chord_part_return(self, request, state, result, **kwargs):
        """Nothing here: a header part's final end is recorded by ``hydra.dispatch.continuation``."""

    def ensure_chords_allowed(self):
        """Chords are taken in by :meth:`apply_chord`."""

    def apply_chord(self, header_result_args, body, **kwargs):
        """A chord published from Python, before its header's tasks are sent: its body is
        validated, pre-signed and stored with the run ids of the header parts (Celery's frozen
        results: a chained part's is its last step's), and audited. Each header task joins it
        when it is sent; the last part to end decides the body."""
        group_id, results = header_result_args
        if remote.enabled():  # the API takes it in, as this process's token
            remote.Api().chord(group_id, [result.id for result in results], body)
            return
        pipeline = self.app.pipeline
        canvas = Canvas(lambda given: pipeline.step_message(given, KEY_HOLDER), new_id, self.app)
        step = register_chord(pipeline.flows, group_id, [result.id for result in results], body, canvas)
        audit_submission(KEY_HOLDER, step.run_id, step.kwargs, canvas.steps, parent=group_id)

    def _release(self, by: str | None) -> None:
        """The attempt no longer counts against the worker's load."""
        if by:
            try:
                self.registry.add_load(by, -1)
            except Unavailable:  # the controller resets loads of idle workers
                pass

    @staticmethod
    def _worker_of(request) -> str | None:
        """The worker recording the end: this worker process's profile (set by its bootstep,
        inherited by pool processes), else what the request says."""
        if worker.PROFILE is not None:
            return worker.PROFILE.id
        return getattr(request, "hostname", None) if request is not None else None

    def _job_and_attempt(self, task_id: str, request) -> tuple[Job, int]:
        """The job as the message carried it (the pool process has the kwargs), or as stored
        (the main process, reporting a pool process that died, has only the headers)."""
        message = getattr(request, "kwargs", None) if request is not None else None
        if message:
            return Job.from_message(message), int(message.get("attempt") or 1)
        run = self.runs.find(task_id)
        if run is None:
            return Job(id=""), 1
        return self.runs.jobs.find(run.job_id) or Job(id=run.job_id), run.attempt

    def _get_task_meta_for(self, task_id):
        found = self._remote_outcome(task_id) if remote.enabled() else self._stored_outcome(task_id)
        if found is None:
            return {"status": states.PENDING, "result": None, "task_id": task_id}
        if found == states.RETRY:  # a retry or failover follows it, not recorded yet
            return {"status": states.RETRY, "result": None, "task_id": task_id}
        status = RunStatus(found["status"])
        state = CELERY_STATE.get(status, states.FAILURE)
        meta = {"task_id": task_id, "status": state, "date_done": found.get("finished_at"), "traceback": None}
        meta["children"] = []
        outcome = {key: found.get(key) for key in OUTCOME_FIELDS}
        if state == states.SUCCESS:
            meta["result"] = outcome
        elif state in (states.FAILURE, states.REVOKED):
            cls = command_error_for(status.value)
            message = found.get("error") or f"{status.value} (exit status {found.get('returncode')})"
            meta["result"] = {"exc_type": cls.__name__, "exc_module": cls.__module__, "exc_message": [message, outcome]}
        else:
            meta["result"] = None
        return meta

    def _stored_outcome(self, task_id: str) -> dict | str | None:
        """The run's last attempt as stored (a run followed by a retry or failover reads as
        its last attempt): its fields, RETRY while the next attempt is not recorded, None."""
        run = self.runs.find(task_id)
        if run is not None and run.run_status in FOLLOWED:
            latest_id = self.flows.latest(task_id)
            latest = self.runs.find(latest_id) if latest_id != task_id else run
            if latest is None or (latest.run_status in FOLLOWED and self.flows.next_of(latest.id) != ""):
                return states.RETRY
            run = latest
        if run is None:
            return None
        return {key: getattr(run, key) for key in (*OUTCOME_FIELDS, "finished_at")}

    def _remote_outcome(self, task_id: str) -> dict | str | None:
        """The same, read through the API (``hydra.celery.remote``)."""
        api = remote.Api()
        run = api.run(task_id)
        for _ in range(MAX_FOLLOWED):
            if run is None or RunStatus(run["status"]) not in FOLLOWED:
                return run
            following = api.next_of(run["id"])
            if following == "":  # nothing follows after all: its own end is the outcome
                return run
            run = api.run(following) if following else None
            if run is None:
                return states.RETRY
        return states.RETRY

    def _forget(self, task_id):
        """Runs are history: forgetting a result keeps the record."""
