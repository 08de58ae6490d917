"""The tick's step for workers that left: failover, their queues, drains, forgetting.

:class:`GoneWorkers` reads the failover to do from the shared :class:`~hydra.control.fleet.Fleet`
(what the event thread and the offline detection put there) and carries it out through
``hydra.control.failover``: attempts of a restarted or vanished worker are lost and placed
again, a goodbye's running attempts get until their timeout, whatever lands in an offline
worker's queue later goes back through the router. It also keeps the drained workers
(``hydra.control.drain``) and forgets workers offline for ``HYDRA_FORGET_AFTER`` seconds.
"""

from __future__ import annotations

import logging

from hydra import clock, names
from hydra.control.drain import DrainKeeper
from hydra.control.failover import Failover
from hydra.control.fleet import Fleet, FleetWriter
from hydra.errors import Unavailable
from hydra.settings import Settings

log = logging.getLogger(__name__)


class GoneWorkers:
    def __init__(self, fleet: Fleet, writer: FleetWriter, failover: Failover, drains: DrainKeeper, settings: Settings):
        self.fleet = fleet
        self.writer = writer
        self.registry = writer.registry
        self.failover = failover
        self.drains = drains
        self.settings = settings

    def fail_over(self) -> None:
        """Fail over workers that went offline, and drain what lands in their queues later."""
        fleet = self.fleet
        with fleet.lock:
            gone = dict(fleet.gone)
            offline = [wid for wid, r in fleet.records.items() if r.status == "offline"]
            finishing = {wid: dict(runs) for wid, runs in fleet.finishing.items()}
            restarted, fleet.restarted = fleet.restarted, {}
        for worker_id, incarnation in restarted.items():
            try:
                self.failover.restarted(worker_id, incarnation)
            except Exception:
                with fleet.lock:  # MongoDB down, say: check again at the next tick
                    fleet.restarted.setdefault(worker_id, incarnation)
                raise
            with fleet.lock:
                fleet.finishing.pop(worker_id, None)  # its previous process is gone: restarted() decided
        for worker_id, (goodbye, reason) in gone.items():
            record = fleet.get(worker_id)
            back_as = record.incarnation if record is not None and record.status == "online" else None
            left = self.failover.worker_gone(worker_id, goodbye=goodbye, reason=reason, spare=back_as)
            if back_as is None:
                self.failover.drain(worker_id)
            with fleet.lock:
                if left:
                    fleet.finishing.setdefault(worker_id, {}).update(left)
                if fleet.gone.get(worker_id) == (goodbye, reason):
                    del fleet.gone[worker_id]
        now = clock.epoch()
        for worker_id, runs in finishing.items():
            left = self.failover.overdue(worker_id, runs, now=now, reason="shut down without finishing the run")
            with fleet.lock:
                if worker_id in fleet.finishing:
                    fleet.finishing[worker_id] = {
                        r: d for r, d in fleet.finishing[worker_id].items() if r in left or r not in runs
                    }
                    if not fleet.finishing[worker_id]:
                        del fleet.finishing[worker_id]
        for worker_id in offline:
            if worker_id not in gone and self.registry.queued(names.worker_queue(worker_id)):
                self.failover.drain(worker_id)
        self.forget_long_gone()

    def keep_drains(self) -> bool:
        """Drained workers (``hydra.control.drain``): the router's copy equal to MongoDB, and
        their queues taken back through the router; whether the drained set changed."""
        try:
            return self.drains.keep(self.fleet.online_queues(), self.failover.drain)
        except Unavailable as exc:
            log.warning("drains not kept this tick: %s", exc)
            return False

    def forget_long_gone(self) -> list[str]:
        """Drop workers offline for HYDRA_FORGET_AFTER seconds from the registry, the workers
        view and the metrics (a fleet that is re-created - containers - would pile them up);
        returns the workers forgotten."""
        horizon = clock.epoch() - self.settings.forget_after
        fleet = self.fleet
        with fleet.lock:
            old = [
                wid
                for wid, r in fleet.records.items()
                if r.status == "offline"
                and r.seen_at < horizon
                and wid not in fleet.gone
                and wid not in fleet.finishing
            ]
        forgotten = []
        for worker_id in old:
            if self.registry.queued(names.worker_queue(worker_id)):
                continue  # drained at the next tick first
            self.writer.remove(worker_id)
            with fleet.lock:
                fleet.records.pop(worker_id, None)
            forgotten.append(worker_id)
            log.info("forgot a long-gone worker", extra={"event": "worker.forgotten", "worker": worker_id})
        return forgotten
