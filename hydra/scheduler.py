"""The cron scheduler: fires each job's ``schedule`` (5-field cron in its ``timezone``).

It runs as a thread of the controller (``hydra controller``), so every controller is a
scheduler candidate; one of them is active at a time:

* **Leader lock.** ``hydra:scheduler:leader`` in Redis, taken with ``SET NX PX`` and a random
  token, renewed every third of ``HYDRA_SCHEDULER_LOCK_TTL`` (10 s) and released on exit. A
  standby takes over within about one TTL after the leader dies.
* **Exactly once per tick**, even if two schedulers believe they lead (a paused leader
  waking up after its lock expired): a tick's run id is ``uuid5(job id, tick instant)``
  (``hydra.cron.tick_run_id``) and its run record is created with a plain insert, so the
  second scheduler's insert fails on the unique ``_id`` and its tick is a no-op.
* **Schedules in memory.** The leader loads every scheduled job once, then follows changes:
  the API calls :func:`notify` after each change of a job (create, update, delete, pause,
  resume), which bumps ``hydra:schedule:seq`` and records the job id in the sorted set
  ``hydra:schedule:changes`` in one atomic step; the scheduler reads the ids past the last
  sequence number it saw (every 0.25 s) and re-reads only those jobs, by ``_id``. A full
  reload every 5 minutes (and whenever the sequence went backwards or too far) covers a
  flushed Redis. No per-second scan of ``job_definitions``.

A fired tick is recorded as a pending run with ``not_before`` = the tick and published at
once (``hydra.attempts.publish_delayed``); if the scheduler dies in between, the
controller's sweep of unpublished runs publishes it. The job's ``last_fire_at`` (and for
``overlap: queue`` a waiting ``queued_tick``) is stored on the job, so a new leader resumes
where the last one stopped.

Per-job policies (``hydra.spec``):

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
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from hydra import names
from hydra.attempts import publish_delayed
from hydra.cron import last_fire, next_fire, tick_run_id
from hydra.jobs import JobStore
from hydra.registry import get_redis
from hydra.runs import RunStore, utcnow
from hydra.settings import get_settings
from hydra.status import RunStatus

log = logging.getLogger(__name__)

#: Seconds between looks at the change log (and the longest sleep of the loop).
IDLE = 0.25
#: Seconds between full reloads of the scheduled jobs (a safety net for a flushed Redis).
RELOAD_EVERY = 300.0
#: How many sequence numbers of changes Redis keeps; a scheduler further behind reloads all.
KEEP_CHANGES = 100_000
#: Job statuses (its latest run's) that mean "the previous run is still active".
ACTIVE = frozenset({RunStatus.PENDING.value, RunStatus.QUEUED.value, RunStatus.RUNNING.value,
                    RunStatus.RETRYING.value})
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_NOTIFY = """
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
if seq % 1000 == 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', seq - tonumber(ARGV[2])) end
return seq
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def notify(job_id: str, redis=None) -> int:
    """Tell the active scheduler that ``job_id``'s schedule may have changed."""
    redis = redis or get_redis()
    return int(redis.eval(_NOTIFY, 2, names.SCHEDULE_SEQ_KEY, names.SCHEDULE_CHANGES_KEY, job_id, KEEP_CHANGES))


def next_run_at(job: dict, now: datetime | None = None) -> datetime | None:
    """When the job's schedule fires next (None: no schedule, paused or deleted)."""
    if not job.get("schedule") or job.get("paused") or job.get("deleted_at"):
        return None
    return next_fire(job["schedule"], job.get("timezone") or "UTC", now or utcnow())


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


@dataclass
class Entry:
    """A scheduled job as the scheduler holds it."""

    job_id: str
    expr: str
    tz: str
    misfire: str
    overlap: str
    next: datetime             # the next tick to handle
    held: datetime | None = None  # overlap=queue: a tick waiting for the previous run to end

    @classmethod
    def of(cls, job: dict) -> "Entry | None":
        if not job.get("schedule") or job.get("paused") or job.get("deleted_at"):
            return None
        tz = job.get("timezone") or "UTC"
        cursor = max(_aware(job.get("last_fire_at")) or _EPOCH,
                     _aware(job.get("schedule_since") or job.get("created_at")) or _EPOCH)
        return cls(job_id=job["_id"], expr=job["schedule"], tz=tz, misfire=job.get("misfire") or "run_once",
                   overlap=job.get("overlap") or "allow", next=next_fire(job["schedule"], tz, cursor),
                   held=_aware(job.get("queued_tick")))


