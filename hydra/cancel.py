"""Cancelling a run (``POST /runs/{id}/cancel``), decided by the run's fences like every race.

:func:`cancel_run` first records the request - ``cancel_requested_at`` on the run (MongoDB,
the truth) and the key ``hydra:cancel:<run_id>`` (Redis, for speed) - then tries to take the
run's *start* fence itself (``RunStore.hold``):

* it wins: no worker has started the attempt and none ever will (a worker's claim needs
  that fence). The end is recorded as ``cancelled`` through :func:`hydra.attempts.end_attempt`;
  the queued message is dropped when a worker or the controller meets it.
* it loses: a worker holds the attempt (running, or about to). That worker's
  :class:`Watcher` sees the Redis key within 0.2 s (or the MongoDB field within 5 s, should
  Redis have lost the key) and sets the executor's cancel event; the shell executor kills
  the whole process tree (SIGTERM, SIGKILL 1 s later) and the run is recorded
  ``cancelled`` with the output it had produced.

Should that worker die instead, the controller's failover records the attempt ``lost``;
``end_attempt`` sees the request and records ``cancelled`` - no failover, no retry. The same
holds for a command that fails on its own while the cancel is under way.
"""
from __future__ import annotations

import logging
import threading
import time

from hydra import names
from hydra.attempts import end_attempt
from hydra.errors import Conflict
from hydra.jobs import JobStore
from hydra.registry import get_redis
from hydra.runs import RunStore
from hydra.status import RunStatus

log = logging.getLogger(__name__)

#: How long the Redis request key lives (a run still running after that is seen through MongoDB).
KEY_TTL = 24 * 3600
#: Seconds between the worker's looks at the Redis key, and at the MongoDB record.
POLL = 0.2
STORE_POLL = 5.0


def cancel_run(run_id: str, *, by: str = "api", runs: RunStore | None = None) -> tuple[dict, bool]:
    """Cancel a run; returns (the run record, True when it ended now / False when the worker
    running it has been asked to stop). Raises NotFound, and Conflict when it already ended."""
    runs = runs or RunStore()
    run = runs.get(run_id)
    status = RunStatus(run["status"])
    if status.is_terminal:
        raise Conflict(f"run {run_id} already ended ({status.value})")
    runs.request_cancel(run_id)
    get_redis().set(names.cancel_key(run_id), by, ex=KEY_TTL)
    if not runs.hold(run_id, by=f"cancel:{by}"):
        log.info("cancel requested", extra={"event": "run.cancel_requested", "run_id": run_id})
        return runs.get(run_id), False
    job = JobStore().find(run["job_id"]) or {"_id": run["job_id"]}
    end_attempt(run_id, {"status": RunStatus.CANCELLED.value, "error": f"cancelled before it started (by {by})"},
                by=by, job=job, attempt=int(run.get("attempt") or 1), lost_before=int(run.get("lost") or 0),
                runs=runs)
    return runs.get(run_id), True


class Watcher:
    """Worker side: ``with Watcher(run_id) as cancel:`` - ``cancel`` (a threading.Event) is set
    once the run's cancellation is requested. Polls from a daemon thread until the block ends."""

    def __init__(self, run_id: str, *, poll: float = POLL, store_poll: float = STORE_POLL,
                 runs: RunStore | None = None):
        self.run_id, self.poll, self.store_poll = run_id, poll, store_poll
        self.runs = runs
        self.event = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"hydra-cancel-{run_id[:8]}", daemon=True)

    def __enter__(self) -> threading.Event:
        self._thread.start()
        return self.event

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(timeout=1.0)

    def _watch(self) -> None:
        key = names.cancel_key(self.run_id)
        next_store_look = time.monotonic() + self.store_poll
        while not self._done.is_set():
            if self._requested(key, look_in_store=time.monotonic() >= next_store_look):
                self.event.set()
                log.info("cancelling run", extra={"event": "run.cancelling", "run_id": self.run_id})
                return
            if time.monotonic() >= next_store_look:
                next_store_look = time.monotonic() + self.store_poll
            self._done.wait(self.poll)

    def _requested(self, key: str, *, look_in_store: bool) -> bool:
        try:
            if get_redis().exists(key):
                return True
        except Exception:  # noqa: BLE001 - Redis down: MongoDB still says it
            look_in_store = True
        if not look_in_store:
            return False
        try:
            return (self.runs or RunStore()).cancel_requested(self.run_id)
        except Exception:  # noqa: BLE001 - try again at the next look
            return False
