"""The controller: Celery events in, live worker registry and failover out.

Run one or more as ``hydra controller`` (two in production); one leads, the others stand by.
:class:`Controller` only composes the loops below and runs each in a thread of its own (as
dramatiq's ``Worker`` owns a ``ConsumerThread`` and a ``WorkerThread``); every loop has its
own state, ``run`` and ``stop``, and they share only what the constructor hands them: the
lease (who leads), the :class:`~hydra.control.fleet.Fleet` (the workers heard of and the
failover to do) and the ``changed`` event that wakes the tick early.

Every controller keeps:

* the **lease** (``hydra.control.lease``), renewed by a thread of its own: a tick slowed by
  a flood of work cannot cost it, and a tick that finds it lost stops between its steps;
* the **events**, **profiles** and **beats** threads (``hydra.control.tracking``): Celery's
  worker events, the ``hydra_profile`` answers of new workers, the heartbeats written to the
  registry - so a standby knows the fleet as well as the leader.

The leader also runs:

* the **ticker** (``hydra.control.ticker``, every ``HYDRA_CONTROLLER_TICK``): offline
  detection and failover (``hydra.control.gone``), placement of pending runs
  (``hydra.control.placement``) and the sweeps (``hydra.control.sweeps``);
* the **indexer**, **retention** and **notifier** threads (``hydra.control.upkeep``) and
  the cron **scheduler** (``hydra.control.scheduler``).

Every sweep reads the stores' Redis indexes (``hydra.broker.index``): O(work in progress),
never O(history).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

from hydra.celery.app import current_pipeline
from hydra.control.drain import DrainKeeper
from hydra.control.failover import Failover
from hydra.control.fleet import Fleet, FleetWriter
from hydra.control.gone import GoneWorkers
from hydra.control.lease import ControllerLease
from hydra.control.notifier import Notifier
from hydra.control.placement import Placement
from hydra.control.scheduler import Scheduler
from hydra.control.sweeps import Sweeps
from hydra.control.ticker import Ticker
from hydra.control.tracking import BeatWriter, EventListener, ProfileFetcher
from hydra.control.upkeep import IndexKeeper, NotifierLoop, RetentionLoop
from hydra.dispatch import signing
from hydra.dispatch.pipeline import Pipeline
from hydra.settings import Settings, get_settings
from hydra.store.reindex import Reindexer
from hydra.store.retention import Retention

log = logging.getLogger(__name__)


class Controller:
    """The loops of one controller process; :meth:`run` until :meth:`stop`."""

    def __init__(
        self, app, *, settings: Settings | None = None, pipeline: Pipeline | None = None, name: str | None = None
    ):
        self.app = app
        self.settings = settings = settings or get_settings()
        self.pipeline = pipeline = current_pipeline(pipeline)
        self.runs = pipeline.runs
        self.jobs = pipeline.jobs
        self.name = name = name or f"controller@{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        #: Something changed (a worker came or left, places freed): the tick runs early.
        self.changed = threading.Event()
        registry = pipeline.router.registry
        self.lease = ControllerLease(
            name, ttl=settings.leader_ttl, tick=settings.controller_tick, registry=registry, on_gained=self.changed.set
        )
        self.fleet = Fleet()
        self.writer = FleetWriter(registry)
        self.failover = Failover(app, pipeline=pipeline, identity=name)
        self.notifier = Notifier(pipeline, settings)
        self.beats = BeatWriter(self.writer, self.lease)
        self.profiles = ProfileFetcher(app, self.fleet, self.writer, self.lease, self.changed)
        self.events = EventListener(
            app, self.fleet, self.writer, self.lease, self.changed, profiles=self.profiles, beats=self.beats
        )
        self.gone = GoneWorkers(self.fleet, self.writer, self.failover, DrainKeeper(registry), settings)
        self.indexer = IndexKeeper(
            Reindexer(self.runs), self.lease, self.failover, self.notifier, every=settings.controller_tick
        )
        self.placement = Placement(app, pipeline, self.lease)
        self.sweeps = Sweeps(pipeline, settings, self.lease, self.changed, name=name)
        self.ticker = Ticker(
            pipeline=pipeline,
            settings=settings,
            lease=self.lease,
            changed=self.changed,
            fleet=self.fleet,
            writer=self.writer,
            events=self.events,
            failover=self.failover,
            gone=self.gone,
            indexer=self.indexer,
            placement=self.placement,
            sweeps=self.sweeps,
            name=name,
        )
        self.retention = RetentionLoop(Retention(self.runs, settings), self.lease, settings)
        self.notifications = NotifierLoop(self.notifier, self.lease, every=settings.controller_tick)
        self.scheduler = Scheduler(pipeline, stop=self._stop)  # cron; leads when it holds its lease

    @property
    def leading(self) -> bool:
        return self.lease.held

    @property
    def loops(self) -> dict[str, object]:
        """Each thread's name and its loop: an object with ``run`` and ``stop()`` (the cron
        scheduler's ``stop`` is the controller's own stop event)."""
        return {
            "lease": self.lease,
            "events": self.events,
            "profiles": self.profiles,
            "ticker": self.ticker,
            "indexer": self.indexer,
            "retention": self.retention,
            "beats": self.beats,
            "scheduler": self.scheduler,
            "notifier": self.notifications,
        }

    def run(self) -> None:
        """Run until SIGTERM/SIGINT (or :meth:`stop`)."""
        signing.require_signing()  # a controller re-publishes and signs: without a key it must not start
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, lambda *_: self.stop())
            except ValueError:  # not the main thread (tests)
                pass
        threads = [
            threading.Thread(target=self._guard, args=(loop.run,), name=name, daemon=True)
            for name, loop in self.loops.items()
        ]
        for thread in threads:
            thread.start()
        log.info("controller started", extra={"event": "controller.started", "worker": self.name})
        self._stop.wait()
        for loop in self.loops.values():
            if loop is not self.scheduler:
                loop.stop()
        for thread in threads:
            thread.join(timeout=5)
        self.lease.release()
        log.info("controller stopped", extra={"event": "controller.stopped", "worker": self.name})

    def stop(self) -> None:
        self._stop.set()
        self.changed.set()

    def tick(self, force_pending: bool = False) -> None:
        """One pass of the ticker (tests and tools)."""
        self.ticker.tick(force_pending=force_pending)

    def _guard(self, fn) -> None:
        """Run a loop; when it fails (Redis or MongoDB down, ...), log and start it again."""
        while not self._stop.is_set():
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - a controller thread must not die
                log.warning(
                    "controller loop %s failed (%s: %s); restarting in 1 s",
                    getattr(fn, "__qualname__", fn),
                    exc.__class__.__name__,
                    exc,
                )
                self._stop.wait(1.0)
