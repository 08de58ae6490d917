"""The controller's leader lease, kept by a thread of its own.

Renewal never waits behind a tick. A placement or sweep pass that takes longer than the
lease's TTL (``HYDRA_LEADER_TTL``, 5 s) - a store slowed by thousands of jobs arriving at once -
used to cost the only controller its lease: every thread stopped acting, ``/health`` said
the controller was down, and the next tick took the lease again and adopted the whole fleet
once more. :class:`ControllerLease` renews every ``min(TTL / 3, HYDRA_CONTROLLER_TICK)``
seconds on a Redis client of its own (calls give up after a third of the TTL), and while it
holds the lease it writes the ``hydra:controller:alive`` marker that ``/health`` reads.

Fencing, as before: the controller acts only while :attr:`ControllerLease.held`, which every
thread checks before it acts and the tick checks between its steps. ``held`` is true only
until one TTL after the moment the last successful renewal was *sent* (a monotonic clock), so
a renewal stuck on a dead link cannot make this process believe it leads past the moment the
key expires in Redis and another controller may take it. Every decision is fenced in MongoDB
as well (``hydra.broker.lease``), so even a leader that acts a little late cannot decide
twice.

A tick that is stuck, not busy: the tick reports progress (:meth:`ControllerLease.progress`)
at every step and every item of a long sweep; with no progress for :data:`STALL_AFTER`
seconds the lease is given up and not taken again until the ticks move, so that a standby
controller - the production shape is two controllers - takes over, and with a single
controller ``/health`` names it down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from hydra import names
from hydra.broker import redis as broker_redis
from hydra.broker.lease import LeaderLease
from hydra.broker.registry import Registry
from hydra.errors import Unavailable

log = logging.getLogger(__name__)

#: Seconds without any progress of the ticks after which the lease is given up.
STALL_AFTER = 60.0


class ControllerLease:
    """The leader lease of one controller: :meth:`run` keeps it until :meth:`stop`."""

    def __init__(
        self,
        name: str,
        *,
        ttl: float,
        tick: float,
        registry: Registry | None = None,
        lease: LeaderLease | None = None,
        on_gained: Callable[[], None] | None = None,
        stall_after: float = STALL_AFTER,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.name = name
        self.ttl = ttl
        self.every = min(ttl / 3, tick)
        self.alive_ttl = max(5, int(tick * 10))
        self.stall_after = stall_after
        self._lease = lease or LeaderLease(
            names.LEADER_KEY,
            identity=name,
            ttl=ttl,
            epoch_key=names.LEADER_EPOCH_KEY,
            client=broker_redis.get_redis(timeout=ttl / 3),
        )
        self._registry = registry or Registry()
        self._on_gained = on_gained
        self._now = monotonic
        self._valid_until = 0.0
        self._progress = monotonic()
        self._stalled = False
        self._stop = threading.Event()
        #: Successful renewals and acquisitions (tests and logs).
        self.renewals = 0

    # -- what the other threads read ------------------------------------------------------
    @property
    def held(self) -> bool:
        """True while this controller holds the lease for certain."""
        return self._lease.held and self._now() < self._valid_until

    @property
    def epoch(self) -> int | None:
        """The fencing counter of the current acquisition (a new one after each takeover)."""
        return self._lease.epoch if self.held else None

    @property
    def key(self) -> str:
        return self._lease.key

    def progress(self) -> None:
        """The ticks moved on (called by the tick between its steps)."""
        self._progress = self._now()

    def acting(self) -> bool:
        """Between a pass's steps: the ticks move (:meth:`progress`), and go on only while
        this controller still leads (fencing: a lost lease stops the pass)."""
        self.progress()
        return self.held

    def free_or_ours(self) -> bool:
        """True unless another controller holds the lease now. Raises BrokerUnavailable."""
        return self._lease.free_or_ours()

    # -- the thread -----------------------------------------------------------------------
    def run(self) -> None:
        """Renew (or try to take) the lease every ``every`` seconds until :meth:`stop`."""
        while not self._stop.is_set():
            self.hold()
            self._stop.wait(self.every)
        self.release()

    def stop(self) -> None:
        self._stop.set()

    def hold(self) -> bool:
        """One renewal, or one try to take the lease; True while it is held."""
        sent = self._now()
        was = self.held
        if sent - self._progress > self.stall_after:
            if not self._stalled:
                log.error(
                    "the controller's ticks made no progress for %.0f s: giving the leader lease up",
                    sent - self._progress,
                    extra={"event": "controller.stalled", "worker": self.name},
                )
            self._stalled = True
            self.release()
            return False
        self._stalled = False
        try:
            held = self._lease.hold()
        except Unavailable as exc:
            log.warning("leader lease not renewed: %s", exc, extra={"event": "controller.lease", "worker": self.name})
            held = False
        if not held:
            self._valid_until = 0.0
            if was:
                log.warning("lost the leader lease", extra={"event": "controller.standby", "worker": self.name})
            return False
        self._valid_until = sent + self.ttl
        self.renewals += 1
        try:
            self._registry.mark_controller_alive(self.name, ttl=self.alive_ttl)
        except Unavailable:
            pass  # the next renewal writes it
        if not was and self._on_gained is not None:
            self._on_gained()
        return self.held

    def release(self) -> None:
        """Give the lease up (if still ours); never raises."""
        self._valid_until = 0.0
        self._lease.release()
