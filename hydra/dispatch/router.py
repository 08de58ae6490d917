"""The affinity router: which worker's queue an attempt goes to.

It reads the online workers from the registry (``hydra.broker.registry``, cached for
``HYDRA_ROUTER_CACHE`` seconds), keeps the eligible ones (``hydra.model.affinity``) and picks
the lowest load. :meth:`AffinityRouter.choose` also counts the attempt against the chosen
worker; :meth:`AffinityRouter.place` only decides (the controller asks it whether a pending
attempt could go somewhere now). No eligible online worker: the attempt waits in
``hydra.pending``, which only the controller reads, with the reason.
"""

from __future__ import annotations

from hydra import names
from hydra.broker.registry import Registry
from hydra.model.affinity import Placement, Requirements, place
from hydra.model.records import Dispatched
from hydra.model.status import RunStatus


class AffinityRouter:
    """One instance per process is enough (it caches the registry briefly)."""

    def __init__(self, registry: Registry | None = None):
        self.registry = registry or Registry()

    def place(self, message: dict) -> Placement:
        """Decide without side effects."""
        req = Requirements.from_message(message)
        online = self.registry.online()
        return place(req, online, self.registry.inflight([w.id for w in online]))

    def choose(self, message: dict) -> Placement:
        """Decide, and count the attempt against the chosen worker's load."""
        placement = self.place(message)
        if placement.worker is not None:
            self.registry.add_load(placement.worker.id, 1)
        return placement


def placement_of(run_id: str, placement: Placement) -> Dispatched:
    """Where an attempt goes when the router decided ``placement``."""
    if placement.worker is None:
        return Dispatched(run_id, RunStatus.PENDING, reason=placement.reason, queue=names.PENDING_QUEUE)
    return Dispatched(run_id, RunStatus.QUEUED, worker_id=placement.worker.id, queue=placement.worker.queue)


def queue_placement(run_id: str, queue: str) -> Dispatched:
    """Where an attempt goes when its publisher named the queue itself."""
    if queue == names.PENDING_QUEUE:
        return Dispatched(run_id, RunStatus.PENDING, queue=queue)
    if queue.startswith(names.WORKER_QUEUE_PREFIX):
        return Dispatched(run_id, RunStatus.QUEUED, worker_id=queue[len(names.WORKER_QUEUE_PREFIX) :], queue=queue)
    return Dispatched(run_id, RunStatus.QUEUED, queue=queue)
