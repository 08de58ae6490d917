"""The online fleet as the router sees it, sorted into load groups (pure logic, no I/O).

Eligibility (``hydra.model.affinity.mismatch``) depends on a worker's OS, tags, allowed users,
namespaces and shells only, never on its name. Workers alike in all of those and in their
max concurrency form one **load group**; the registry keeps each group's workers in a Redis
sorted set by load (``hydra.broker.registry``), so that the least-loaded worker of a group is
its first member: the router reads one member per eligible group, not every worker's load.

Within a group every worker has the same max concurrency, so ordering by (runs in flight,
worker id) - the sorted set's own order - is exactly :func:`least_loaded`'s order
(load ratio, runs in flight, larger capacity, id). The least loaded of the groups' winners is
therefore the least loaded of all candidates: the same choice as before, at a cost that
grows with the number of groups, not of workers.

A :class:`Roster` is built once per version of the registry (the controller changes the
version whenever a worker's profile or liveness changes) and remembers, per set of
requirements, which groups are eligible.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from hydra.model.affinity import Requirements, WorkerProfile, mismatch

#: Distinct requirements a roster remembers the eligible groups of (then it starts over).
MEMO_SIZE = 4096


def group_key(profile: WorkerProfile) -> str:
    """The load group of a worker: a digest of everything in its profile but its name."""
    data = profile.to_dict()
    del data["id"], data["queue"]
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode(), usedforsecurity=False).hexdigest()[:20]


@dataclass(frozen=True)
class Group:
    """Online workers alike in everything eligibility and load ratio look at."""

    key: str
    workers: tuple[WorkerProfile, ...]
    by_id: dict[str, WorkerProfile] = field(hash=False, compare=False)

    @property
    def sample(self) -> WorkerProfile:
        """Any member: they are all eligible for the same jobs."""
        return self.workers[0]


@dataclass(frozen=True)
class Eligible:
    """The groups eligible for some requirements, and their workers (the candidates)."""

    groups: tuple[Group, ...]
    candidates: tuple[WorkerProfile, ...]


class Roster:
    """The online workers of one registry version, grouped; eligibility remembered. Drained
    workers (``drained``) are in no group: the router places nothing on them, and says so
    when nothing else fits."""

    def __init__(self, workers: list[WorkerProfile], *, drained: list[WorkerProfile] | None = None):
        self.workers = workers
        self.drained = list(drained or ())
        grouped: dict[str, list[WorkerProfile]] = {}
        for worker in workers:
            grouped.setdefault(group_key(worker), []).append(worker)
        self.groups = [
            Group(key, tuple(sorted(members, key=lambda w: w.id)), {w.id: w for w in members})
            for key, members in sorted(grouped.items())
        ]
        self._eligible: dict[Requirements, Eligible] = {}

    def eligible(self, req: Requirements) -> Eligible:
        """The groups (and workers) that may run a job with ``req``."""
        if req.worker is not None:
            return self._bound(req)
        known = self._eligible.get(req)
        if known is None:
            groups = tuple(g for g in self.groups if mismatch(req, g.sample) is None)
            known = Eligible(groups, tuple(w for g in groups for w in g.workers))
            if len(self._eligible) >= MEMO_SIZE:
                self._eligible.clear()
            self._eligible[req] = known
        return known

    def _bound(self, req: Requirements) -> Eligible:
        """A fan-out run's worker alone (as a group of one: its load is read like any group's),
        when it is in the roster and fits; eligibility by group would look at another member."""
        for group in self.groups:
            worker = group.by_id.get(req.worker or "")
            if worker is not None and mismatch(req, worker) is None:
                return Eligible((Group(group.key, (worker,), {worker.id: worker}),), (worker,))
        return Eligible((), ())
