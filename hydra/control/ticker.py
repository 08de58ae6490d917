"""The leader's tick (``HYDRA_CONTROLLER_TICK``): one housekeeping pass, step by step.

On every tick, while this controller leads, :class:`Ticker`:

1. takes over after a new acquisition of the lease (adopts what only the registry knows);
2. has the indexes rebuilt and MongoDB's waiting runs re-published after Redis restarted
   or was flushed (``hydra.control.upkeep.IndexKeeper``);
3. marks workers silent for ``HYDRA_OFFLINE_AFTER`` heartbeat intervals offline, fails over
   the gone ones and keeps the drains (``hydra.control.gone``);
4. publishes the delayed runs that are due, places what waits in ``hydra.pending``
   (``hydra.control.placement``), and runs the sweeps (``hydra.control.sweeps``).

The lease thread renews the lease meanwhile; the tick tells it that it moves and checks the
lease between its steps (:meth:`~hydra.control.lease.ControllerLease.acting`), and stops once
it is lost. Something changed (a worker came, places freed): ``changed`` wakes it early.
"""

from __future__ import annotations

import logging
import threading
import time

from hydra import clock
from hydra.control.failover import Failover
from hydra.control.fleet import Fleet, FleetWriter
from hydra.control.gone import GoneWorkers
from hydra.control.lease import ControllerLease
from hydra.control.placement import Placement
from hydra.control.sweeps import Sweeps
from hydra.control.tracking import EventListener
from hydra.control.upkeep import IndexKeeper
from hydra.dispatch.attempts import publish_due
from hydra.dispatch.pipeline import Pipeline
from hydra.errors import StoreUnavailable
from hydra.settings import Settings

log = logging.getLogger(__name__)


class Ticker:
    def __init__(
        self,
        *,
        pipeline: Pipeline,
        settings: Settings,
        lease: ControllerLease,
        changed: threading.Event,
        fleet: Fleet,
        writer: FleetWriter,
        events: EventListener,
        failover: Failover,
        gone: GoneWorkers,
        indexer: IndexKeeper,
        placement: Placement,
        sweeps: Sweeps,
        name: str,
    ):
        self.pipeline = pipeline
        self.settings = settings
        self.lease = lease
        self.changed = changed
        self.fleet = fleet
        self.writer = writer
        self.events = events
        self.failover = failover
        self.gone = gone
        self.indexer = indexer
        self.placement = placement
        self.sweeps = sweeps
        self.name = name
        self._led_epoch: int | None = None  # the acquisition became_leader() ran for
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            changed = self.changed.wait(self.settings.controller_tick)
            self.changed.clear()
            self.tick(force_pending=changed)

    def stop(self) -> None:
        self._stop.set()
        self.changed.set()

    def tick(self, force_pending: bool = False) -> None:
        """One housekeeping pass, while this controller leads. The lease thread renews the
        lease meanwhile; the pass checks it between its steps and stops once it is lost."""
        if not self.lease.acting():
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
            self.indexer.reconcile_later()
            self.changed.set()
        stale = self.fleet.stale(now, self.settings.offline_after)
        for record in stale:
            self.events.went_offline(
                record.profile.id, goodbye=False, reason=f"missed heartbeats for {now - record.seen_at:.1f}s"
            )
        if self.lease.acting() and self.pipeline.runs.can_sweep():
            try:
                self.gone.fail_over()
            except StoreUnavailable as exc:  # MongoDB down: the gone workers wait for the next tick
                log.warning("failover postponed: %s", exc)
        if not self.lease.acting():
            return
        force_pending |= self.gone.keep_drains()
        publish_due(self.pipeline)
        if not self.lease.acting():
            return
        if self.placement.due(now, changed=force_pending or bool(stale)):
            self.placement.place_pending()
        if not self.lease.acting():
            return
        if not self.sweeps.sweep(now):
            return
        self.writer.registry.count_tick((time.monotonic() - began) * 1000)

    def became_leader(self) -> None:
        """Take over: keep what this controller heard, adopt what only the registry knows."""
        self.writer.take_over(self.fleet)
        log.warning(
            "became the leading controller",
            extra={"event": "controller.leader", "worker": self.name, "epoch": self.lease.epoch},
        )
