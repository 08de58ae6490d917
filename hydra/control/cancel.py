"""Cancelling a run (``POST /runs/{id}/cancel``), decided by the run's fences like every race.

:func:`cancel_run` first records the request - ``cancel_requested_at`` on the run (MongoDB,
the truth) and the stop flag ``hydra:stop:<run_id>`` (Redis, for speed, ``hydra.broker.stops``) - then
tries to take the run's *start* fence itself (``RunStore.hold``):

* it wins: no worker has started the attempt and none ever will (a worker's claim needs
  that fence). The end is recorded as ``cancelled`` through
  :func:`hydra.dispatch.attempts.end_attempt`;
  the queued message is dropped when a worker or the controller meets it.
* it loses: a worker holds the attempt (running, or about to). That worker's watchdog
  (:class:`hydra.celery.watchdog.AttemptWatch`) sees the flag within 0.25 s (or the MongoDB field
  within 2 s, should Redis have lost it) and sets the executor's cancel event; the shell executor kills
  the whole process tree (SIGTERM, SIGKILL 1 s later) and the run is recorded
  ``cancelled`` with the output it had produced.

Should that worker die instead, the controller's failover records the attempt ``lost``;
``end_attempt`` sees the request and records ``cancelled`` - no failover, no retry. The same
holds for a command that fails on its own while the cancel is under way.
"""

from __future__ import annotations

import logging

from hydra.celery.app import current_pipeline
from hydra.dispatch.attempts import end_attempt, request_stop
from hydra.dispatch.pipeline import Pipeline
from hydra.errors import Conflict
from hydra.model.outcome import Outcome
from hydra.model.records import Job, Run
from hydra.model.status import RunStatus

log = logging.getLogger(__name__)


def cancel_run(run_id: str, *, by: str = "api", pipeline: Pipeline | None = None) -> tuple[Run, bool]:
    """Cancel a run; returns (the run, True when it ended now / False when the worker running
    it has been asked to stop). Raises NotFound, and Conflict when it already ended."""
    pipeline = current_pipeline(pipeline)
    runs = pipeline.runs
    run = runs.get(run_id)
    if run.run_status.is_terminal:
        raise Conflict(f"run {run_id} already ended ({run.status})")
    runs.request_cancel(run_id)
    request_stop(run_id, f"cancel requested by {by}")
    if not runs.hold(run_id, by=f"cancel:{by}"):
        log.info("cancel requested", extra={"event": "run.cancel_requested", "run_id": run_id})
        return runs.get(run_id), False
    job = pipeline.jobs.find(run.job_id) or Job(id=run.job_id)
    end_attempt(
        run_id,
        Outcome(status=RunStatus.CANCELLED, error=f"cancelled before it started (by {by})"),
        by=by,
        job=job,
        attempt=run.attempt,
        chain=run.chain,
        pipeline=pipeline,
        holding=True,  # its start fence, taken above
    )
    return runs.get(run_id), True
