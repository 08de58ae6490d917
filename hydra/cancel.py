"""Cancelling a run (``POST /runs/{id}/cancel``), decided by the run's fences like every race.

:func:`cancel_run` first records the request - ``cancel_requested_at`` on the run (MongoDB,
the truth) and the stop flag ``hydra:stop:<run_id>`` (Redis, for speed) - then tries to take the
run's *start* fence itself (``RunStore.hold``):

* it wins: no worker has started the attempt and none ever will (a worker's claim needs
  that fence). The end is recorded as ``cancelled`` through :func:`hydra.attempts.end_attempt`;
  the queued message is dropped when a worker or the controller meets it.
* it loses: a worker holds the attempt (running, or about to). That worker's watchdog
  (:class:`hydra.watchdog.AttemptWatch`) sees the flag within 0.25 s (or the MongoDB field
  within 2 s, should Redis have lost it) and sets the executor's cancel event; the shell executor kills
  the whole process tree (SIGTERM, SIGKILL 1 s later) and the run is recorded
  ``cancelled`` with the output it had produced.

Should that worker die instead, the controller's failover records the attempt ``lost``;
``end_attempt`` sees the request and records ``cancelled`` - no failover, no retry. The same
holds for a command that fails on its own while the cancel is under way.
"""
from __future__ import annotations

import logging

from hydra.attempts import end_attempt
from hydra.errors import Conflict
from hydra.jobs import Chain, JobStore
from hydra.runs import RunStore
from hydra.status import RunStatus
from hydra.watchdog import request_stop

log = logging.getLogger(__name__)


def cancel_run(run_id: str, *, by: str = "api", runs: RunStore | None = None) -> tuple[dict, bool]:
    """Cancel a run; returns (the run record, True when it ended now / False when the worker
    running it has been asked to stop). Raises NotFound, and Conflict when it already ended."""
    runs = runs or RunStore()
    run = runs.get(run_id)
    status = RunStatus(run["status"])
    if status.is_terminal:
        raise Conflict(f"run {run_id} already ended ({status.value})")
    runs.request_cancel(run_id)
    request_stop(run_id, f"cancel requested by {by}")
    if not runs.hold(run_id, by=f"cancel:{by}"):
        log.info("cancel requested", extra={"event": "run.cancel_requested", "run_id": run_id})
        return runs.get(run_id), False
    job = JobStore().find(run["job_id"]) or {"_id": run["job_id"]}
    end_attempt(run_id, {"status": RunStatus.CANCELLED.value, "error": f"cancelled before it started (by {by})"},
                by=by, job=job, attempt=int(run.get("attempt") or 1), chain=Chain.of_run(run),
                runs=runs)
    return runs.get(run_id), True
