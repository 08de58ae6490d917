"""The rules of a job's dependants (``on_success`` / ``on_failure`` / ``on_completion``,
``hydra.model.dependencies``), checked whenever a job is stored - by REST, gRPC, the console
and Python submissions alike - and the reverse view they keep (``hydra.store.edges``).

Refused with InvalidJob naming the field (a 422): a named job that does not exist, was
deleted, or is in a namespace the caller may not submit to (the same answer for each: a
caller learns nothing of namespaces it cannot see); a job with a required parameter without
a default (a job another starts runs with the defaults); the job itself; a job whose own
dependants lead back to this one (a cycle). The walk for cycles reads jobs by ``_id`` only,
at most :data:`MAX_WALK` of them.
"""

from __future__ import annotations

from hydra.errors import InvalidJob
from hydra.model.access import Principal
from hydra.model.dependencies import FIELDS
from hydra.model.params import needs_values
from hydra.store.edges import EdgeStore
from hydra.store.jobs import JobStore

#: Jobs a cycle check reads at most (a larger graph is refused: split it).
MAX_WALK = 1000


def check(spec: dict, *, job_id: str | None, jobs: JobStore, principal: Principal | None) -> None:
    """Raise InvalidJob naming each dependency field that breaks a rule (see the module
    docstring). ``job_id``: the job being stored (None: a new job, whose id nobody can name
    yet); ``principal``: who stores it (None: the holder of the signing key, who may name any)."""
    errors: dict[str, list[str]] = {}
    for name in FIELDS:
        for target in spec.get(name) or ():
            reason = _refusal(target, job_id, jobs, principal)
            if reason:
                errors.setdefault(name, []).append(f"job {target!r}: {reason}")
    if errors:
        raise InvalidJob(errors)


def _refusal(target: str, job_id: str | None, jobs: JobStore, principal: Principal | None) -> str | None:
    if target == job_id:
        return "a job cannot start itself"
    job = jobs.find(target)
    if job is None or job.deleted_at or (principal is not None and not principal.can("submit", job.namespace)):
        return "no such job that you may start"
    lacking = needs_values(job.spec())
    if lacking:  # a job another starts runs with its parameters' defaults
        return f"it runs only when triggered: {', '.join(lacking)} required without a default"
    if job_id is None:
        return None
    try:
        path = _path_back(target, job_id, jobs)
    except OverflowError as exc:
        return str(exc)
    if path:
        return f"a cycle: it leads back to this job ({' > '.join([*path, job_id])})"
    return None


def _path_back(start: str, goal: str, jobs: JobStore) -> list[str] | None:
    """The jobs from ``start`` to ``goal`` following dependants (breadth first), or None."""
    came_from: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        found = jobs.find_many(frontier)
        following: list[str] = []
        for ident in frontier:
            job = found.get(ident)
            for name in FIELDS:
                for nxt in (getattr(job, name, None) or ()) if job is not None else ():
                    if nxt == goal:
                        path: list[str] = []
                        at: str | None = ident
                        while at is not None:
                            path.append(at)
                            at = came_from[at]
                        return list(reversed(path))
                    if nxt not in came_from:
                        if len(came_from) >= MAX_WALK:
                            raise OverflowError(
                                f"more than {MAX_WALK} jobs follow from it: too many to check for a cycle"
                            )
                        came_from[nxt] = ident
                        following.append(nxt)
        frontier = following
    return None


def keep(job_id: str, spec: dict, before: dict | None = None) -> None:
    """Write the reverse view of job ``job_id``'s dependants as ``spec`` names them ({} once
    deleted; ``before``: what it named until now)."""
    if any(spec.get(name) for name in FIELDS) or any((before or {}).get(name) for name in FIELDS):
        EdgeStore().keep(job_id, spec, before)
