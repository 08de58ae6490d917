"""Draining a worker: taking it out of placement before maintenance, and putting it back.

* **Who:** an operator of every namespace the worker serves (of ``*`` for a worker that
  serves all); whoever may not even see the worker gets 404, like for a job.
* **Where it is kept:** MongoDB (``hydra.store.drains``) is the record of truth, so a drain
  survives a Redis flush and a controller failover. The verbs then write the router's copy
  in Redis (``Registry.set_drained``, which changes the registry's version: every router
  sees it at its next look); the leading controller makes that copy equal to MongoDB every
  :data:`SYNC_EVERY` seconds (:class:`DrainKeeper`).
* **What it does:** the router places no new run on a drained worker (a run no other
  online worker fits waits in ``hydra.pending`` with a reason that starts with
  ``draining``); what runs there goes on to its end; the leading controller takes the
  messages still waiting in its queue back through the router (``Failover.drain``), so they
  go to another worker, or wait. Runs the worker had already taken from its queue (Celery's
  prefetch: at most one per pool process) start there.
* **Undrain** deletes the record; waiting runs are placed by the controller's next pass over
  ``hydra.pending``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hydra import clock
from hydra.broker.registry import Registry
from hydra.control.access import Reader
from hydra.control.verbs import audit
from hydra.errors import Forbidden, InvalidRequest, NotFound, Unavailable
from hydra.model.access import EVERY_NAMESPACE, Principal
from hydra.store.drains import Drain, DrainStore
from hydra.store.workers import WorkerView

log = logging.getLogger(__name__)

#: Seconds between the leading controller's copies of the drains from MongoDB to Redis.
SYNC_EVERY = 2.0
#: The longest reason a drain may give.
MAX_REASON = 500


def _worker(actor: Principal, worker_id: str) -> WorkerView:
    """The worker ``actor`` may drain: NotFound when it may not see it, Forbidden when it may
    see it but is not an operator of every namespace it serves."""
    found = next((w for w in Reader(actor).all_workers() if w.id == worker_id), None)
    if found is None:
        raise NotFound("worker", worker_id)
    served = found.namespaces or [EVERY_NAMESPACE]
    refused = [ns for ns in served if not actor.can("drain", ns)]
    if refused:
        raise Forbidden(
            f"{actor.user!r} may not drain worker {worker_id!r}: it serves {', '.join(refused)}"
            " (needs operator in every namespace it serves)"
        )
    return found


def drain(actor: Principal, worker_id: str, *, reason: str | None = None) -> Drain:
    """Take ``worker_id`` out of placement (again: the latest reason is kept); audited."""
    if reason is not None and len(reason) > MAX_REASON:
        raise InvalidRequest({"reason": [f"at most {MAX_REASON} characters"]})
    worker = _worker(actor, worker_id)
    drained = DrainStore().put(worker.id, by=actor.user, reason=reason)
    _tell_router(worker.id, True)
    audit(actor, "worker.drain", namespace=None, target=worker.id, reason=reason)
    log.warning(
        "worker drained", extra={"event": "worker.drain", "worker": worker.id, "by": actor.user, "reason": reason}
    )
    return drained


def undrain(actor: Principal, worker_id: str) -> None:
    """Put ``worker_id`` back into placement (idempotent; audited when it was drained)."""
    worker = _worker(actor, worker_id)
    was = DrainStore().delete(worker.id)
    _tell_router(worker.id, False)
    if was:
        audit(actor, "worker.undrain", namespace=None, target=worker.id)
        log.warning("worker undrained", extra={"event": "worker.undrain", "worker": worker.id, "by": actor.user})


def _tell_router(worker_id: str, drained: bool) -> None:
    """Write the router's copy now (Redis down: the leading controller copies it when it is back)."""
    try:
        Registry().set_drained(worker_id, drained)
    except Unavailable as exc:
        log.warning("drain of %s not yet seen by the router: %s", worker_id, exc)


class DrainKeeper:
    """The leading controller's part: the router's copy equal to MongoDB, and the queues of
    drained online workers taken back through the router (``Failover.drain``)."""

    def __init__(self, registry: Registry, *, store: DrainStore | None = None):
        self.registry = registry
        self.store = store or DrainStore()
        self._last_sync = float("-inf")
        self.drained: set[str] = set()

    def keep(self, online: dict[str, str], move_queue: Callable[[str], object]) -> bool:
        """Copy the drains to Redis (every SYNC_EVERY seconds), then take back what waits in
        the queues of drained ``online`` workers (id -> queue) with ``move_queue(worker_id)``;
        whether the drained set changed (what waits in ``hydra.pending`` may go now)."""
        now = clock.epoch()
        changed = False
        if now - self._last_sync >= SYNC_EVERY:
            try:
                stored = set(self.store.all())
            except Unavailable as exc:  # MongoDB down: keep the copy in Redis as it is
                log.warning("drains not read: %s", exc)
            else:
                self._last_sync = now
                changed = self.registry.sync_drained(stored)
                if changed:
                    self.registry.forget_cache()
        drained = self.registry.drained()  # the verbs write it at once: no wait for the next copy
        changed |= drained != self.drained
        self.drained = drained
        for worker_id in sorted(drained & set(online)):
            if self.registry.queued(online[worker_id]):
                move_queue(worker_id)
        return changed
