"""The affinity router: which worker's queue an attempt goes to.

It reads the online workers from the registry (``hydra.broker.registry``: decoded once per
registry version, which is looked at every ``HYDRA_ROUTER_CACHE`` seconds), keeps the eligible
load groups (``hydra.model.roster``, remembered per set of requirements) and picks the lowest
load from the first member of each eligible group's sorted set - one Redis round trip,
whatever the size of the fleet. :meth:`AffinityRouter.choose` then takes a place for the attempt in its
namespace's quota and its job's ``max_concurrent`` (``hydra.broker.quotas``; the limits are the namespace's, read from
``NamespaceStore`` and kept for :data:`LIMITS_CACHE` seconds) and counts it against the chosen
worker's load, in one Lua step; :meth:`AffinityRouter.place` only decides. No eligible online worker, or a
namespace at its limit: the attempt waits in ``hydra.pending``, which only the controller
reads, with the reason.
"""

from __future__ import annotations

import time

from hydra import names
from hydra.broker.quotas import NamespaceSlots
from hydra.broker.registry import Registry
from hydra.model.affinity import Placement, Requirements, Verdict, explain, verdicts
from hydra.model.namespaces import DEFAULT_NAMESPACE
from hydra.model.records import Dispatched
from hydra.model.status import RunStatus
from hydra.settings import get_settings
from hydra.store.namespaces import NamespaceLimits, NamespaceStore

#: Seconds a namespace's limits are reused before they are read again.
LIMITS_CACHE = 5.0


class AffinityRouter:
    """One instance per process is enough (it caches the registry and the limits briefly)."""

    def __init__(self, registry: Registry | None = None, *, namespaces: NamespaceStore | None = None):
        self.registry = registry or Registry()
        self.slots = NamespaceSlots()
        self.namespaces = namespaces or NamespaceStore()
        self._limits: dict[str, tuple[float, NamespaceLimits]] = {}

    def place(self, message: dict) -> Placement:
        """Decide without side effects (quotas aside)."""
        req = Requirements.from_message(message)
        roster = self.registry.roster()
        eligible = roster.eligible(req)
        if not eligible.groups:
            return Placement(worker=None, reason=explain(req, roster.workers, drained=roster.drained))
        return Placement(worker=self.registry.least_loaded(eligible.groups), candidates=list(eligible.candidates))

    def explain(self, message: dict) -> list[Verdict]:
        """Worker by worker, online or not, why each could or could not take ``message``'s job
        now (read fresh from the registry: what the controller would see on its next tick)."""
        req = Requirements.from_message(message)
        records = self.registry.records()
        inflight = self.registry.inflight(sorted(records))
        online = [(r.profile, r.status == "online") for r in records.values()]
        return verdicts(req, online, inflight, self.registry.drained())

    def choose(self, message: dict, run_id: str) -> Placement:
        """Decide, take a place in the namespace's quota and count the attempt against the
        chosen worker's load."""
        placement = self.place(message)
        if placement.worker is None:
            return placement
        namespace = message.get("namespace") or DEFAULT_NAMESPACE
        limits = self.limits(namespace)
        refused = self.slots.take(
            namespace,
            run_id,
            max_running=limits.max_running,
            max_queued=limits.max_queued,
            load_on=placement.worker.id,  # counted against its load in the same round trip
            **job_concurrency(message),
        )
        if refused is not None:
            return Placement(worker=None, reason=refused, candidates=placement.candidates, over_quota=True)
        return placement

    def limits(self, namespace: str) -> NamespaceLimits:
        """The namespace's limits, its own or the installation's defaults."""
        now = time.monotonic()
        cached = self._limits.get(namespace)
        if cached is None or now - cached[0] > LIMITS_CACHE:
            own = self.namespaces.limits(namespace)
            settings = get_settings()
            if own.max_running is None:
                own.max_running = settings.default_max_running
            if own.max_queued is None:
                own.max_queued = settings.default_max_queued
            cached = (now, own)
            self._limits[namespace] = cached
        return cached[1]


def job_concurrency(message: dict) -> dict:
    """The job's own limit on its runs in flight (``max_concurrent``, in the signed message:
    ``overlap: forbid`` made it 1), as :meth:`NamespaceSlots.take` takes it."""
    limit = message.get("max_concurrent")
    job_id = message.get("job_id")
    if not isinstance(limit, int) or not isinstance(job_id, str):
        return {}
    return {"job_id": job_id, "max_concurrent": limit}


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