class Scheduler:
    """One scheduler candidate. ``run()`` until ``stop`` is set; ``step()`` is one pass."""

    def __init__(self, *, stop: threading.Event | None = None, clock=utcnow, lock_ttl: float | None = None,
                 grace: float | None = None, jobs: JobStore | None = None, runs: RunStore | None = None):
        settings = get_settings()
        self.stop = stop or threading.Event()
        self.clock = clock
        self.lock_ttl = lock_ttl or settings.scheduler_lock_ttl
        self.grace = settings.misfire_grace if grace is None else grace
        self.jobs = jobs or JobStore()
        self.runs = runs or RunStore()
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.entries: dict[str, Entry] = {}
        self.leader = False
        self._seq = 0
        self._next_try = 0.0
        self._next_renew = 0.0
        self._next_reload = 0.0

    # -- loop ---------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    delay = self.step()
                except Exception:  # noqa: BLE001 - MongoDB or Redis hiccup: the due tick is retried
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
                renewed = get_redis().eval(_RENEW, 1, names.SCHEDULER_LEADER_KEY, self.token,
                                           int(self.lock_ttl * 1000))
            except Exception:  # noqa: BLE001 - cannot prove we still lead: stop firing
                renewed = 0
            if renewed:
                self._next_renew = mono + self.lock_ttl / 3
                return True
            self._abdicate("leader lock lost")
            return False
        if mono < self._next_try:
            return False
        self._next_try = mono + min(1.0, self.lock_ttl / 3)
        if not self.acquire():
            return False
        return True

    def acquire(self) -> bool:
        """Take the leader lock if free; on success load every schedule."""
        redis = get_redis()
        if not redis.set(names.SCHEDULER_LEADER_KEY, self.token, nx=True, px=int(self.lock_ttl * 1000)):
            return False
        self.leader = True
        self._next_renew = time.monotonic() + self.lock_ttl / 3
        self.reload()
        log.info("scheduler leads", extra={"event": "scheduler.leader", "token": self.token,
                                           "jobs": len(self.entries)})
        return True

    def release(self) -> None:
        if self.leader:
            try:
                get_redis().eval(_RELEASE, 1, names.SCHEDULER_LEADER_KEY, self.token)
            except Exception:  # noqa: BLE001 - the lock expires by itself
                pass
            self._abdicate("released")

    def _abdicate(self, reason: str) -> None:
        if self.leader:
            log.warning("scheduler stops leading: %s", reason, extra={"event": "scheduler.follower"})
        self.leader = False
        self.entries.clear()

    # -- what is scheduled -----------------------------------------------------------------
    def reload(self) -> None:
        """Load every scheduled job (a scan of job_definitions: at start and every 5 minutes)."""
        self._seq = int(get_redis().get(names.SCHEDULE_SEQ_KEY) or 0)
        entries = {}
        for job in self.jobs.jobs.find({"schedule": {"$ne": None}}):
            entry = self._entry(job)
            if entry is not None:
                entries[entry.job_id] = entry
        self.entries = entries
        self._next_reload = time.monotonic() + RELOAD_EVERY

    def follow_changes(self) -> None:
        """Re-read the jobs changed since the last look (by _id), or everything when needed."""
        if time.monotonic() >= self._next_reload:
            self.reload()
            return
        redis = get_redis()
        current = int(redis.get(names.SCHEDULE_SEQ_KEY) or 0)
        if current == self._seq:
            return
        if current < self._seq or current - self._seq > KEEP_CHANGES - 1000:
            self.reload()  # Redis was flushed, or we fell too far behind
            return
        changed = redis.zrangebyscore(names.SCHEDULE_CHANGES_KEY, f"({self._seq}", current)
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

    def _entry(self, job: dict) -> Entry | None:
        try:
            return Entry.of(job)
        except (ValueError, KeyError) as exc:  # a schedule croniter cannot use: say so, skip it
            log.error("job %s has an unusable schedule %r: %s", job.get("_id"), job.get("schedule"), exc)
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
            log.warning("missed cron tick skipped", extra={"event": "cron.missed", "job_id": entry.job_id,
                                                            "tick": tick.isoformat()})
            self._remember(entry.job_id, tick, skipped=True)
        elif entry.overlap != "allow" and job.get("status") in ACTIVE:
            if entry.overlap == "queue" and entry.held is None:
                self._remember(entry.job_id, tick, queued=True)
                entry.held = tick
                log.info("cron tick waits for the previous run", extra={
                    "event": "cron.queued", "job_id": entry.job_id, "tick": tick.isoformat()})
            else:
                self._remember(entry.job_id, tick, skipped=True)
                log.info("cron tick skipped: previous run still active", extra={
                    "event": "cron.overlap", "job_id": entry.job_id, "tick": tick.isoformat()})
        else:
            self.fire(job, tick, missed=late)
        entry.next = next_fire(entry.expr, entry.tz, tick)

    def _release_held(self, entry: Entry) -> None:
        job = self.jobs.find(entry.job_id)
        if job is None or Entry.of(job) is None:
            self.entries.pop(entry.job_id, None)
            return
        if job.get("status") in ACTIVE:
            return
        self.fire(job, entry.held, released=True)
        entry.held = None

    def fire(self, job: dict, tick: datetime, *, missed: bool = False, released: bool = False) -> str | None:
        """Start the run of ``job``'s tick ``tick`` unless some scheduler already did;
        returns its run id, or None when this tick had already been fired."""
        run_id = tick_run_id(job["_id"], tick)
        why = f"cron tick {tick.isoformat(timespec='seconds')}" + (" (missed, run once)" if missed else "")
        created = self.runs.record_published(
            run_id=run_id, job=job, attempt=1, status=RunStatus.PENDING, queue=None, worker_id=None,
            reason=why, not_before=tick, only_new=True)
        self._remember(job["_id"], tick, released=released)
        if not created:
            log.info("cron tick already fired", extra={"event": "cron.duplicate", "job_id": job["_id"],
                                                      "run_id": run_id})
            return None
        publish_delayed(run_id, runs=self.runs)
        log.info("cron tick fired", extra={"event": "cron.fired", "job_id": job["_id"], "run_id": run_id,
                                           "tick": tick.isoformat(), "missed": missed})
        return run_id

    def _remember(self, job_id: str, tick: datetime, *, queued: bool = False, skipped: bool = False,
                  released: bool = False) -> None:
        """Store how far the job's schedule got (a new leader resumes from there)."""
        update: dict = {"$max": {"last_fire_at": tick}}  # a waiting tick fires after later ones
        marks = {"queued_tick": tick} if queued else {}
        if skipped:
            marks["last_skipped_at"] = tick
        if marks:
            update["$set"] = marks
        if released:
            update["$unset"] = {"queued_tick": ""}
        self.jobs.jobs.update_one({"_id": job_id}, update)
