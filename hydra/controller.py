"""The controller: turns Celery events into the live worker registry and places waiting jobs.

It runs as ``hydra controller`` (or ``python -m hydra controller``) and does three things:

* **listens** to Celery's worker events (``worker-online``, ``worker-heartbeat``,
  ``worker-offline``): a worker it has not seen is asked for its profile with the
  ``hydra_profile`` remote-control command, then entered in the registry (Redis, read by
  the router) and in the ``workers`` collection (MongoDB, served by ``GET /workers/``);
* **ticks** every ``HYDRA_CONTROLLER_TICK`` seconds: a worker silent for
  ``HYDRA_OFFLINE_AFTER`` heartbeat intervals (by the controller's own clock) is marked
  offline; its load is reset;
* **places** waiting jobs: messages in ``hydra.pending`` are re-published through the
  router as soon as an eligible worker is online (at once when a worker comes online, and
  every few seconds otherwise), and runs recorded as pending because the broker was down
  at submission are published once it is back.
"""
from __future__ import annotations

import logging
import queue
import signal
import socket
import threading
import time
from datetime import datetime, timezone

from amqp.exceptions import ChannelError
from kombu.simple import SimpleQueue

from hydra import names
from hydra.affinity import WorkerProfile
from hydra.db import UNAVAILABLE_ERRORS, get_database
from hydra.attempts import publish_delayed, publish_due
from hydra.jobs import BROKER_ERRORS, JobStore, chain_headers, dispatch
from hydra.registry import Registry, WorkerRecord
from hydra.router import AffinityRouter
from hydra.runs import RunStore
from hydra.scheduler import Scheduler
from hydra.settings import Settings, get_settings
from hydra.status import RunStatus

log = logging.getLogger(__name__)

#: Seconds between passes over hydra.pending when nothing changed.
PENDING_SWEEP_EVERY = 5.0
#: Seconds between looks for runs recorded while the broker was down.
UNPUBLISHED_SWEEP_EVERY = 15.0
#: Heartbeats in a row with nothing running and nothing queued before a worker's load is reset.
IDLE_BEATS_TO_RESET = 2


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


