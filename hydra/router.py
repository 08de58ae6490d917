"""The affinity router: Celery routing (``task_routes``) that picks a worker per job.

For every ``hydra.run_command`` message, whoever publishes it (the API, the controller, a
Python user's ``apply_async``), Celery asks :data:`route_task` for a route. It reads the
online workers from the registry, keeps the eligible ones (``hydra.affinity``), picks the
lowest load, counts the run against that worker, and routes to the worker's own queue.
When no online worker is eligible the message goes to ``hydra.pending``, which only the
controller reads; it is placed as soon as an eligible worker is online.

A caller that names a queue explicitly (``apply_async(queue=...)``) bypasses the placement;
the worker then checks eligibility itself before running anything.

Every route also carries the message's broker priority level, mapped from the job's
priority 0-100 (``hydra.priority``), so each publisher - API, ``apply_async``, the
controller re-placing pending work - publishes at the job's priority.
"""
from __future__ import annotations

from hydra import names
from hydra.affinity import Placement, Requirements, place
from hydra.priority import broker_level
from hydra.registry import Registry


class AffinityRouter:
    """A Celery router callable; one instance per process (it caches the registry briefly)."""

    def __init__(self, registry: Registry | None = None):
        self.registry = registry or Registry()

    def __call__(self, name, args, kwargs, options, task=None, **kw):
        if name != names.TASK_RUN_COMMAND:
            return None
        priority = broker_level((kwargs or {}).get("priority"))
        if options.get("queue") or options.get("routing_key"):
            return {"priority": priority}
        placement = self.place(kwargs or {})
        if placement.worker is None:
            return {"queue": names.PENDING_QUEUE, "priority": priority}
        self.registry.add_load(placement.worker.id, 1)
        return {"queue": placement.worker.queue, "priority": priority}

    def place(self, kwargs: dict) -> Placement:
        """Decide without side effects (the controller uses this to test pending jobs)."""
        req = Requirements.from_message(kwargs)
        online = self.registry.online()
        candidates_ids = [w.id for w in online]
        return place(req, online, self.registry.inflight(candidates_ids))


#: What ``celeryconfig.task_routes`` names.
route_task = AffinityRouter()
