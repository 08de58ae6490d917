"""Affinity: which workers may run a job, and which of them should (pure logic, no I/O).

A worker's profile comes from how it was started (``celery -A hydra worker -Q os.linux,tag.gpu``):
its OS and tags from its queue names, its max concurrency from its pool size, its allowed
users from ``--allowed-users`` / ``HYDRA_ALLOWED_USERS`` and its namespaces from
``--namespaces`` / ``HYDRA_NAMESPACES`` (unset means any).

A worker is *eligible* for a job when
  * the job names no OS, or the worker's OS is one of them;
  * every tag the job requires is one of the worker's tags;
  * the worker accepts the job's user, and serves the job's namespace;
  * the worker has the job's shell (when the job names one);
  * the worker can enforce resource limits, when the job sets ``resources``
    (``hydra.model.resources.limits_mismatch``).
Among eligible online workers the router picks the lowest load (runs routed to it and
not finished, divided by its max concurrency); a worker with free capacity always wins
over a full one, and a job is never refused for lack of capacity: it queues on the
least-loaded eligible worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra import names
from hydra.model.namespaces import DEFAULT_NAMESPACE
from hydra.model.platform import normalize_os
from hydra.model.resources import limits_mismatch, needs_limits


@dataclass(frozen=True)
class WorkerProfile:
    """What a worker can run. ``allowed_users`` / ``namespaces`` None means any."""

    id: str
    os: str
    tags: frozenset[str] = frozenset()
    allowed_users: frozenset[str] | None = None
    namespaces: frozenset[str] | None = None
    max_concurrency: int = 1
    shells: frozenset[str] = frozenset()
    queue: str = ""
    #: It can enforce a job's resource limits (memory and cpu cgroup controllers).
    limits: bool = False

    def __post_init__(self) -> None:
        if not self.queue:
            object.__setattr__(self, "queue", names.worker_queue(self.id))

    def accepts_user(self, user: str) -> bool:
        return self.allowed_users is None or user in self.allowed_users

    def serves(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "os": self.os,
            "tags": sorted(self.tags),
            "allowed_users": None if self.allowed_users is None else sorted(self.allowed_users),
            "namespaces": None if self.namespaces is None else sorted(self.namespaces),
            "max_concurrency": self.max_concurrency,
            "shells": sorted(self.shells),
            "queue": self.queue,
            "limits": self.limits,
        }

    @classmethod
    def from_dict(cls, data: dict) -> WorkerProfile:
        allowed = data.get("allowed_users")
        namespaces = data.get("namespaces")
        return cls(
            id=data["id"],
            os=data["os"],
            tags=frozenset(data.get("tags") or ()),
            allowed_users=None if allowed is None else frozenset(allowed),
            namespaces=None if namespaces is None else frozenset(namespaces),
            max_concurrency=max(1, int(data.get("max_concurrency") or 1)),
            shells=frozenset(data.get("shells") or ()),
            queue=data.get("queue") or "",
            limits=bool(data.get("limits")),
        )


def profile_from_queues(
    worker_id: str,
    queues: list[str],
    *,
    concurrency: int,
    platform_os: str,
    allowed_users: frozenset[str] | None = None,
    namespaces: frozenset[str] | None = None,
    shells: frozenset[str] = frozenset(),
    limits: bool = False,
) -> WorkerProfile:
    """Build a profile from a worker's ``-Q`` queue names.

    Raises ValueError when the queues declare an unknown OS, several OSes, or an OS other
    than the one the worker really runs on (a job would then fail in the wrong shell).
    """
    declared = {q[len(names.OS_QUEUE_PREFIX) :] for q in queues if q.startswith(names.OS_QUEUE_PREFIX)}
    tags = frozenset(
        q[len(names.TAG_QUEUE_PREFIX) :]
        for q in queues
        if q.startswith(names.TAG_QUEUE_PREFIX) and len(q) > len(names.TAG_QUEUE_PREFIX)
    )
    normalized = {normalize_os(d) for d in declared}
    if None in normalized:
        raise ValueError(f"unknown OS queue in {sorted(declared)}; use os.linux, os.macos or os.windows")
    os_names = {name for name in normalized if name is not None}
    if len(os_names) > 1:
        raise ValueError(f"a worker runs on one OS, its queues declare {sorted(os_names)}")
    if os_names and os_names != {platform_os}:
        raise ValueError(f"queues declare os.{os_names.pop()} but this machine runs {platform_os}")
    return WorkerProfile(
        id=worker_id,
        os=platform_os,
        tags=tags,
        allowed_users=allowed_users,
        namespaces=namespaces,
        max_concurrency=max(1, concurrency),
        shells=shells,
        limits=limits,
    )


@dataclass(frozen=True)
class Requirements:
    """What a job needs from a worker, read from its task message kwargs."""

    user: str
    os: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    shell: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    #: It sets resource limits: only a worker that can enforce them may run it.
    limits: bool = False
    #: A fan-out's run runs on this worker only (hydra.model.fanout).
    worker: str | None = None

    @classmethod
    def from_message(cls, kwargs: dict) -> Requirements:
        """Tolerant reading: a malformed message yields requirements no worker meets,
        and the pipeline's validation rejects it with the precise error."""
        affinity = kwargs.get("affinity") or {}
        if not isinstance(affinity, dict):
            affinity = {"os": ["<invalid>"]}
        os_names = {normalize_os(o) or f"<{o}>" for o in _strings(affinity.get("os"))}
        shell = kwargs.get("shell") if not kwargs.get("args") else None
        return cls(
            user=str(kwargs.get("user") or ""),
            os=frozenset(os_names),
            tags=frozenset(_strings(affinity.get("tags"))),
            shell=shell if isinstance(shell, str) else None,
            namespace=str(kwargs.get("namespace") or DEFAULT_NAMESPACE),
            limits=needs_limits(kwargs) and kwargs.get("executor") in (None, "shell"),
            worker=str(kwargs["bound_worker"]) if kwargs.get("bound_worker") else None,
        )


