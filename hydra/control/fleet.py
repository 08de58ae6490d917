"""What a controller knows of the fleet, shared by its loops, and how it writes that down.

:class:`Fleet` is the one piece of state the controller's threads share: the workers heard
of (from Celery's events and their profiles) and the failover still to do for them. The
event and profile threads write it, the tick reads it; its own lock guards only these
four maps, never a call to Redis or MongoDB.

:class:`FleetWriter` writes a worker's record where the others read it: the registry in
Redis (read by the router) and the ``workers`` view in MongoDB (``GET /workers/``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from hydra import clock
from hydra.broker.registry import Registry, WorkerRecord
from hydra.errors import StoreUnavailable, Unavailable
from hydra.store.workers import WorkerStore, WorkerView

log = logging.getLogger(__name__)

#: Heartbeats in a row with nothing running and nothing queued before a worker's load is reset.
IDLE_BEATS_TO_RESET = 2
#: Seconds a worker's MongoDB view (GET /workers/) may lag its heartbeats: it is written at
#: once when the worker's profile, liveness or running count changes, else at most this
#: often (a fleet of 1,000 workers beating every 2 s would otherwise write 500 times a second).
VIEW_REFRESH = 30.0


@dataclass
class Fleet:
    """The workers this controller heard of, and the failover still to do for them."""

    records: dict[str, WorkerRecord] = field(default_factory=dict)
    #: worker -> (goodbye, reason): went offline, failover to do
    gone: dict[str, tuple[bool, str]] = field(default_factory=dict)
    #: worker said goodbye -> run -> deadline: runs it may still finish
    finishing: dict[str, dict[str, float]] = field(default_factory=dict)
    #: worker -> incarnation learned, not yet checked against its previous process
    restarted: dict[str, str] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def get(self, worker_id: str) -> WorkerRecord | None:
        with self.lock:
            return self.records.get(worker_id)

    def learned(self, worker_id: str, record: WorkerRecord) -> None:
        """A worker answered with its profile: (again) known, and online."""
        with self.lock:
            self.records[worker_id] = record
            self.gone.pop(worker_id, None)
            if record.incarnation:
                self.restarted[worker_id] = record.incarnation

    def went_offline(self, worker_id: str, *, goodbye: bool, reason: str) -> WorkerRecord | None:
        """Mark a known online worker offline, failover to do; its record, or None when it
        was unknown or already offline."""
        with self.lock:
            record = self.records.get(worker_id)
            if record is None or record.status == "offline":
                return None
            record.status = "offline"
            self.gone[worker_id] = (goodbye, reason)
            return record

    def stale(self, now: float, offline_after: float) -> list[WorkerRecord]:
        """Online workers silent for ``offline_after`` heartbeat intervals."""
        with self.lock:
            return [r for r in self.records.values() if r.status == "online" and r.is_stale(now, offline_after)]

    def online_queues(self) -> dict[str, str]:
        with self.lock:
            return {wid: r.profile.queue for wid, r in self.records.items() if r.status == "online"}

    def adopt(self, records: dict[str, WorkerRecord], now: float) -> tuple[list[WorkerRecord], list[WorkerRecord]]:
        """Keep what was heard, add what only the registry knows; (adopted, all known)."""
        adopted = []
        with self.lock:
            for wid, record in records.items():
                if wid not in self.records:
                    record.seen_at = now  # heartbeats will confirm it, or it goes stale
                    self.records[wid] = record
                    adopted.append(record)
            return adopted, list(self.records.values())


class FleetWriter:
    """Writes worker records to the registry and the workers view; resets drifted loads."""

    def __init__(self, registry: Registry, workers: WorkerStore | None = None):
        self.registry = registry
        self.workers = workers or WorkerStore()
        self._views: dict[str, tuple[tuple, float]] = {}  # worker -> (what its view showed, when)
        self._idle_beats: dict[str, int] = {}

    def publish(self, record: WorkerRecord, *, beat: bool = False) -> tuple[int, int]:
        """Write a worker record to the registry (router) and the workers view (API); with
        ``beat``, also read the worker's load and queue depth in the same round trip."""
        load_and_queued = self.registry.beat(record) if beat else (0, 0)
        if not beat:
            self.registry.put(record)
        self.registry.forget_cache()
        self.refresh_view(record)
        return load_and_queued

    def refresh_view(self, record: WorkerRecord) -> None:
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

    def correct_load(self, record: WorkerRecord, load: int, queued: int) -> None:
        """Reset a worker's load after it was seen idle with an empty queue twice in a row:
        the router's counter can drift when a publish fails after routing."""
        wid = record.profile.id
        if record.active or queued:
            self._idle_beats[wid] = 0
            return
        self._idle_beats[wid] = self._idle_beats.get(wid, 0) + 1
        if self._idle_beats[wid] >= IDLE_BEATS_TO_RESET and load:
            self.registry.set_load(wid, 0)

    def remove(self, worker_id: str) -> None:
        """Forget a worker: out of the registry and the workers view."""
        self.registry.remove(worker_id)
        self.workers.remove(worker_id)
        self._views.pop(worker_id, None)
        self._idle_beats.pop(worker_id, None)

    def take_over(self, fleet: Fleet) -> list[WorkerRecord]:
        """A new leader: keep what this controller heard, adopt what only the registry knows,
        and write every known worker; returns the adopted records."""
        try:
            records = self.registry.records()
        except Unavailable:
            records = {}
        adopted, known = fleet.adopt(records, clock.epoch())
        for record in known:
            self.publish(record)
        # Writing a large fleet's records takes a while: its heartbeats are due from now on.
        done = clock.epoch()
        with fleet.lock:
            for record in adopted:
                record.seen_at = max(record.seen_at, done)
        return adopted
