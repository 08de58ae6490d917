"""Failover and reconciliation: no accepted job is lost to a dead worker or a forgetful Redis.

Run by the leading controller (``hydra.controller``):

* :meth:`Failover.worker_gone` - a worker went offline. When it vanished silently (crash,
  kill -9, network), its running and queued attempts are recorded ``lost`` and their next
  attempt starts at once on another eligible worker (see ``hydra.dispatch.attempts``). When it said
  goodbye (Celery's warm shutdown, e.g. a rolling restart), its queued attempts were never
  started, so they are re-placed as they are; its running ones are still finishing - Celery
  announces the shutdown before its pool drains - so they get until their own timeout
  (plus :data:`SHUTDOWN_GRACE`) to end, and are failed over only if they do not
  (:meth:`Failover.overdue`).
* :meth:`Failover.restarted` - a worker answers as a new process (its incarnation token
  changed): the attempts its previous process started are lost, even if it restarted too
  fast to be seen offline (a container keeps name and pid; the token is random per process).
* :meth:`Failover.drain` - empties a gone worker's own queue, now and whenever something
  lands there later (Redis hands unacknowledged messages back after the visibility
  timeout): messages of ended or already-claimed attempts are dropped, the rest go back
  through the router. Nothing waits in a dead worker's queue.
* :meth:`Failover.reconcile` - after Redis restarted or was flushed (its ``run_id`` changed,
  or the epoch marker vanished), every run MongoDB still holds as queued or pending is
  published again. Duplicates are harmless: a worker executes an attempt only after
  winning its start fence.
"""

from __future__ import annotations

import logging

from amqp.exceptions import ChannelError
from kombu.simple import SimpleQueue

from hydra import clock, names
from hydra.broker.due import DueIndex
from hydra.broker.redis import BrokerEpoch
from hydra.broker.sent import SentIndex, unacked_for
from hydra.dispatch.attempts import end_attempt
from hydra.dispatch.pipeline import Pipeline, Republished
from hydra.model.outcome import Outcome
from hydra.model.records import Job, Run
from hydra.model.status import RunStatus
from hydra.settings import get_settings

log = logging.getLogger(__name__)

#: Seconds past a run's own timeout that a worker shutting down warmly may take to finish it.
SHUTDOWN_GRACE = 30.0


