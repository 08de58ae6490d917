"""The cron scheduler: fires each job's ``schedule`` (5-field cron in its ``timezone``).

It runs as a thread of the controller (``hydra controller``), so every controller is a
scheduler candidate; one of them is active at a time:

* **Leader lock.** ``hydra:scheduler:leader``, a lease (``hydra.broker.lease``, the same kind
  the controllers lead with) renewed every third of ``HYDRA_SCHEDULER_LOCK_TTL`` (10 s) and
  released on exit. A standby takes over within about one TTL after the leader dies.
* **Exactly once per tick**, even if two schedulers believe they lead (a paused leader
  waking up after its lock expired): a tick's run id is ``uuid5(job id, tick instant)``
  (``hydra.model.cron.tick_run_id``) and its run record is created with a plain insert, so the
  second scheduler's insert fails on the unique ``_id`` and its tick is a no-op.
* **Schedules in memory.** The leader loads every scheduled job once, then follows changes:
  the verbs announce each change of a job (create, update, delete, pause, resume) on the
  schedule feed (``hydra.broker.schedules``); the scheduler reads the ids past the last
  change it saw (every 0.25 s) and re-reads only those jobs, by ``_id``. A full reload every
  5 minutes (and whenever the sequence went backwards or too far) covers a flushed Redis.
  No per-second scan of ``job_definitions``.

A fired tick is recorded as a pending run with ``not_before`` = the tick and published at
once (``hydra.dispatch.attempts.publish_delayed``); if the scheduler dies in between, the
controller's sweep of unpublished runs publishes it. The job's ``last_fire_at`` (and for
``overlap: queue`` a waiting ``queued_tick``) is stored on the job, so a new leader resumes
where the last one stopped.

Per-job policies (``hydra.model.spec``):

* ``misfire`` - ticks later than ``HYDRA_MISFIRE_GRACE`` (60 s) when the scheduler gets to
  them (no scheduler ran: downtime, a long failover) are *missed*. ``run_once`` (default):
  all missed ticks together start one run, at once; ``skip``: they start nothing, the next
  regular tick runs. A tick late by less than the grace runs normally under both.
* ``overlap`` - a tick while the job's previous run is still active (pending, queued,
  running or between retries): ``allow`` (default) starts it anyway; ``forbid`` skips the
  tick; ``queue`` makes it wait and starts it as soon as the previous run ends - at most one
  tick waits, later ones are skipped while it does.

Pausing a job stops its ticks; resuming restarts them from the moment of the resume (ticks
during the pause are not missed ticks). A deleted job's schedule stops.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from hydra import clock, names
from hydra.broker.lease import LeaderLease
from hydra.broker.schedules import KEEP_CHANGES, ScheduleFeed
from hydra.dispatch.attempts import publish_delayed
from hydra.dispatch.pipeline import Pipeline
from hydra.errors import Unavailable
from hydra.model.cron import last_fire, next_fire, tick_run_id
from hydra.model.records import Dispatched, Job
from hydra.model.status import IN_PROGRESS, RunStatus
from hydra.settings import get_settings

log = logging.getLogger(__name__)

#: Seconds between looks at the change feed (and the longest sleep of the loop).
IDLE = 0.25
#: Seconds between full reloads of the scheduled jobs (a safety net for a flushed Redis).
RELOAD_EVERY = 300.0
#: Job statuses (its latest run's) that mean "the previous run is still active".
ACTIVE = frozenset(status.value for status in IN_PROGRESS)


@dataclass
class Entry:
    """A scheduled job as the scheduler holds it."""

    job_id: str
    expr: str
    tz: str
    misfire: str
    overlap: str
    next: datetime  # the next tick to handle
    held: datetime | None = None  # overlap=queue: a tick waiting for the previous run to end

    @classmethod
    def of(cls, job: Job) -> Entry | None:
        due = job.due_tick()
        if due is None or not job.schedule:
            return None
        return cls(
            job_id=job.id,
            expr=job.schedule,
            tz=job.timezone or "UTC",
            misfire=job.misfire or "run_once",
            overlap=job.overlap or "allow",
            next=due,
            held=job.queued_tick,
        )


class Scheduler:
    """One scheduler candidate. ``run()`` until ``stop`` is set; ``step()`` is one pass."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        stop: threading.Event | None = None,
        clock_fn: Callable[[], datetime] = clock.utcnow,
        lock_ttl: float | None = None,
        grace: float | None = None,
    ):
        settings = get_settings()
        self.pipeline = pipeline
        self.stop = stop or threading.Event()
        self.clock = clock_fn
        self.lock_ttl = lock_ttl or settings.scheduler_lock_ttl
        self.grace = settings.misfire_grace if grace is None else grace
        self.jobs = pipeline.jobs
        self.runs = pipeline.runs
        self.feed = ScheduleFeed()
        self.lease = LeaderLease(
            names.SCHEDULER_LEADER_KEY, identity=f"{socket.gethostname()}:{os.getpid()}", ttl=self.lock_ttl
        )
        self.entries: dict[str, Entry] = {}
        self._seq = 0
        self._next_try = 0.0
        self._next_renew = 0.0
        self._next_reload = 0.0

    @property
    def leader(self) -> bool:
        return self.lease.held

    @property
    def token(self) -> str:
        return self.lease.token

    # -- loop ---------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    delay = self.step()
                except Exception:
                    log.exception("scheduler step failed; retrying in 1 s")
                    delay = 1.0
                self.stop.wait(delay)
        finally:
            self.release()

    def step(self) -> float:
        """Lead (or try to), follow changes, fire what is due; returns seconds to sleep."""
        if not self._lead():
            return min(1.0, self.lock_ttl / 3)
        self.follow_changes()
        self.fire_due(self.clock())
        upcoming = min((e.next for e in self.entries.values()), default=None)
        if upcoming is None:
            return IDLE
        return max(0.0, min(IDLE, (upcoming - self.clock()).total_seconds()))

    # -- leadership ---------------------------------------------------------------------
    def _lead(self) -> bool:
        mono = time.monotonic()
        if self.leader:
            if mono < self._next_renew:
                return True
            try:
                renewed = self.lease.hold()
            except Unavailable:  # cannot prove we still lead: stop firing
                renewed = False
            if renewed:
                self._next_renew = mono + self.lock_ttl / 3
                return True
            self._abdicate("leader lock lost")
            return False
        if mono < self._next_try:
            return False
        self._next_try = mono + min(1.0, self.lock_ttl / 3)
        return self.acquire()

    def acquire(self) -> bool:
        """Take the leader lock if free; on success load every schedule. While the jobs'
        Redis indexes are being rebuilt on FerretDB it waits: loading the schedules then is
        a scan of every job (at 300,000 jobs longer than the lock lives)."""
        if not self.jobs.can_sweep():
            return False
        if not self.lease.hold():
            return False
        self._next_renew = time.monotonic() + self.lock_ttl / 3
        self.reload()
        log.info("scheduler leads", extra={"event": "scheduler.leader", "token": self.token, "jobs": len(self.entries)})
        return True

    def release(self) -> None:
        if self.leader:
            self.lease.release()
            self._abdicate("released")

    def _abdicate(self, reason: str) -> None:
        log.warning("scheduler stops leading: %s", reason, extra={"event": "scheduler.follower"})
        self.lease.held = False
        self.entries.clear()

    # -- what is scheduled -----------------------------------------------------------------
    def reload(self) -> None:
        """Load every scheduled job (a scan of job_definitions: at start and every 5 minutes)."""
        self._seq = self.feed.current()
        entries = {}
        for job in self.jobs.scheduled():
            entry = self._entry(job)
            if entry is not None:
                entries[entry.job_id] = entry
        self.entries = entries
        self._next_reload = time.monotonic() + RELOAD_EVERY

    def follow_changes(self) -> None:
        """Re-read the jobs changed since the last look (by _id), or everything when needed
        (but for while the jobs' indexes are being rebuilt on FerretDB: see acquire)."""
        if not self.jobs.can_sweep():
            return
        if time.monotonic() >= self._next_reload:
            self.reload()
            return
        current = self.feed.current()
        if current == self._seq:
            return
        if current < self._seq or current - self._seq > KEEP_CHANGES - 1000:
            self.reload()  # Redis was flushed, or we fell too far behind
            return
        changed = self.feed.changed(self._seq, current)
        self._seq = current
        for job_id in changed:
            self.refresh(job_id)

    def refresh(self, job_id: str) -> None:
        job = self.jobs.find(job_id)
        entry = self._entry(job) if job is not None else None
        if entry is None:
            self.entries.pop(job_id, None)
        else:
            self.entries[job_id] = entry

    def _entry(self, job: Job) -> Entry | None:
        try:
            return Entry.of(job)
        except (ValueError, KeyError) as exc:  # a schedule croniter cannot use: say so, skip it
            log.error("job %s has an unusable schedule %r: %s", job.id, job.schedule, exc)
            return None

    # -- firing --------------------------------------------------------------------------------
    def fire_due(self, now: datetime) -> None:
        for entry in list(self.entries.values()):
            if entry.held is not None:
                self._release_held(entry)
            if entry.next <= now:
                self._handle_due(entry, now)

    def _handle_due(self, entry: Entry, now: datetime) -> None:
        """Handle the latest due tick (earlier ones, if any, were missed and coalesce into it).
        ``entry.next`` moves on only once the tick is handled: a failure retries it."""
        tick = last_fire(entry.expr, entry.tz, now)
        late = (now - tick).total_seconds() > self.grace
        job = self.jobs.find(entry.job_id)
        if job is None or Entry.of(job) is None:  # deleted or paused since we loaded it
            self.entries.pop(entry.job_id, None)
            return
        if late and entry.misfire == "skip":
            log.warning(
                "missed cron tick skipped",
                extra={"event": "cron.missed", "job_id": entry.job_id, "tick": tick.isoformat()},
            )
            self._remember(entry.job_id, tick, skipped=True)
        elif entry.overlap != "allow" and job.status in ACTIVE:
            if entry.overlap == "queue" and entry.held is None:
                self._remember(entry.job_id, tick, queued=True)
                entry.held = tick
                log.info(
                    "cron tick waits for the previous run",
                    extra={"event": "cron.queued", "job_id": entry.job_id, "tick": tick.isoformat()},
                )
            else:
                self._remember(entry.job_id, tick, skipped=True)
                log.info(
                    "cron tick skipped: previous run still active",
                    extra={"event": "cron.overlap", "job_id": entry.job_id, "tick": tick.isoformat()},
                )
        else:
            self.fire(job, tick, missed=late)
        entry.next = next_fire(entry.expr, entry.tz, tick)

    def _release_held(self, entry: Entry) -> None:
        job = self.jobs.find(entry.job_id)
        if job is None or Entry.of(job) is None:
            self.entries.pop(entry.job_id, None)
            return
        if job.status in ACTIVE:
            return
        self.fire(job, entry.held, released=True)
        entry.held = None

    def fire(self, job: Job, tick: datetime, *, missed: bool = False, released: bool = False) -> str | None:
        """Start the run of ``job``'s tick ``tick`` unless some scheduler already did;
        returns its run id, or None when this tick had already been fired."""
        run_id = tick_run_id(job.id, tick)
        why = f"cron tick {tick.isoformat(timespec='seconds')}" + (" (missed, run once)" if missed else "")
        created = self.runs.record(
            run_id,
            job,
            attempt=1,
            placement=Dispatched(run_id, RunStatus.PENDING, reason=why),
            not_before=tick,
            only_new=True,
        )
        self._remember(job.id, tick, released=released)
        if not created:
            log.info("cron tick already fired", extra={"event": "cron.duplicate", "job_id": job.id, "run_id": run_id})
            return None
        publish_delayed(run_id, self.pipeline)
        log.info(
            "cron tick fired",
            extra={
                "event": "cron.fired",
                "job_id": job.id,
                "run_id": run_id,
                "tick": tick.isoformat(),
                "missed": missed,
            },
        )
        return run_id

    def _remember(
        self, job_id: str, tick: datetime, *, queued: bool = False, skipped: bool = False, released: bool = False
    ) -> None:
        """Store how far the job's schedule got (a new leader resumes from there)."""
        self.jobs.remember_tick(job_id, tick, queued=queued, skipped=skipped, released=released)
