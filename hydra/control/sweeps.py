"""The leader's sweeps for what fell between the cracks: O(work waiting), from the indexes.

:class:`Sweeps` is a step of the tick, each sweep on a timer of its own:

* :meth:`Sweeps.publish_unpublished` - runs accepted while the broker was unreachable,
  delayed runs that are due, jobs whose first run was never recorded (the API died mid-way);
* :meth:`Sweeps.correct_quotas` - quota places held by runs that ended or wait again;
* :meth:`Sweeps.revive_vanished` - runs whose message vanished from the broker are
  published again, at most :data:`MAX_REVIVALS` times, then dead-lettered; a run whose start
  fence an ender held without recording its end is ended (:meth:`Sweeps._end_held`).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from hydra import clock
from hydra.broker.sent import SentIndex
from hydra.control.lease import ControllerLease
from hydra.dispatch.attempts import dispatch_stored, end_attempt, end_unrunnable, publish_delayed
from hydra.dispatch.pipeline import Pipeline
from hydra.errors import Unavailable
from hydra.model.outcome import Outcome
from hydra.model.records import Fence, Job, Run
from hydra.model.status import RunStatus
from hydra.settings import Settings
from hydra.store.runs import RunStore

log = logging.getLogger(__name__)

#: Seconds between sweeps of MongoDB for runs that were accepted but never published.
UNPUBLISHED_SWEEP_EVERY = 15.0
#: Age of an accepted job whose first run was never recorded before the controller dispatches it.
UNDISPATCHED_GRACE = timedelta(seconds=30)
#: Seconds between looks for runs whose message vanished (see revive_vanished).
VANISHED_SWEEP_EVERY = 5.0
#: Statuses of a run that keep its quota place (pending: it waits again, without one).
HOLDING = frozenset({RunStatus.QUEUED.value, RunStatus.RUNNING.value})
#: Times a run whose message vanished is published again before it is dead-lettered instead.
MAX_REVIVALS = 3
#: Seconds a hold (a start fence an ender took, hydra.store.fences) may wait for its end.
HELD_GRACE = timedelta(seconds=60)


class Sweeps:
    def __init__(
        self,
        pipeline: Pipeline,
        settings: Settings,
        lease: ControllerLease,
        changed: threading.Event,
        *,
        name: str,
        sent: SentIndex | None = None,
    ):
        self.pipeline = pipeline
        self.runs = pipeline.runs
        self.jobs = pipeline.jobs
        self.settings = settings
        self.lease = lease
        self.changed = changed
        self.name = name
        self.sent = sent or SentIndex()
        self._last_unpublished = 0.0
        self._last_vanished = 0.0

    def sweep(self, now: float) -> bool:
        """The sweeps due at ``now``; stops between them once the lease is lost (then False)."""
        if now - self._last_unpublished >= UNPUBLISHED_SWEEP_EVERY:
            self._last_unpublished = now
            self.publish_unpublished()
            self.correct_quotas()
        if not self.lease.acting():
            return False
        if now - self._last_vanished >= VANISHED_SWEEP_EVERY:
            self._last_vanished = now
            self.revive_vanished()
        return True

    def publish_unpublished(self) -> int:
        """Publish what was accepted but never published: runs recorded while the broker was
        unreachable, delayed runs that are due (should Redis have lost their due-index entry),
        and jobs whose first run was never recorded (the API died mid-way). O(work waiting):
        both come from the indexes. While those are being rebuilt this waits: the rebuild
        ends with a reconciliation that publishes them."""
        now = clock.utcnow()
        try:
            if not self.runs.index.built():
                return 0
            waiting = self.runs.unpublished(now)
            # Only jobs past their grace are read (the index entry's score is the creation).
            undispatched = self.jobs.undispatched(created_before=now - UNDISPATCHED_GRACE)
        except Unavailable:
            return 0
        published = 0
        for job in undispatched:
            # Leave the API time to record the run itself, and never rewrite a job that has it:
            # its run's own updates clear the flag (and FerretDB rewrites whole documents).
            created = job.created_at or now
            if created > now - UNDISPATCHED_GRACE or not job.last_run_id:
                continue
            if self.runs.find(job.last_run_id) is None:
                published += dispatch_stored(self.pipeline, job, job.last_run_id)
            else:
                self.jobs.dispatched(job)  # its run is recorded: nothing left to look after
        for run in waiting:
            published += publish_delayed(run.id, self.pipeline)
        return published

    def correct_quotas(self) -> int:
        """Free the quota places of runs that ended or wait again (an end whose release was
        lost with Redis, a publish that failed after placing); returns how many were freed.
        Decided from the indexes' ``active`` hash (one round trip): a run it files as queued
        or running keeps its place, and only a run it does not file (ended, or never
        recorded) is read from MongoDB by ``_id``. While the indexes are not built, each
        held run is read. O(runs holding places)."""
        slots = self.pipeline.router.slots
        freed = 0
        statuses = _Statuses(self.runs)
        for namespace in slots.namespaces():
            queued, running = slots.held(namespace)
            for run_id in queued | running:
                status = statuses.of(run_id)
                if status not in HOLDING:
                    slots.released(namespace, run_id)
                    freed += 1
                elif status == RunStatus.RUNNING.value and run_id in queued:
                    slots.started(namespace, run_id)
            slots.forget_if_empty(namespace)
        for job_id in slots.jobs():  # jobs' max_concurrent places
            for run_id in slots.job_held(job_id):
                status = statuses.of(run_id)
                if status not in HOLDING:
                    slots.job_released(job_id, run_id)
                    freed += 1
            slots.forget_job_if_empty(job_id)
        if freed:
            self.changed.set()  # what waited for those places may go now
        return freed

    def revive_vanished(self, *, limit: int = 200) -> int:
        """Runs sent more than ``HYDRA_QUEUED_BOUND`` seconds ago that no worker claimed
        (``hydra.broker.sent``): when the message is no longer in its queue nor delivered to
        a worker, the run is published again (from its stored job), at most
        :data:`MAX_REVIVALS` times, then dead-lettered with the reason - every accepted run
        ends recorded. Returns how many were published again or ended."""
        cutoff = clock.epoch() - self.settings.queued_bound
        acted = 0
        for run_id in self.sent.older_than(cutoff, limit):
            if not self.lease.acting():
                break
            run = self.runs.find(run_id)
            waiting = run is not None and run.status in (RunStatus.QUEUED.value, RunStatus.PENDING.value)
            start = self.runs.start_of(run_id) if waiting else None
            if run is not None and start is not None and not start.worker_id and self.runs.end_of(run_id) is None:
                acted += self._end_held(run, start)  # a hold whose end never came
                continue
            if not waiting or run is None or start is not None or self.runs.end_of(run_id):
                self.sent.remove(run_id)  # claimed, ended, or never recorded: nothing to watch
                continue
            if run.queue and self.sent.holds(run.queue, run_id):
                self.sent.add(run_id, clock.epoch())  # still waiting its turn: look again later
                continue
            self.sent.remove(run_id)
            acted += 1
            job = self.jobs.find(run.job_id)
            reason = f"its message vanished from {run.queue or 'the broker'} (not in the queue, not delivered)"
            if job is None or job.deleted_at or run.revived >= MAX_REVIVALS:
                why = "the job was deleted" if job is None or job.deleted_at else f"{reason}, {run.revived + 1} times"
                end_unrunnable(run_id, why, job=job or Job(id=run.job_id), by=self.name, pipeline=self.pipeline)
                log.warning("run ended: %s", why, extra={"event": "run.vanished", "run_id": run_id, "reason": why})
                continue
            self.runs.note_revived(run_id, f"{reason}; published again")
            self.pipeline.dispatch(job, attempt=run.attempt, chain=run.chain, run_id=run_id, params=run.params)
            log.warning(
                "run published again: %s", reason, extra={"event": "run.revived", "run_id": run_id, "reason": reason}
            )
        return acted

    def _end_held(self, run: Run, start: Fence) -> int:
        """A run whose start fence an ender took (a hold: no worker can start it) without its
        end following - the ender died, or MongoDB failed, between its two inserts
        (``hydra.store.fences``). Past :data:`HELD_GRACE` it ends as an attempt that never
        ran (``lost``, not started: its retry policy decides what follows; a cancel that was
        asked makes it ``cancelled``), so every accepted run still ends recorded; before
        that, it is looked at again. Returns 1 when it was ended here."""
        held_at = clock.aware(start.at) if start.at is not None else None
        if held_at is not None and clock.utcnow() - held_at < HELD_GRACE:
            self.sent.add(run.id, clock.epoch())
            return 0
        self.sent.remove(run.id)
        job = self.jobs.find(run.job_id) or Job(id=run.job_id)
        why = f"its start was held by {start.by} and its end never recorded"
        outcome = Outcome(status=RunStatus.LOST, error=why, finished_at=clock.utcnow())
        pipeline = self.pipeline
        end_attempt(
            run.id,
            outcome,
            by=self.name,
            job=job,
            attempt=run.attempt,
            chain=run.chain,
            started=False,
            pipeline=pipeline,
        )
        log.warning("run ended: %s", why, extra={"event": "run.held", "run_id": run.id, "reason": why})
        return 1


class _Statuses:
    """The status of runs holding quota places: from the ``active`` hash (read once, when
    first asked), from MongoDB only for a run it does not file; None: no such run."""

    def __init__(self, runs: RunStore):
        self.runs = runs
        self._active: dict[str, str] | None = None
        self._read = False

    def of(self, run_id: str) -> str | None:
        if not self._read:
            self._read = True
            try:
                if self.runs.index.built("runs"):
                    self._active = {entry.run_id: entry.status for entry in self.runs.index.active()}
            except Unavailable:
                self._active = None
        if self._active is not None and run_id in self._active:
            return self._active[run_id]
        run = self.runs.find(run_id)  # ended (or never recorded): MongoDB says which
        return None if run is None else run.status