class Controller:
    def __init__(self, app, *, settings: Settings | None = None, registry: Registry | None = None,
                 runs: RunStore | None = None):
        self.app = app
        self.settings = settings or get_settings()
        self.registry = registry or Registry()
        self.runs = runs or RunStore()
        self.jobs = JobStore()
        self.router = AffinityRouter(self.registry)
        self.name = f"controller@{socket.gethostname()}"
        self._workers: dict[str, WorkerRecord] = {}
        self._idle_beats: dict[str, int] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._changed = threading.Event()
        self._profile_requests: queue.Queue[str] = queue.Queue()
        self._wanted: set[str] = set()
        self._last_pending_sweep = 0.0
        self._last_unpublished_sweep = 0.0
        self._receiver = None
        self.scheduler = Scheduler(stop=self._stop)  # cron; leads when it holds the lock (hydra.scheduler)

    # -- lifecycle --------------------------------------------------------------------
    def run(self) -> None:
        """Run until SIGTERM/SIGINT (or :meth:`stop`)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, lambda *_: self.stop())
            except ValueError:  # not the main thread (tests)
                pass
        self.adopt_registry()
        threads = [threading.Thread(target=self._guard, args=(fn,), name=name, daemon=True)
                   for name, fn in (("events", self.listen), ("profiles", self.fetch_profiles),
                                    ("ticker", self.tick_forever), ("scheduler", self.scheduler.run))]
        for thread in threads:
            thread.start()
        log.info("controller started", extra={"event": "controller.started", "worker": self.name})
        self._stop.wait()
        if self._receiver is not None:
            self._receiver.should_stop = True
        for thread in threads:
            thread.join(timeout=5)
        log.info("controller stopped", extra={"event": "controller.stopped"})

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()

    def _guard(self, fn) -> None:
        """Run a loop; when it fails (Redis down, ...), log and start it again."""
        while not self._stop.is_set():
            try:
                fn()
            except Exception:  # noqa: BLE001 - a controller thread must not die
                log.exception("controller loop %s failed; restarting in 1 s", fn.__name__)
                self._stop.wait(1.0)

    def adopt_registry(self) -> None:
        """Take over what a previous controller knew; heartbeats confirm or expire it."""
        now = time.time()
        try:
            records = self.registry.records()
        except BROKER_ERRORS:
            return
        with self._lock:
            for wid, record in records.items():
                record.seen_at = now
                self._workers[wid] = record

    # -- events -------------------------------------------------------------------------
    def listen(self) -> None:
        with self.app.connection_for_read() as conn:
            self._receiver = self.app.events.Receiver(
                conn, handlers={"*": self.on_event}, routing_key="worker.#")
            self._receiver.should_stop = self._stop.is_set()
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def on_event(self, event: dict) -> None:
        kind = event.get("type", "")
        worker_id = event.get("hostname")
        if not worker_id or not kind.startswith("worker-"):
            return
        if kind == "worker-offline":
            self.mark_offline(worker_id, "worker said goodbye")
            return
        with self._lock:
            record = self._workers.get(worker_id)
        if record is None:
            if worker_id not in self._wanted:
                self._wanted.add(worker_id)
                self._profile_requests.put(worker_id)
            return
        came_back = record.status != "online"
        record.status = "online"
        record.seen_at = time.time()
        record.last_heartbeat = float(event.get("timestamp") or record.seen_at)
        record.freq = float(event.get("freq") or record.freq or 2.0)
        record.active = int(event.get("active") or 0)
        record.processed = int(event.get("processed") or 0)
        record.pid = event.get("pid", record.pid)
        self._publish(record)
        self._correct_load(record)
        if came_back:
            log.info("worker online", extra={"event": "worker.online", "worker": worker_id})
            self._changed.set()

    def fetch_profiles(self) -> None:
        """Ask new workers for their profile (remote control), off the event thread."""
        while not self._stop.is_set():
            try:
                worker_id = self._profile_requests.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                profile = self._ask_profile(worker_id)
            finally:
                self._wanted.discard(worker_id)
            if profile is None:
                log.warning("worker %s sent no Hydra profile (not started with -A hydra?)", worker_id)
                continue
            record = WorkerRecord(profile=WorkerProfile.from_dict(profile), status="online",
                                  seen_at=time.time(), last_heartbeat=time.time(),
                                  hostname=worker_id.split("@", 1)[-1])
            with self._lock:
                self._workers[worker_id] = record
            self.registry.set_load(worker_id, 0)
            self._publish(record)
            log.info("worker online", extra={"event": "worker.online", "worker": worker_id,
                                             "profile": profile})
            self._changed.set()

    def _ask_profile(self, worker_id: str) -> dict | None:
        # A worker announces itself before its remote-control consumer is listening, so the
        # first questions may go unanswered; ask again shortly rather than at its next heartbeat.
        for delay in (0.0, 0.2, 0.5, 1.0):
            if self._stop.wait(delay):
                return None
            replies = self.app.control.broadcast("hydra_profile", destination=[worker_id],
                                                 reply=True, timeout=1.0)
            for reply in replies or []:
                if worker_id in reply and reply[worker_id].get("profile"):
                    return reply[worker_id]["profile"]
        return None

    # -- ticking -------------------------------------------------------------------------
    def tick_forever(self) -> None:
        while not self._stop.is_set():
            changed = self._changed.wait(self.settings.controller_tick)
            self._changed.clear()
            self.tick(force_pending=changed)

    def tick(self, force_pending: bool = False) -> None:
        now = time.time()
        self.registry.redis.set(names.CONTROLLER_ALIVE_KEY, self.name,
                                ex=max(5, int(self.settings.controller_tick * 10)))
        with self._lock:
            stale = [r for r in self._workers.values()
                     if r.status == "online" and r.is_stale(now, self.settings.offline_after)]
        for record in stale:
            self.mark_offline(record.profile.id, f"no heartbeat for {now - record.seen_at:.1f}s")
        publish_due(runs=self.runs)
        if force_pending or stale or now - self._last_pending_sweep >= PENDING_SWEEP_EVERY:
            self._last_pending_sweep = now
            self.place_pending()
        if now - self._last_unpublished_sweep >= UNPUBLISHED_SWEEP_EVERY:
            self._last_unpublished_sweep = now
            self.publish_unpublished()

    def mark_offline(self, worker_id: str, reason: str) -> None:
        with self._lock:
            record = self._workers.get(worker_id)
            if record is None or record.status == "offline":
                return
            record.status = "offline"
        self.registry.set_load(worker_id, 0)
        self._publish(record)
        log.warning("worker offline", extra={"event": "worker.offline", "worker": worker_id,
                                             "reason": reason})

    # -- placing --------------------------------------------------------------------------
    def place_pending(self) -> int:
        """Re-publish every message in hydra.pending that now has an eligible worker."""
        placed = 0
        with self.app.connection_for_write() as conn:
            pending = SimpleQueue(conn, names.PENDING_QUEUE, no_ack=False)
            try:
                size = pending.qsize()
            except ChannelError:  # kombu's Redis transport: an empty queue does not exist
                size = 0
            try:
                for _ in range(size):
                    try:
                        message = pending.get(block=False)
                    except SimpleQueue.Empty:
                        break
                    placed += self._place_one(message)
            finally:
                pending.close()
        return placed

    def _place_one(self, message) -> int:
        _args, kwargs, _embed = message.payload
        run_id = message.headers.get("id")
        if self.runs.end_of(run_id) is not None:  # cancelled while it waited
            message.ack()
            return 0
        if self.router.place(kwargs).worker is None:
            message.requeue()
            return 0
        self.app.send_task(names.TASK_RUN_COMMAND, kwargs=kwargs, task_id=run_id,
                           priority=message.properties.get("priority"),
                           headers=chain_headers(message.headers.get("hydra_retry_of"),
                                                 message.headers.get("hydra_lost") or 0))
        message.ack()
        log.info("pending run placed", extra={"event": "run.placed", "run_id": run_id,
                                              "job_id": kwargs.get("job_id")})
        return 1

    def publish_unpublished(self) -> int:
        """Publish what was accepted but never published: runs recorded while the broker was
        unreachable, delayed runs that are due (should Redis have lost their due-index entry),
        and jobs whose first run was never recorded (the API died mid-way)."""
        now = datetime.now(timezone.utc)
        try:
            waiting = [r for r in self.runs.with_status([RunStatus.PENDING])
                       if not r.get("queue") and (r.get("not_before") is None or r["not_before"] <= now)]
            undispatched = self.jobs.undispatched()
        except UNAVAILABLE_ERRORS:
            return 0
        published = 0
        for job in undispatched:
            if self.runs.find(job["last_run_id"]) is None:
                dispatch(job, run_id=job["last_run_id"], runs=self.runs)
                published += 1
            else:
                self.jobs.jobs.update_one({"_id": job["_id"]}, {"$unset": {"undispatched": ""}})
        for run in waiting:
            published += publish_delayed(run["_id"], runs=self.runs)
        return published

    # -- bookkeeping -----------------------------------------------------------------------
    def _publish(self, record: WorkerRecord) -> None:
        """Write a worker record to the registry (router) and the workers collection (API)."""
        self.registry.put(record)
        self.registry.forget_cache()
        doc = record.profile.to_dict()
        doc.update(status=record.status, last_heartbeat=_dt(record.last_heartbeat or record.seen_at),
                   current_running=record.active, processed=record.processed, hostname=record.hostname,
                   pid=record.pid, heartbeat_interval=record.freq, updated_at=_dt(time.time()))
        doc.pop("id")
        try:
            get_database()[names.WORKERS].update_one(
                {"_id": record.profile.id},
                {"$set": doc, "$setOnInsert": {"first_seen": _dt(time.time())}}, upsert=True)
        except UNAVAILABLE_ERRORS as exc:
            log.warning("workers view not updated (MongoDB down): %s", exc)

    def _correct_load(self, record: WorkerRecord) -> None:
        """Reset a worker's load after it was seen idle with an empty queue twice in a row:
        the router's counter can drift when a publish fails after routing."""
        wid = record.profile.id
        if record.active:
            self._idle_beats[wid] = 0
            return
        if self.registry.queued(record.profile.queue):
            self._idle_beats[wid] = 0
            return
        self._idle_beats[wid] = self._idle_beats.get(wid, 0) + 1
        if self._idle_beats[wid] >= IDLE_BEATS_TO_RESET:
            self.registry.set_load(wid, 0)
