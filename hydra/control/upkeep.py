"""The leader's background loops beside the tick: the indexes, retention, notifications.

Each is a thread of the controller that acts only while it leads:

* :class:`IndexKeeper` files the records the stores' writers could not file while Redis was
  unreachable (the backlog) and, when Redis lost the indexes, rebuilds them from MongoDB
  (``hydra.store.reindex``), then re-publishes what MongoDB holds as waiting when the tick
  found Redis reset (:meth:`IndexKeeper.reconcile_later`);
* :class:`RetentionLoop` prunes old history in small batches (``hydra.store.retention``);
* :class:`NotifierLoop` delivers the notifications of ended runs (``hydra.control.notifier``).
"""

from __future__ import annotations

import threading

from hydra.control.failover import Failover
from hydra.control.lease import ControllerLease
from hydra.control.notifier import Notifier
from hydra.errors import Unavailable
from hydra.settings import Settings
from hydra.store.reindex import Reindexer
from hydra.store.retention import Retention

#: Seconds between retention passes: after one that pruned a full batch, and otherwise.
RETENTION_BUSY, RETENTION_IDLE = 1.0, 30.0


class IndexKeeper:
    def __init__(
        self, reindexer: Reindexer, lease: ControllerLease, failover: Failover, notifier: Notifier, *, every: float
    ):
        self.reindexer = reindexer
        self.index = reindexer.runs.index
        self.lease = lease
        self.failover = failover
        self.notifier = notifier
        self.every = every
        #: Redis restarted or was flushed: re-publish what MongoDB holds as waiting, once the
        #: indexes are rebuilt.
        self.reconcile_due = False
        self._stop = threading.Event()

    def reconcile_later(self) -> None:
        """Redis was reset (the tick saw it): rebuild the indexes, then reconcile."""
        self.index.unbuild()
        self.reconcile_due = True

    def run(self) -> None:
        while not self._stop.is_set():
            if self.lease.held:
                self.keep()
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()

    def keep(self) -> None:
        """Rebuild the indexes when Redis lost them (then reconcile), else file the backlog.

        A rebuild that started while leading goes on while no other controller holds the
        lease: a tick held up past the lease's TTL (FerretDB busy with the very scans the
        rebuild ends) costs this controller a renewal, and abandoning the pass then would
        start it over and again. Filing is idempotent, so a second controller rebuilding at
        the same time would only double work."""
        if not self.index.built():
            if not self.lease.held:
                return

            def keep_going() -> bool:
                if self._stop.is_set():
                    return False
                try:
                    return self.lease.held or self.lease.free_or_ours()
                except Unavailable:
                    return False

            if self.reindexer.rebuild(keep_going=keep_going) is None:
                return
        self.reindexer.drain_backlog()
        if self.reconcile_due and self.lease.held:
            self.failover.reconcile()
            self.notifier.refile()
            self.reconcile_due = False


class RetentionLoop:
    def __init__(self, retention: Retention, lease: ControllerLease, settings: Settings):
        self.retention = retention
        self.lease = lease
        self.batch = settings.retention_batch
        self._stop = threading.Event()

    def step(self) -> float:
        """One pass while leading; the pause before the next."""
        if not self.lease.held:
            return RETENTION_IDLE
        pruned = self.retention.prune()
        return RETENTION_BUSY if pruned["runs"] >= self.batch else RETENTION_IDLE

    def run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.step())

    def stop(self) -> None:
        self._stop.set()


class NotifierLoop:
    def __init__(self, notifier: Notifier, lease: ControllerLease, *, every: float):
        self.notifier = notifier
        self.lease = lease
        self.every = every
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            if self.lease.held:
                self.notifier.deliver_due()
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