def _strings(value: object) -> list[str]:
    if not isinstance(value, (list, tuple)):
        return []
    return [str(v) for v in value]


def mismatch(req: Requirements, worker: WorkerProfile) -> str | None:
    """Why ``worker`` may not run a job with ``req``, or None when it may."""
    if req.worker and worker.id != req.worker:
        return f"is not {req.worker}, the worker this fan-out run is bound to"
    if req.os and worker.os not in req.os:
        return f"runs {worker.os}, job needs {'/'.join(sorted(req.os))}"
    missing = req.tags - worker.tags
    if missing:
        return f"lacks tag{'s' if len(missing) > 1 else ''} {', '.join(sorted(missing))}"
    if not worker.accepts_user(req.user):
        return f"does not accept user {req.user!r}"
    if not worker.serves(req.namespace):
        return f"does not serve namespace {req.namespace!r}"
    if req.shell and worker.shells and req.shell not in worker.shells:
        return f"has no {req.shell}"
    return limits_mismatch(req.limits, worker.limits)


def eligible(req: Requirements, workers: list[WorkerProfile]) -> list[WorkerProfile]:
    return [w for w in workers if mismatch(req, w) is None]


def explain(
    req: Requirements, workers: list[WorkerProfile], limit: int = 5, *, drained: list[WorkerProfile] | tuple = ()
) -> str:
    """One line saying why no worker was chosen (the pending reason). ``drained``: online
    workers taken out of placement; when one of them would fit, the reason starts with
    ``draining``."""
    fits = sorted(w.id for w in drained if mismatch(req, w) is None)
    if fits:
        verb = "is" if len(fits) == 1 else "are"
        more = f" and {len(fits) - limit} more" if len(fits) > limit else ""
        return f"draining: {', '.join(fits[:limit])}{more} {verb} draining, and no other online worker is eligible"
    workers = [*workers, *drained]
    if req.worker and req.worker not in {w.id for w in workers}:
        return f"{req.worker} is offline: this fan-out run waits for the worker it is bound to"
    if not workers:
        return "no worker is online"
    reasons = [f"{w.id} {mismatch(req, w)}" for w in sorted(workers, key=lambda w: w.id) if mismatch(req, w)]
    more = f"; and {len(reasons) - limit} more" if len(reasons) > limit else ""
    return "no online worker is eligible: " + "; ".join(reasons[:limit]) + more


