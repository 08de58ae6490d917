"""The controller: Celery events in, live worker registry and failover out.

Run one or more as ``hydra controller`` (two in production); one leads, the others stand by.
The lease is kept by a thread of its own (``hydra.control.lease``): a tick slowed by a flood of
work cannot cost it, and a tick that finds it lost stops between its steps. Every controller:

* **listens** to Celery's worker events (``worker-online``, ``worker-heartbeat``,
  ``worker-offline``) and asks each new worker for its profile with the ``hydra_profile``
  remote-control command, so a standby knows the fleet as well as the leader.

The leader, on every tick (``HYDRA_CONTROLLER_TICK``):

* writes the registry (Redis, read by the router) and the ``workers`` view (MongoDB,
  ``GET /workers/``) from those events, and marks a worker silent for
  ``HYDRA_OFFLINE_AFTER`` heartbeat intervals (by its own clock) offline;
* fails over the attempts of workers that went offline and drains their queues
  (``hydra.control.failover``), and takes back what waits in the queues of workers an
  operator drained (``hydra.control.drain``);
* re-publishes what Redis may have lost after a restart or flush (``Failover.reconcile``),
  once the stores' Redis indexes are rebuilt from MongoDB (the indexer thread, below);
* places waiting jobs: ``hydra.pending`` messages as soon as an eligible worker is online,
  delayed runs when due, and runs accepted while the broker was unreachable;
* publishes again (or dead-letters) runs whose message vanished from the broker
  (``revive_vanished``).

Every sweep reads the stores' Redis indexes (``hydra.broker.index``): O(work in progress),
never O(history). Beside the ticks the leader runs three more threads: the **indexer** files
the records its writers could not file while Redis was unreachable (the backlog) and, when
Redis lost the indexes, rebuilds them from MongoDB (``hydra.store.reindex``); **retention**
prunes old history in small batches (``hydra.store.retention``); the **notifier** delivers
the notifications of ended runs (``hydra.control.notifier``).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
import time
from datetime import timedelta

from amqp.exceptions import ChannelError
from kombu.simple import SimpleQueue

from hydra import clock, names
from hydra.broker.registry import Registry, WorkerRecord
from hydra.broker.sent import SentIndex
from hydra.control.drain import DrainKeeper
from hydra.control.failover import Failover
from hydra.control.lease import ControllerLease
from hydra.control.notifier import Notifier
from hydra.control.scheduler import Scheduler
from hydra.dispatch import signing
from hydra.dispatch.attempts import dispatch_stored, end_unrunnable, publish_delayed, publish_due
from hydra.dispatch.pipeline import Pipeline, Republished
from hydra.errors import StoreUnavailable, Unavailable
from hydra.model.affinity import WorkerProfile
from hydra.model.records import Job
from hydra.model.status import RunStatus
from hydra.settings import Settings, get_settings
from hydra.store.reindex import Reindexer
from hydra.store.retention import Retention
from hydra.store.workers import WorkerStore, WorkerView

log = logging.getLogger(__name__)

#: Seconds between passes over hydra.pending when nothing changed.
PENDING_SWEEP_EVERY = 5.0
#: Seconds between sweeps of MongoDB for runs that were accepted but never published.
UNPUBLISHED_SWEEP_EVERY = 15.0
#: Age of an accepted job whose first run was never recorded before the controller dispatches it.
UNDISPATCHED_GRACE = timedelta(seconds=30)
#: Seconds between retention passes: after one that pruned a full batch, and otherwise.
RETENTION_BUSY, RETENTION_IDLE = 1.0, 30.0
#: Seconds between looks for runs whose message vanished (see revive_vanished).
VANISHED_SWEEP_EVERY = 5.0
#: Times a run whose message vanished is published again before it is dead-lettered instead.
MAX_REVIVALS = 3
#: Heartbeats in a row with nothing running and nothing queued before a worker's load is reset.
IDLE_BEATS_TO_RESET = 2
#: Seconds a worker's MongoDB view (GET /workers/) may lag its heartbeats: it is written at
#: once when the worker's profile, liveness or running count changes, else at most this
#: often (a fleet of 1,000 workers beating every 2 s would otherwise write 500 times a second).
VIEW_REFRESH = 30.0
#: Seconds between writes of the heartbeats heard to the registry (the router reads only
#: profiles and liveness, which are written at once; heartbeats refresh the records).
BEATS_EVERY = 0.25


class Controller:
    def __init__(
        self, app, *, settings: Settings | None = None, pipeline: Pipeline | None = None, name: str | None = None
    ):
        self.app = app
        self.settings = settings or get_settings()
        self.pipeline = pipeline or app.pipeline
        self.registry: Registry = self.pipeline.router.registry
        self.runs = self.pipeline.runs
        self.jobs = self.pipeline.jobs
        self.workers = WorkerStore()
        self.name = name or f"controller@{socket.gethostname()}:{os.getpid()}"
        self._changed = threading.Event()
        #: Kept by a thread of its own: a slow tick cannot cost the lease (hydra.control.lease).
        self.lease = ControllerLease(
            self.name,
            ttl=self.settings.leader_ttl,
            tick=self.settings.controller_tick,
            registry=self.registry,
            on_gained=self._changed.set,
        )
        self._led_epoch: int | None = None  # the acquisition became_leader() ran for
        self.failover = Failover(app, pipeline=self.pipeline, identity=self.name)
        self.index = self.runs.index
        self.reindexer = Reindexer(self.runs)
        self.retention = Retention(self.runs, self.settings)
        #: Redis restarted or was flushed: re-publish what MongoDB holds as waiting, once the
        #: indexes are rebuilt (the indexer thread does both).
        self._reconcile_due = False
        self._workers: dict[str, WorkerRecord] = {}
        self._gone: dict[str, tuple[bool, str]] = {}  # worker -> (goodbye, reason): failover to do
        self._finishing: dict[str, dict[str, float]] = {}  # worker said goodbye -> run -> deadline
        self._restarted: dict[str, str] = {}  # worker -> incarnation learned, not yet checked
        self._idle_beats: dict[str, int] = {}
        self._views: dict[str, tuple[tuple, float]] = {}  # worker -> (what its view showed, when)
        self._beating: dict[str, WorkerRecord] = {}  # heartbeats heard, not yet written
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._profile_requests: queue.Queue[str] = queue.Queue()
        self._wanted: set[str] = set()
        self._last_pending_sweep = 0.0
        self._quota_blocked = False
        self._last_unpublished_sweep = 0.0
        self._last_vanished_sweep = 0.0
        self.sent = SentIndex()
        self._receiver = None
        self.drains = DrainKeeper(self.registry)
        self.scheduler = Scheduler(self.pipeline, stop=self._stop)  # cron; leads when it holds its lease
        self.notifier = Notifier(self.pipeline, self.settings)

    @property
    def leading(self) -> bool:
        return self.lease.held

    # -- lifecycle --------------------------------------------------------------------
    def run(self) -> None:
        """Run until SIGTERM/SIGINT (or :meth:`stop`)."""
        signing.require_signing()  # a controller re-publishes and signs: without a key it must not start
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, lambda *_: self.stop())
            except ValueError:  # not the main thread (tests)
                pass
        threads = [
            threading.Thread(target=self._guard, args=(fn,), name=name, daemon=True)
            for name, fn in (
                ("lease", self.lease.run),
                ("events", self.listen),
                ("profiles", self.fetch_profiles),
                ("ticker", self.tick_forever),
                ("indexer", self.index_forever),
                ("retention", self.prune_forever),
                ("beats", self.beats_forever),
                ("scheduler", self.scheduler.run),
                ("notifier", self.notify_forever),
            )
        ]
        for thread in threads:
            thread.start()
        log.info("controller started", extra={"event": "controller.started", "worker": self.name})
        self._stop.wait()
        self.lease.stop()
        if self._receiver is not None:
            self._receiver.should_stop = True
        for thread in threads:
            thread.join(timeout=5)
        self.lease.release()
        log.info("controller stopped", extra={"event": "controller.stopped", "worker": self.name})

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()

    def _guard(self, fn) -> None:
        """Run a loop; when it fails (Redis or MongoDB down, ...), log and start it again."""
        while not self._stop.is_set():
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - a controller thread must not die
                log.warning(
                    "controller loop %s failed (%s: %s); restarting in 1 s", fn.__name__, exc.__class__.__name__, exc
                )
                self._stop.wait(1.0)

    # -- events -------------------------------------------------------------------------
    def listen(self) -> None:
        with self.app.connection_for_read() as conn:
            self._receiver = self.app.events.Receiver(conn, handlers={"*": self.on_event}, routing_key="worker.#")
            self._receiver.should_stop = self._stop.is_set()
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def on_event(self, event: dict) -> None:
        kind = event.get("type", "")
        worker_id = event.get("hostname")
        if not worker_id or not kind.startswith("worker-"):
            return
        with self._lock:
            record = self._workers.get(worker_id)
        if kind == "worker-offline":
            self.went_offline(worker_id, goodbye=True, reason="shut down")
            return
        pid = event.get("pid")
        if record is None or kind == "worker-online" or (pid and record.pid and pid != record.pid):
            self._want_profile(worker_id)  # new, or a new process of it: learn its incarnation
        if record is None:
            return
        came_back = record.status != "online"
        record.status = "online"
        record.seen_at = clock.epoch()
        record.last_heartbeat = float(event.get("timestamp") or record.seen_at)
        record.freq = float(event.get("freq") or record.freq or 2.0)
        record.active = int(event.get("active") or 0)
        record.processed = int(event.get("processed") or 0)
        record.pid = pid or record.pid
        if not self.leading:
            return
        if not came_back:
            with self._lock:  # written with the others by the beats thread (write_beats)
                self._beating[worker_id] = record
            return
        self.registry.set_load(worker_id, 0)
        self._correct_load(record, *self._publish(record, beat=True))
        log.info("worker online", extra={"event": "worker.online", "worker": worker_id})
        self._changed.set()

    def write_beats(self) -> int:
        """Write the heartbeats heard since the last call to the registry in one round trip
        (a fleet of 1,000 workers sends 500 a second), correcting loads and refreshing the
        workers view as each one's heartbeat used to."""
        with self._lock:
            beating, self._beating = self._beating, {}
        if not beating or not self.leading:
            return 0
        records = list(beating.values())
        for record, (load, queued) in zip(records, self.registry.beats(records), strict=True):
            self._correct_load(record, load, queued)
            self._refresh_view(record)
        self.registry.forget_cache()
        return len(records)

    def beats_forever(self) -> None:
        """The beats thread: write the heartbeats heard, every BEATS_EVERY seconds."""
        while not self._stop.wait(BEATS_EVERY):
            self.write_beats()

    def _want_profile(self, worker_id: str) -> None:
        if worker_id not in self._wanted:
            self._wanted.add(worker_id)
            self._profile_requests.put(worker_id)

    def fetch_profiles(self) -> None:
        """Ask new workers for their profile (remote control), off the event thread."""
        while not self._stop.is_set():
            try:
                worker_id = self._profile_requests.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                reply = self._ask_profile(worker_id)
            finally:
                self._wanted.discard(worker_id)
            profile = (reply or {}).get("profile")
            if profile is None:
                log.warning("worker %s sent no Hydra profile (not started with -A hydra?)", worker_id)
                continue
            now = clock.epoch()
            record = WorkerRecord(
                profile=WorkerProfile.from_dict(profile),
                status="online",
                seen_at=now,
                last_heartbeat=now,
                hostname=worker_id.split("@", 1)[-1],
                pid=reply.get("pid"),
                incarnation=reply.get("incarnation"),
            )
            with self._lock:
                self._workers[worker_id] = record
                self._gone.pop(worker_id, None)
                if record.incarnation:
                    self._restarted[worker_id] = record.incarnation
            if self.leading:
                self.registry.set_load(worker_id, 0)
                self._publish(record)
                log.info("worker online", extra={"event": "worker.online", "worker": worker_id, "profile": profile})
            self._changed.set()

    def _ask_profile(self, worker_id: str) -> dict | None:
        # A worker announces itself before its remote-control consumer is listening, so the
        # first questions may go unanswered; ask again shortly rather than at its next heartbeat.
        for delay in (0.0, 0.2, 0.5, 1.0):
            if self._stop.wait(delay):
                return None
            replies = self.app.control.broadcast("hydra_profile", destination=[worker_id], reply=True, timeout=1.0)
            for reply in replies or []:
                if worker_id in reply and reply[worker_id].get("profile"):
                    return reply[worker_id]
        return None

    # -- ticking -------------------------------------------------------------------------
    def tick_forever(self) -> None:
        while not self._stop.is_set():
            changed = self._changed.wait(self.settings.controller_tick)
            self._changed.clear()
            self.tick(force_pending=changed)

    def tick(self, force_pending: bool = False) -> None:
        """One housekeeping pass, while this controller leads. The lease thread renews the
        lease meanwhile; the pass checks it between its steps and stops once it is lost."""
        if not self._acting():
            return
        epoch = self.lease.epoch
        if epoch is None:
            return
        if epoch != self._led_epoch:
            self.became_leader()
            self._led_epoch = epoch
        began = time.monotonic()
        now = clock.epoch()
        if self.failover.broker_was_reset():
            # Redis restarted (it may have lost its last writes) or was flushed: the indexes
            # are rebuilt from MongoDB, then what MongoDB holds as waiting is re-published.
            self.index.unbuild()
            self._reconcile_due = True
            self._changed.set()
        with self._lock:
            stale = [
                r
                for r in self._workers.values()
                if r.status == "online" and r.is_stale(now, self.settings.offline_after)
            ]
        for record in stale:
            self.went_offline(
                record.profile.id, goodbye=False, reason=f"missed heartbeats for {now - record.seen_at:.1f}s"
            )
        if self._acting() and self.runs.can_sweep():
            try:
                self.fail_over_gone()
            except StoreUnavailable as exc:  # MongoDB down: the gone workers wait for the next tick
                log.warning("failover postponed: %s", exc)
        if not self._acting():
            return
        force_pending |= self.keep_drains()
        publish_due(self.pipeline)
        if not self._acting():
            return
        if force_pending or stale or self._quota_blocked or now - self._last_pending_sweep >= PENDING_SWEEP_EVERY:
            self._last_pending_sweep = now
            self.place_pending()
        if not self._acting():
            return
        if now - self._last_unpublished_sweep >= UNPUBLISHED_SWEEP_EVERY:
            self._last_unpublished_sweep = now
            self.publish_unpublished()
            self.correct_quotas()
        if not self._acting():
            return
        if now - self._last_vanished_sweep >= VANISHED_SWEEP_EVERY:
            self._last_vanished_sweep = now
            self.revive_vanished()
        self.registry.count_tick((time.monotonic() - began) * 1000)

    def _acting(self) -> bool:
        """Between a tick's steps: tell the lease thread the ticks move, and go on only while
        this controller still leads (fencing: a lost lease stops the pass)."""
        self.lease.progress()
        return self.leading

    # -- the stores' indexes -------------------------------------------------------------
    def index_forever(self) -> None:
        """The indexer thread: while this controller leads, keep the indexes complete."""
        while not self._stop.is_set():
            if self.leading:
                self.keep_indexes()
            self._stop.wait(self.settings.controller_tick)

    def keep_indexes(self) -> None:
        """Rebuild the indexes when Redis lost them (then reconcile), else file the backlog.

        A rebuild that started while leading goes on while no other controller holds the
        lease: a tick held up past the lease's TTL (FerretDB busy with the very scans the
        rebuild ends) costs this controller a renewal, and abandoning the pass then would
        start it over and again. Filing is idempotent, so a second controller rebuilding at
        the same time would only double work."""
        if not self.index.built():
            if not self.leading:
                return

            def keep_going() -> bool:
                if self._stop.is_set():
                    return False
                try:
                    return self.leading or self.lease.free_or_ours()
                except Unavailable:
                    return False

            if self.reindexer.rebuild(keep_going=keep_going) is None:
                return
        self.reindexer.drain_backlog()
        if self._reconcile_due and self.leading:
            self.failover.reconcile()
            self.notifier.refile()
            self._reconcile_due = False

    def notify_forever(self) -> None:
        """The notifier thread: while this controller leads, deliver the notifications due."""
        while not self._stop.is_set():
            if self.leading:
                self.notifier.deliver_due()
            self._stop.wait(self.settings.controller_tick)

    def prune_forever(self) -> None:
        """The retention thread: while this controller leads, prune old history in batches."""
        while not self._stop.is_set():
            pause = RETENTION_IDLE
            if self.leading:
                pruned = self.retention.prune()
                if pruned["runs"] >= self.settings.retention_batch:
                    pause = RETENTION_BUSY
            self._stop.wait(pause)

    def became_leader(self) -> None:
        """Take over: keep what this controller heard, adopt what only the registry knows."""
        now = clock.epoch()
        try:
            records = self.registry.records()
        except Unavailable:
            records = {}
        adopted = []
        with self._lock:
            for wid, record in records.items():
                if wid not in self._workers:
                    record.seen_at = now  # heartbeats will confirm it, or it goes stale
                    self._workers[wid] = record
                    adopted.append(record)
            known = list(self._workers.values())
        for record in known:
            self._publish(record)
        # Writing a large fleet's records takes a while: its heartbeats are due from now on.
        done = clock.epoch()
        with self._lock:
            for record in adopted:
                record.seen_at = max(record.seen_at, done)
        log.warning(
            "became the leading controller",
            extra={"event": "controller.leader", "worker": self.name, "epoch": self.lease.epoch},
        )

    def went_offline(self, worker_id: str, *, goodbye: bool, reason: str) -> None:
        with self._lock:
            record = self._workers.get(worker_id)
            if record is None or record.status == "offline":
                return
            record.status = "offline"
            self._gone[worker_id] = (goodbye, reason)
        if not self.leading:
            return
        self.registry.set_load(worker_id, 0)
        self._publish(record)
        log.warning(
            "worker offline",
            extra={"event": "worker.offline", "worker": worker_id, "reason": reason, "goodbye": goodbye},
        )
        self._changed.set()

    def fail_over_gone(self) -> None:
        """Fail over workers that went offline, and drain what lands in their queues later."""
        with self._lock:
            gone = dict(self._gone)
            offline = [wid for wid, r in self._workers.items() if r.status == "offline"]
            finishing = {wid: dict(runs) for wid, runs in self._finishing.items()}
            restarted, self._restarted = self._restarted, {}
        for worker_id, incarnation in restarted.items():
            try:
                self.failover.restarted(worker_id, incarnation)
            except Exception:
                with self._lock:  # MongoDB down, say: check again at the next tick
                    self._restarted.setdefault(worker_id, incarnation)
                raise
            with self._lock:
                self._finishing.pop(worker_id, None)  # its previous process is gone: restarted() decided
        for worker_id, (goodbye, reason) in gone.items():
            with self._lock:
                record = self._workers.get(worker_id)
                back_as = record.incarnation if record is not None and record.status == "online" else None
            left = self.failover.worker_gone(worker_id, goodbye=goodbye, reason=reason, spare=back_as)
            if back_as is None:
                self.failover.drain(worker_id)
            with self._lock:
                if left:
                    self._finishing.setdefault(worker_id, {}).update(left)
                if self._gone.get(worker_id) == (goodbye, reason):
                    del self._gone[worker_id]
        now = clock.epoch()
        for worker_id, runs in finishing.items():
            left = self.failover.overdue(worker_id, runs, now=now, reason="shut down without finishing the run")
            with self._lock:
                if worker_id in self._finishing:
                    self._finishing[worker_id] = {
                        r: d for r, d in self._finishing[worker_id].items() if r in left or r not in runs
                    }
                    if not self._finishing[worker_id]:
                        del self._finishing[worker_id]
        for worker_id in offline:
            if worker_id not in gone and self.registry.queued(names.worker_queue(worker_id)):
                self.failover.drain(worker_id)
        self.forget_long_gone()

    def keep_drains(self) -> bool:
        """Drained workers (``hydra.control.drain``): the router's copy equal to MongoDB, and
        their queues taken back through the router; whether the drained set changed."""
        with self._lock:
            online = {wid: r.profile.queue for wid, r in self._workers.items() if r.status == "online"}
        try:
            return self.drains.keep(online, self.failover.drain)
        except Unavailable as exc:
            log.warning("drains not kept this tick: %s", exc)
            return False

    def forget_long_gone(self) -> None:
        """Drop workers offline for HYDRA_FORGET_AFTER seconds from the registry, the workers
        view and the metrics (a fleet that is re-created - containers - would pile them up)."""
        horizon = clock.epoch() - self.settings.forget_after
        with self._lock:
            old = [
                wid
                for wid, r in self._workers.items()
                if r.status == "offline"
                and r.seen_at < horizon
                and wid not in self._gone
                and wid not in self._finishing
            ]
        for worker_id in old:
            if self.registry.queued(names.worker_queue(worker_id)):
                continue  # drained at the next tick first
            self.registry.remove(worker_id)
            self.workers.remove(worker_id)
            with self._lock:
                self._workers.pop(worker_id, None)
                self._views.pop(worker_id, None)
            log.info("forgot a long-gone worker", extra={"event": "worker.forgotten", "worker": worker_id})

    # -- placing --------------------------------------------------------------------------
    def place_pending(self) -> int:
        """Re-publish every message in hydra.pending that now has an eligible worker and room
        in its namespace's quota. While some wait only for their quota, this runs every tick
        (a place frees as soon as a run ends), else every PENDING_SWEEP_EVERY seconds."""
        placed = 0
        blocked = False
        # What still waits is put back only after the whole queue was looked at: kombu hands
        # out the highest priority first, so a message put back at once would come straight
        # back and hide every message behind it.
        waiting = []
        with self.app.connection_for_write() as conn:
            pending = SimpleQueue(conn, names.PENDING_QUEUE, no_ack=False)
            try:
                size = pending.qsize()
            except ChannelError:  # kombu's Redis transport: an empty queue does not exist
                size = 0
            try:
                for _ in range(size):
                    if not self._acting():
                        break
                    try:
                        message = pending.get(block=False)
                    except SimpleQueue.Empty:
                        break
                    try:
                        result = self.pipeline.republish(message, only_if_placeable=True)
                    except Exception:
                        waiting.append(message)
                        raise
                    if result in (Republished.WAITING, Republished.OVER_QUOTA):
                        waiting.append(message)
                    placed += result == Republished.SENT
                    blocked |= result == Republished.OVER_QUOTA
            finally:
                try:
                    for message in waiting:
                        message.requeue()
                finally:
                    pending.close()
        self._quota_blocked = blocked
        return placed

    def publish_unpublished(self) -> int:
        """Publish what was accepted but never published: runs recorded while the broker was
        unreachable, delayed runs that are due (should Redis have lost their due-index entry),
        and jobs whose first run was never recorded (the API died mid-way). O(work waiting):
        both come from the indexes. While those are being rebuilt this waits: the rebuild
        ends with a reconciliation that publishes them."""
        now = clock.utcnow()
        try:
            if not self.index.built():
                return 0
            waiting = self.runs.unpublished(now)
            undispatched = self.jobs.undispatched()
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
        Reads each held run by ``_id``: O(runs holding places)."""
        slots = self.pipeline.router.slots
        freed = 0
        for namespace in slots.namespaces():
            queued, running = slots.held(namespace)
            for run_id in queued | running:
                run = self.runs.find(run_id)
                if run is None or run.run_status.is_terminal or run.status == RunStatus.PENDING.value:
                    slots.released(namespace, run_id)
                    freed += 1
                elif run.status == RunStatus.RUNNING.value and run_id in queued:
                    slots.started(namespace, run_id)
            slots.forget_if_empty(namespace)
        for job_id in slots.jobs():  # jobs' max_concurrent places
            for run_id in slots.job_held(job_id):
                run = self.runs.find(run_id)
                if run is None or run.run_status.is_terminal or run.status == RunStatus.PENDING.value:
                    slots.job_released(job_id, run_id)
                    freed += 1
            slots.forget_job_if_empty(job_id)
        if freed:
            self._changed.set()  # what waited for those places may go now
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
            if not self._acting():
                break
            run = self.runs.find(run_id)
            waiting = run is not None and run.status in (RunStatus.QUEUED.value, RunStatus.PENDING.value)
            if not waiting or run is None or self.runs.start_of(run_id) or self.runs.end_of(run_id):
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

    # -- bookkeeping -----------------------------------------------------------------------
    def _publish(self, record: WorkerRecord, *, beat: bool = False) -> tuple[int, int]:
        """Write a worker record to the registry (router) and the workers view (API); with
        ``beat``, also read the worker's load and queue depth in the same round trip."""
        load_and_queued = self.registry.beat(record) if beat else (0, 0)
        if not beat:
            self.registry.put(record)
        self.registry.forget_cache()
        self._refresh_view(record)
        return load_and_queued

    def _refresh_view(self, record: WorkerRecord) -> None:
        """Write the worker's MongoDB view when it shows something new, or VIEW_REFRESH after
        it was written last."""
        shown = (record.profile, record.status, record.active)
        now = clock.epoch()
        last = self._views.get(record.profile.id)
        if last is not None and last[0] == shown and now - last[1] < VIEW_REFRESH:
            return
        profile = record.profile.to_dict()
        view = WorkerView(
            id=record.profile.id,
            os=profile["os"],
            tags=profile["tags"],
            allowed_users=profile["allowed_users"],
            namespaces=profile["namespaces"],
            max_concurrency=profile["max_concurrency"],
            shells=profile["shells"],
            resource_limits=profile["limits"],
            queue=profile["queue"],
            status=record.status,
            last_heartbeat=clock.from_epoch(record.last_heartbeat or record.seen_at),
            current_running=record.active,
            processed=record.processed,
            hostname=record.hostname,
            pid=record.pid,
            heartbeat_interval=record.freq,
        )
        try:
            self.workers.put(view)
        except StoreUnavailable as exc:
            log.warning("workers view not updated (MongoDB down): %s", exc)
        else:
            self._views[record.profile.id] = (shown, now)

    def _correct_load(self, record: WorkerRecord, load: int, queued: int) -> None:
        """Reset a worker's load after it was seen idle with an empty queue twice in a row:
        the router's counter can drift when a publish fails after routing."""
        wid = record.profile.id
        if record.active or queued:
            self._idle_beats[wid] = 0
            return
        self._idle_beats[wid] = self._idle_beats.get(wid, 0) + 1
        if self._idle_beats[wid] >= IDLE_BEATS_TO_RESET and load:
            self.registry.set_load(wid, 0)
