"""What a job and a run are connected to, as a caller may see it: a job's upstream and
downstream jobs (its dependencies, ``GET /jobs/{id}/dependencies``), and a run's place in a
flow - the run(s) that started it, what its end started or left not run, and the attempt that
followed it (``GET /runs/{id}/flow``). REST, gRPC and the console read these.

A job's downstream jobs are its own fields; its upstream jobs come from the reverse view
(``hydra.store.edges``), each checked against the upstream job as stored (a stale entry is
never shown). Related jobs in namespaces the caller may not read are left out of the
upstream list, and shown by id only in the downstream list (the job names them anyway).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from hydra.control.access import Reader
from hydra.model.access import Principal
from hydra.model.dependencies import FIELDS
from hydra.model.records import Job
from hydra.store.edges import EdgeStore
from hydra.store.flows import FlowStore
from hydra.store.runs import RunStore


@dataclass
class Related:
    """A job on the other end of a dependency."""

    id: str
    via: list[str]
    #: active, paused, deleted, missing (no such job), or hidden (the caller may not read it).
    state: str
    name: str | None = None
    namespace: str | None = None
    status: str | None = None


@dataclass
class Dependencies:
    job_id: str
    upstream: list[Related] = field(default_factory=list)
    downstream: list[Related] = field(default_factory=list)


@dataclass
class Flow:
    """A run's place in a flow (see the module docstring)."""

    run_id: str
    started_by: dict | None = None
    started: list[dict] = field(default_factory=list)
    next: str | None = None
    first: str | None = None


def dependencies(actor: Principal, job_id: str, *, runs: RunStore | None = None) -> Dependencies:
    """The jobs ``job_id`` starts, and the jobs that start it (NotFound/Forbidden as for the job)."""
    reader = Reader(actor, runs=runs)
    job = reader.job(job_id)
    down: dict[str, list[str]] = {}
    for name in FIELDS:
        for target in getattr(job, name, None) or ():
            down.setdefault(target, []).append(name)
    named = EdgeStore().upstream_of(job_id) if not job.deleted_at else {}
    found = reader.jobs.find_many(list(dict.fromkeys([*down, *named])))
    upstream = []
    for ident in named:
        other = found.get(ident)
        via = [name for name in FIELDS if other is not None and job_id in (getattr(other, name, None) or ())]
        if other is None or not via or other.deleted_at or not actor.sees(other.namespace):
            continue  # a stale entry, a deleted job (it starts nothing), or one the caller may not read
        upstream.append(_related(other, via, actor))
    downstream = [
        _related(found[ident], via, actor) if ident in found else Related(ident, via, "missing")
        for ident, via in down.items()
    ]
    return Dependencies(job_id, upstream, downstream)


def _related(job: Job, via: list[str], actor: Principal) -> Related:
    if not actor.sees(job.namespace):
        return Related(job.id, via, "hidden")
    state = "deleted" if job.deleted_at else "paused" if job.paused else "active"
    return Related(job.id, via, state, job.name, job.namespace, job.status)


def flow(actor: Principal, run_id: str, *, runs: RunStore | None = None) -> Flow:
    """Run ``run_id``'s place in a flow (NotFound/Forbidden as for the run). The job names of
    related runs in namespaces the caller may not read are left out."""
    reader = Reader(actor, runs=runs)
    reader.run(run_id)
    flows = FlowStore()
    own = flows.find(run_id)
    if own is None:
        return Flow(run_id)
    first = flows.find(own.root) if own.root else own
    started_by = own.upstream or (first.upstream if first is not None else None)
    entries = [dict(entry) for entry in own.started]
    job_ids = [e.get("job_id") for e in entries] + [(started_by or {}).get("job_id")]
    jobs = reader.jobs.find_many([ident for ident in job_ids if ident])
    for entry in [*entries, *([started_by] if started_by else [])]:
        job = jobs.get(entry.get("job_id") or "")
        if job is not None and not actor.sees(job.namespace):
            entry["job_name"] = None
    return Flow(run_id, dict(started_by) if started_by else None, entries, own.next or None, own.root)


def as_dict(value: Dependencies | Flow) -> dict:
    return asdict(value)