def load_ratio(worker: WorkerProfile, inflight: int) -> float:
    return max(inflight, 0) / worker.max_concurrency


def least_loaded(candidates: list[WorkerProfile], inflight: dict[str, int]) -> WorkerProfile | None:
    """The candidate with the lowest load ratio; ties go to fewer runs in flight, then
    larger capacity, then worker id (so the choice is deterministic)."""
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda w: (load_ratio(w, inflight.get(w.id, 0)), inflight.get(w.id, 0), -w.max_concurrency, w.id),
    )


@dataclass
class Placement:
    """The router's decision: a worker, or the reason there is none."""

    worker: WorkerProfile | None
    reason: str | None = None
    candidates: list[WorkerProfile] = field(default_factory=list)
    #: No worker because the job's namespace is at a limit (not because none is eligible).
    over_quota: bool = False


@dataclass(frozen=True)
class Verdict:
    """One worker's answer to "could it take this job now?" (the console's placement page)."""

    worker_id: str
    online: bool
    #: Why it may not run the job at all (None: its profile fits).
    mismatch: str | None
    inflight: int
    max_concurrency: int
    #: It would take the job now: online, eligible, and the least loaded of those.
    chosen: bool = False
    #: Drained by an operator: it takes no new runs (``hydra worker drain``).
    draining: bool = False

    @property
    def eligible(self) -> bool:
        return self.online and self.mismatch is None and not self.draining

    @property
    def text(self) -> str:
        """One line, e.g. ``gpu1 lacks tag tpu`` or ``cpu1 is offline (eligible otherwise)``."""
        load = f"load {self.inflight}/{self.max_concurrency}"
        if self.mismatch is not None:
            return f"{self.worker_id} {self.mismatch}" + ("" if self.online else " (and is offline)")
        if not self.online:
            return f"{self.worker_id} is offline (its profile fits)"
        if self.draining:
            return f"{self.worker_id} is draining: it takes no new runs (its profile fits)"
        if self.chosen:
            return f"{self.worker_id} is eligible and least loaded ({load}): the router picks it"
        return f"{self.worker_id} is eligible ({load})"


def verdicts(
    req: Requirements,
    workers: list[tuple[WorkerProfile, bool]],
    inflight: dict[str, int],
    drained: set[str] | frozenset[str] = frozenset(),
) -> list[Verdict]:
    """Worker by worker (``(profile, online)`` pairs), why each could or could not take a job
    with ``req`` (``drained``: the ids of drained workers); the one the router would choose is
    marked. Sorted: eligible first, then by id."""
    online_eligible = [w for w, up in workers if up and w.id not in drained and mismatch(req, w) is None]
    choice = least_loaded(online_eligible, inflight)
    found = [
        Verdict(
            worker_id=w.id,
            online=up,
            mismatch=mismatch(req, w),
            inflight=max(inflight.get(w.id, 0), 0),
            max_concurrency=w.max_concurrency,
            chosen=choice is not None and w.id == choice.id,
            draining=w.id in drained,
        )
        for w, up in workers
    ]
    return sorted(found, key=lambda v: (not v.chosen, not v.eligible, v.worker_id))


def place(req: Requirements, online: list[WorkerProfile], inflight: dict[str, int]) -> Placement:
    candidates = eligible(req, online)
    if not candidates:
        return Placement(worker=None, reason=explain(req, online))
    return Placement(worker=least_loaded(candidates, inflight), candidates=candidates)