class Failover:
    def __init__(self, app, *, pipeline: Pipeline, identity: str = "controller"):
        self.app = app
        self.pipeline = pipeline
        self.runs = self.pipeline.runs
        self.jobs = self.pipeline.jobs
        self.identity = identity
        self.epoch = BrokerEpoch()

    def broker_was_reset(self) -> bool:
        """True once per Redis server instance (see ``BrokerEpoch``): then reconcile."""
        return self.epoch.changed()

    def worker_gone(self, worker_id: str, *, goodbye: bool, reason: str, spare: str | None = None) -> dict[str, float]:
        """Fail over the worker's attempts. Returns the attempts left to finish after a
        goodbye: run id -> epoch deadline by which they must have ended. Attempts started by
        the worker's incarnation ``spare`` (it is back, as that process) are left alone."""
        finishing: dict[str, float] = {}
        for run in self.runs.active_on(worker_id):
            start = self.runs.start_of(run.id)
            if start is not None and not start.worker_id:
                start = None  # a hold (an ender took it, hydra.store.fences): no worker started it
            if start is not None and start.worker_id != worker_id:
                continue  # claimed by another worker: it is running there
            if start is not None and spare is not None and start.worker_incarnation == spare:
                continue  # started by the worker's current process
            if goodbye:  # never started: re-placed by drain(); started: still finishing
                if start is not None and start.at is not None:
                    timeout = float(run.timeout or get_settings().default_timeout)
                    finishing[run.id] = start.at.timestamp() + timeout + SHUTDOWN_GRACE
                continue
            self.end_lost(run, worker_id, reason, started=start is not None)
        return finishing

    def restarted(self, worker_id: str, incarnation: str) -> int:
        """The worker runs as the process ``incarnation`` (learned from its profile): attempts
        another process of the same worker started died with that process - even if it
        restarted too fast to be seen offline, or while no controller watched. Returns how many.

        Its queued attempts whose messages a process of it had taken but not started are
        handed back to its queue (:meth:`restore_taken`): kombu would keep them
        unacknowledged until the visibility timeout, an hour."""
        lost = 0
        waiting = []
        for run in self.runs.active_on(worker_id):
            start = self.runs.start_of(run.id)
            if start is None:
                if run.status == RunStatus.QUEUED.value:
                    waiting.append(run.id)
                continue
            held_by = start.worker_incarnation
            if start.worker_id != worker_id or held_by in (None, incarnation):
                continue
            lost += self.end_lost(run, worker_id, "restarted: the run died with its previous process", started=True)
        if waiting:
            self.restore_taken(worker_id, waiting)
        return lost

    def restore_taken(self, worker_id: str, run_ids: list[str]) -> int:
        """Put the delivered, unacknowledged messages of ``run_ids`` from the worker's queue
        back at its head (kombu's own restore); returns how many. A message its new process
        took meanwhile is then delivered twice, and runs once all the same: the start fence
        decides, and the second copy is ignored."""
        queue = names.worker_queue(worker_id)
        wanted = set(run_ids)
        restored = 0
        with self.app.connection_for_write() as conn:
            channel = conn.default_channel
            for tag in unacked_for(channel.client, queue, wanted):
                channel.qos.restore_by_tag(tag, leftmost=True)
                restored += 1
        if restored:
            log.warning(
                "handed back messages a previous process of the worker had taken",
                extra={"event": "worker.restored", "worker": worker_id, "count": restored},
            )
        return restored

    def overdue(self, worker_id: str, finishing: dict[str, float], *, now: float, reason: str) -> dict[str, float]:
        """Fail over the attempts in ``finishing`` whose deadline passed (all of them when
        ``now`` is infinite); returns those still to watch."""
        left = {}
        for run_id, deadline in finishing.items():
            if self.runs.end_of(run_id) is not None:
                continue
            if now < deadline:
                left[run_id] = deadline
                continue
            run = self.runs.find(run_id)
            if run is not None:
                self.end_lost(run, worker_id, reason, started=True)
        return left

    def end_lost(self, run: Run, worker_id: str, reason: str, *, started: bool) -> bool:
        job = self.jobs.find(run.job_id) or Job(id=run.job_id)
        outcome = Outcome(
            status=RunStatus.LOST.value,
            worker_id=worker_id,
            error=f"worker {worker_id} {reason}",
            finished_at=clock.utcnow(),
        )
        recorded = end_attempt(
            run.id,
            outcome,
            by=self.identity,
            job=job,
            attempt=run.attempt,
            chain=run.chain,
            started=started,
            pipeline=self.pipeline,
        )
        if recorded is not None:
            log.warning(
                "run lost with its worker",
                extra={
                    "event": "run.lost",
                    "run_id": run.id,
                    "job_id": run.job_id,
                    "worker": worker_id,
                    "started": started,
                },
            )
        return recorded is not None

    def drain(self, worker_id: str) -> tuple[int, int]:
        """Empty the worker's queue (it is gone, or drained) through the router; returns (dropped, re-published)."""
        dropped = moved = 0
        with self.app.connection_for_write() as conn:
            queue = SimpleQueue(conn, names.worker_queue(worker_id), no_ack=False)
            try:
                while True:
                    try:
                        message = queue.get(block=False)
                    except (SimpleQueue.Empty, ChannelError):
                        break
                    if self.pipeline.republish(message, only_if_placeable=False) == Republished.SENT:
                        moved += 1
                    else:
                        dropped += 1
            finally:
                queue.close()
        if dropped or moved:
            log.info(
                "took back the queue of a gone or drained worker",
                extra={"event": "worker.drained", "worker": worker_id, "dropped": dropped, "moved": moved},
            )
        return dropped, moved

    def reconcile(self) -> int:
        """Re-publish every queued or pending run MongoDB holds; returns how many."""
        now = clock.utcnow()
        due = DueIndex()
        published = 0
        slots = self.pipeline.router.slots
        for run in self.runs.with_status([RunStatus.RUNNING]):  # the quotas' places Redis lost
            slots.hold(run.namespace, run.id, running=True, job_id=run.job_id)
        for run in self.runs.with_status([RunStatus.QUEUED, RunStatus.PENDING]):
            if self.runs.end_of(run.id) is not None:
                continue
            start = self.runs.start_of(run.id)
            if start is not None:
                if not start.worker_id:  # a hold whose end never came: the sweep of sent runs ends it
                    SentIndex().add(run.id, clock.epoch())
                continue
            if run.not_before is not None and run.not_before > now:
                due.add(run.id, run.not_before)
                continue
            job = self.jobs.find(run.job_id)
            if job is None:
                continue
            self.pipeline.dispatch(job, attempt=run.attempt, chain=run.chain, run_id=run.id, params=run.params)
            published += 1
        log.warning(
            "reconciled with MongoDB after a Redis reset", extra={"event": "broker.reconciled", "published": published}
        )
        return published
