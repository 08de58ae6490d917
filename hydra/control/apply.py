"""Applying job files (``POST /jobs/apply``; ``hydra job apply -f FILE``): idempotent by
namespace and name, like ``kubectl apply`` and ``nomad job run``.

A file's jobs (``hydra.model.jobfile``) are each identified by their ``namespace`` (default:
the caller's home namespace) and ``name``, which a file must give. Each is planned first,
all of them before anything changes:

* the job its name stands for is found: the name's claim (``hydra.store.job_names``), else,
  for a name no apply claimed yet, the one live job of that name in the namespace (found by
  walking the namespace's jobs, once: the apply then claims the name for it). Two or more
  such jobs are refused (409): rename or delete the others first;
* references to write-only values take the values that job stored (``jobfile.resolve``);
* the body is validated as ``POST /jobs/`` validates it (its dependencies too), and the
  caller must hold the right: to submit in the namespace for a new job, to update the job
  for an existing one;
* the result is ``created`` (no such job), ``unchanged`` (every settable field equal) or
  ``updated`` (naming the fields that differ).

Any refusal refuses the whole file (422 naming ``jobs.<index>.<field>``, or 403/409), and
nothing is changed. Then (unless ``dry_run``) each job is created - submitted as by
``POST /jobs/``, so a job without a schedule runs once now - or updated as by
``PUT /jobs/{job_id}``; an unchanged one is left alone (and not audited).

Concurrent applies of one new name create one job: the name is claimed with a unique insert
before the job is made, under the job id the claim names. An apply that loses the claim
waits for the winner's job (up to :data:`WAIT`) and is then planned again against it
(``unchanged`` or ``updated``); a claim older than :data:`STALE` whose job never appeared
was left by an apply that died, and the job is made under its id (the job's ``_id`` insert
decides between such applies too).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import ValidationError

from hydra import clock
from hydra.celery.app import current_pipeline
from hydra.control import verbs
from hydra.control.access import Reader, require_submit
from hydra.dispatch import dependants
from hydra.dispatch.pipeline import Pipeline
from hydra.errors import Conflict, Duplicate, HydraError, InvalidJob
from hydra.model.access import Principal
from hydra.model.jobfile import changed_fields, resolve
from hydra.model.namespaces import Namespace
from hydra.model.records import Job
from hydra.model.spec import load_job
from hydra.store.job_names import JobNameStore, NameClaim, claim_id
from hydra.store.jobs import JobStore, new_id

#: How long an apply that lost a new name's claim waits for the winner's job.
WAIT = 10.0
#: A claim this old whose job does not exist was left by an apply that died.
STALE = timedelta(seconds=30)
POLL = 0.05
#: How many jobs one file may hold.
MAX_JOBS = 500
#: Generations a name may go through (one per job deleted or renamed): a bound never reached.
MAX_GENERATIONS = 10_000


@dataclass
class Applied:
    """What applying one job of a file did (or, in a dry run, would do)."""

    name: str
    namespace: str
    #: created, updated or unchanged.
    action: str
    #: The job (None for a job a dry run would create).
    id: str | None = None
    #: The settable fields an update changes.
    changes: list[str] = field(default_factory=list)
    #: A created job's first run, when it has one.
    run_id: str | None = None


@dataclass
class _Plan:
    index: int
    spec: dict
    job: Job | None  # the existing job, None: create
    generation: int
    claim: NameClaim | None  # a claim left by an apply that died (its job id is to be used)
    changes: list[str]
    claimed: bool = True  # the existing job's name is claimed already


def apply(
    bodies: list[Any], *, actor: Principal, dry_run: bool = False, pipeline: Pipeline | None = None
) -> list[Applied]:
    """Apply a file's job bodies for ``actor`` (see the module docstring). Raises InvalidJob
    (``{"jobs": {index: errors}}``), Forbidden, NotFound or Conflict, changing nothing."""
    pipeline = current_pipeline(pipeline)
    if len(bodies) > MAX_JOBS:
        raise InvalidJob({"jobs": [f"at most {MAX_JOBS} jobs in one file"]})
    names, walks = JobNameStore(), _Walks(pipeline)
    plans: list[_Plan] = []
    errors: dict[str, Any] = {}
    seen: dict[tuple[str, str], int] = {}
    for index, body in enumerate(bodies):
        try:
            plan = _plan(index, body, actor, pipeline, names, walks)
        except InvalidJob as exc:
            errors[str(index)] = exc.errors
            continue
        key = (plan.spec["namespace"], plan.spec["name"])
        if key in seen:
            errors[str(index)] = {"name": [f"job {seen[key]} of the file has this namespace and name too"]}
        seen[key] = index
        plans.append(plan)
    if errors:
        raise InvalidJob({"jobs": errors})
    if dry_run:
        return [_result(plan) for plan in plans]
    return [_carry_out(plan, bodies[plan.index], actor, pipeline, names) for plan in plans]


def _result(plan: _Plan, action: str | None = None, run_id: str | None = None) -> Applied:
    job = plan.job
    action = action or ("created" if job is None else "updated" if plan.changes else "unchanged")
    return Applied(
        plan.spec["name"],
        plan.spec["namespace"],
        action,
        job.id if job else (plan.claim.job_id if plan.claim else None),
        plan.changes,
        run_id,
    )


def _plan(
    index: int, body: Any, actor: Principal, pipeline: Pipeline, names: JobNameStore, walks: _Walks | None = None
) -> _Plan:
    """What applying ``body`` does; raises InvalidJob, Forbidden, NotFound or Conflict."""
    if not isinstance(body, dict):
        raise InvalidJob({"_schema": ["a job in a file is a JSON object"]})
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidJob({"name": ["a job file names its jobs: applying finds a job by namespace and name"]})
    namespace = body.get("namespace") or actor.home
    try:
        Namespace()(namespace)  # before it names a claim
    except ValidationError as exc:
        raise InvalidJob({"namespace": exc.messages}) from None
    require_submit(actor, namespace)  # creating needs it, and so does updating (admin): before any lookup
    generation, job, claim, claimed = target(namespace, name, pipeline, names, walks)
    if job is not None:
        job = Reader(actor, runs=pipeline.runs).job(job.id, "update")
    filled, missing = resolve(body, job.spec() if job else None)
    if missing:
        raise InvalidJob(missing)
    spec = verbs.own(load_job({**filled, "namespace": namespace}), actor, before=job)
    dependants.check(spec, job_id=job.id if job else None, jobs=pipeline.jobs, principal=actor)
    changes = changed_fields(spec, load_job(verbs.as_body(job.spec()))) if job else []
    return _Plan(index, spec, job, generation, claim, changes, claimed)


def target(
    namespace: str, name: str, pipeline: Pipeline, names: JobNameStore, walks: _Walks | None = None
) -> tuple[int, Job | None, NameClaim | None, bool]:
    """The job ``namespace``/``name`` stands for, if any: (the generation of its claim, or of
    the first free one; the job, or None; an abandoned claim whose job id to use, or None;
    whether the job's name is claimed)."""
    jobs = pipeline.jobs
    for generation in range(MAX_GENERATIONS):
        claim = names.find(claim_id(namespace, name, generation))
        if claim is None:
            return generation, (walks or _Walks(pipeline)).unclaimed(namespace, name), None, False
        job = _wait_for(claim, jobs)
        if job is None:
            return generation, None, claim, True  # abandoned: its job is made under the claimed id
        if job.deleted_at is None and job.namespace == namespace and job.name == name:
            return generation, job, None, True
    raise Conflict(f"the name {name!r} went through {MAX_GENERATIONS} jobs in namespace {namespace!r}")


def _wait_for(claim: NameClaim, jobs: JobStore) -> Job | None:
    """The job a claim names; while it is young and its job not made yet, wait for it (an
    apply is making it). None: the claim was abandoned (older than :data:`STALE`)."""
    deadline = time.monotonic() + WAIT
    while True:
        job = jobs.find(claim.job_id)
        if job is not None:
            return job
        if claim.created_at is not None and clock.utcnow() - _aware(claim.created_at) > STALE:
            return None
        if time.monotonic() > deadline:
            raise Conflict(f"job {claim.name!r} is being created by another apply: apply again")
        time.sleep(POLL)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _Walks:
    """The live jobs of each namespace by name, for the names no apply claimed yet (made by
    ``POST /jobs/``): a namespace's jobs are walked once per request, O(jobs in it)."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.by_namespace: dict[str, dict[str, list[Job]]] = {}

    def unclaimed(self, namespace: str, name: str) -> Job | None:
        """The one live job named ``name`` in ``namespace`` (None: none). Two or more: Conflict."""
        if namespace not in self.by_namespace:
            named: dict[str, list[Job]] = {}
            cursor = None
            while True:
                page, cursor = self.pipeline.jobs.list(namespaces=[namespace], limit=500, cursor=cursor)
                for job in page:
                    named.setdefault(job.name, []).append(job)
                if not cursor:
                    break
            self.by_namespace[namespace] = named
        found = self.by_namespace[namespace].get(name, [])
        if len(found) > 1:
            ids = ", ".join(job.id for job in found[:5])
            raise Conflict(
                f"{len(found)} jobs are named {name!r} in namespace {namespace!r} ({ids}): "
                "apply needs one - rename or delete the others"
            )
        return found[0] if found else None


def _carry_out(plan: _Plan, body: Any, actor: Principal, pipeline: Pipeline, names: JobNameStore) -> Applied:
    if plan.job is not None and not plan.claimed:  # made by POST /jobs/: its name is claimed for it
        claim, won = names.claim(plan.spec["namespace"], plan.spec["name"], plan.generation, plan.job.id)
        if not won and claim.job_id != plan.job.id:
            return _carry_out(_plan(plan.index, body, actor, pipeline, names), body, actor, pipeline, names)
    if plan.job is not None:
        if not plan.changes:
            return _result(plan)
        verbs.update(plan.job.id, actor=actor, spec=plan.spec, pipeline=pipeline)
        return _result(plan)
    namespace, name = plan.spec["namespace"], plan.spec["name"]
    if plan.claim is not None:  # left by an apply that died: make its job under its id
        claim, won = plan.claim, True
    else:
        claim, won = names.claim(namespace, name, plan.generation, new_id())
    if not won:  # another apply claimed the name first: plan again against its job
        return _carry_out(_plan(plan.index, body, actor, pipeline, names), body, actor, pipeline, names)
    try:
        _job, dispatched, _at = verbs.submit(plan.spec, actor=actor, pipeline=pipeline, job_id=claim.job_id)
    except Duplicate:  # made by another apply that took over the same abandoned claim
        return _carry_out(_plan(plan.index, body, actor, pipeline, names), body, actor, pipeline, names)
    except HydraError:
        if plan.claim is None:
            names.release(claim)
        raise
    plan.claim = claim
    return _result(plan, "created", dispatched.run_id if dispatched else None)
