"""Worker tracking: Celery's worker events in, the fleet's records out.

Every controller, leading or not, listens (so a standby knows the fleet as well as the
leader); only the leader writes. Three loops, each a thread of the controller:

* :class:`EventListener` - ``worker-online``, ``worker-heartbeat``, ``worker-offline``;
  a new worker (or a new process of one) is asked for its profile, a goodbye marks it
  offline (:meth:`EventListener.went_offline`, also called by the tick for silent workers);
* :class:`ProfileFetcher` - asks new workers for their profile with the ``hydra_profile``
  remote-control command, off the event thread;
* :class:`BeatWriter` - writes the heartbeats heard to the registry in one round trip every
  :data:`BEATS_EVERY` seconds (a fleet of 1,000 workers sends 500 a second).
"""

from __future__ import annotations

import logging
import queue
import threading

from hydra import clock
from hydra.broker.registry import WorkerRecord
from hydra.control.fleet import Fleet, FleetWriter
from hydra.control.lease import ControllerLease
from hydra.model.affinity import WorkerProfile

log = logging.getLogger(__name__)

#: Seconds between writes of the heartbeats heard to the registry (the router reads only
#: profiles and liveness, which are written at once; heartbeats refresh the records).
BEATS_EVERY = 0.25


class BeatWriter:
    """Collects the heartbeats heard; :meth:`run` writes them every :data:`BEATS_EVERY` s."""

    def __init__(self, writer: FleetWriter, lease: ControllerLease, *, every: float = BEATS_EVERY):
        self.writer = writer
        self.lease = lease
        self.every = every
        self._beating: dict[str, WorkerRecord] = {}  # heartbeats heard, not yet written
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def heard(self, record: WorkerRecord) -> None:
        with self._lock:
            self._beating[record.profile.id] = record

    def write(self) -> int:
        """Write the heartbeats heard since the last call to the registry in one round trip,
        correcting loads and refreshing the workers view as each one's heartbeat used to."""
        with self._lock:
            beating, self._beating = self._beating, {}
        if not beating or not self.lease.held:
            return 0
        records = list(beating.values())
        registry = self.writer.registry
        for record, (load, queued) in zip(records, registry.beats(records), strict=True):
            self.writer.correct_load(record, load, queued)
            self.writer.refresh_view(record)
        registry.forget_cache()
        return len(records)

    def run(self) -> None:
        while not self._stop.wait(self.every):
            self.write()

    def stop(self) -> None:
        self._stop.set()


class ProfileFetcher:
    """Asks new workers for their profile (remote control) and records what they answer."""

    def __init__(self, app, fleet: Fleet, writer: FleetWriter, lease: ControllerLease, changed: threading.Event):
        self.app = app
        self.fleet = fleet
        self.writer = writer
        self.lease = lease
        self.changed = changed
        self._requests: queue.Queue[str] = queue.Queue()
        self._wanted: set[str] = set()
        self._stop = threading.Event()

    def want(self, worker_id: str) -> None:
        if worker_id not in self._wanted:
            self._wanted.add(worker_id)
            self._requests.put(worker_id)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                worker_id = self._requests.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                reply = self.ask(worker_id)
            finally:
                self._wanted.discard(worker_id)
            self.learned(worker_id, reply)

    def stop(self) -> None:
        self._stop.set()

    def learned(self, worker_id: str, reply: dict | None) -> WorkerRecord | None:
        """Record a worker's answer (None: it sent no profile); the record, or None."""
        profile = (reply or {}).get("profile")
        if reply is None or profile is None:
            log.warning("worker %s sent no Hydra profile (not started with -A hydra?)", worker_id)
            return None
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
        self.fleet.learned(worker_id, record)
        if self.lease.held:
            self.writer.registry.set_load(worker_id, 0)
            self.writer.publish(record)
            log.info("worker online", extra={"event": "worker.online", "worker": worker_id, "profile": profile})
        self.changed.set()
        return record

    def ask(self, worker_id: str) -> dict | None:
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


class EventListener:
    """Listens to Celery's worker events and keeps the fleet's records from them."""

    def __init__(
        self,
        app,
        fleet: Fleet,
        writer: FleetWriter,
        lease: ControllerLease,
        changed: threading.Event,
        *,
        profiles: ProfileFetcher,
        beats: BeatWriter,
    ):
        self.app = app
        self.fleet = fleet
        self.writer = writer
        self.lease = lease
        self.changed = changed
        self.profiles = profiles
        self.beats = beats
        self._receiver = None
        self._stop = threading.Event()

    def run(self) -> None:
        with self.app.connection_for_read() as conn:
            self._receiver = self.app.events.Receiver(conn, handlers={"*": self.on_event}, routing_key="worker.#")
            self._receiver.should_stop = self._stop.is_set()
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def stop(self) -> None:
        self._stop.set()
        if self._receiver is not None:
            self._receiver.should_stop = True

    def on_event(self, event: dict) -> None:
        kind = event.get("type", "")
        worker_id = event.get("hostname")
        if not worker_id or not kind.startswith("worker-"):
            return
        record = self.fleet.get(worker_id)
        if kind == "worker-offline":
            self.went_offline(worker_id, goodbye=True, reason="shut down")
            return
        pid = event.get("pid")
        if record is None or kind == "worker-online" or (pid and record.pid and pid != record.pid):
            self.profiles.want(worker_id)  # new, or a new process of it: learn its incarnation
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
        if not self.lease.held:
            return
        if not came_back:
            self.beats.heard(record)  # written with the others by the beats thread
            return
        self.writer.registry.set_load(worker_id, 0)
        self.writer.correct_load(record, *self.writer.publish(record, beat=True))
        log.info("worker online", extra={"event": "worker.online", "worker": worker_id})
        self.changed.set()

    def went_offline(self, worker_id: str, *, goodbye: bool, reason: str) -> None:
        record = self.fleet.went_offline(worker_id, goodbye=goodbye, reason=reason)
        if record is None or not self.lease.held:
            return
        self.writer.registry.set_load(worker_id, 0)
        self.writer.publish(record)
        log.warning(
            "worker offline",
            extra={"event": "worker.offline", "worker": worker_id, "reason": reason, "goodbye": goodbye},
        )
        self.changed.set()
