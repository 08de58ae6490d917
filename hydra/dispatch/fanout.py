"""Fanning a job out to every eligible worker (``placement.mode: all``; the rules are
``hydra.model.fanout``'s).

* **Start** (:func:`start`, called by ``Pipeline.dispatch`` for a start of such a job: a
  submission, a trigger, a cron tick, a one-off time): the eligible online workers that are
  not drained are read from the router's roster, sorted by name and recorded in a plan
  (``hydra.store.fanouts``) with a run id for each, the first being the run id the start
  was given; the fan-out's id is that run id, so a start published twice makes one plan.
  The first ``max_parallel`` workers (all by default) take their start slot and their run
  is dispatched bound to them (:class:`Binding` in the signed message, recorded on the run:
  the router places it only there). With no eligible worker the start's run is recorded and
  ended ``failed`` with the reason: every start ends recorded.
* **Binding** (:func:`binding_of`): every later dispatch of a fan-out run - its retries, a
  delayed or re-published attempt - keeps its worker, read from its run record or from the
  run it follows.
* **End** (:func:`ended`, called by the end-fence winner of a run's *final* end): the
  worker's end slot records the outcome (write-once: the first final end counts); after a
  failure with ``stop_on_failure`` every worker not started is skipped; then the next
  waiting worker is started - one per end, so at most ``max_parallel`` runs are in flight.
  A worker whose turn comes while it is offline is skipped (not reached). A process that
  cannot sign (a worker) records the next run due now: the controller publishes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from hydra import clock
from hydra.broker.due import DueIndex
from hydra.dispatch import signing
from hydra.dispatch.router import AffinityRouter
from hydra.errors import Duplicate, Unavailable
from hydra.model.affinity import Requirements
from hydra.model.fanout import SKIPPED, Binding, Plan, end_state, failed, summarize
from hydra.model.outcome import Outcome
from hydra.model.params import Values
from hydra.model.records import Chain, Dispatched, Job
from hydra.model.status import RunStatus
from hydra.store.fanouts import FanoutStore
from hydra.store.jobs import new_id
from hydra.store.runs import RunStore

log = logging.getLogger(__name__)

#: The decision recorded on a fan-out run whose worker was lost with it.
LOST_REASON = "its worker was lost: a fan-out run stays with its worker (the others have their own runs)"


class Dispatcher(Protocol):
    """What a fan-out dispatches with: the pipeline (``hydra.dispatch.pipeline.Pipeline``)."""

    router: AffinityRouter
    runs: RunStore

    def dispatch(
        self,
        job: Job,
        *,
        attempt: int = 1,
        chain: Chain = Chain(),
        run_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        binding: Binding | None = None,
    ) -> Dispatched: ...


def binding_of(runs: RunStore, run_id: str | None, chain: Chain) -> Binding | None:
    """The binding of a fan-out run being dispatched: its own record's, else that of the
    attempt it follows (None: this is a new start of the job)."""
    for known in (run_id, chain.retry_of):
        run = runs.find(known) if known else None
        if run is not None and run.bound_worker and run.fanout_id:
            return Binding(run.fanout_id, run.bound_worker)
    return None


def eligible_workers(router: AffinityRouter, job: Job) -> list[str]:
    """The online, undrained workers that may run ``job`` now, by name."""
    needs = {"affinity": job.affinity, "user": job.user, "shell": job.shell, "args": job.args}
    req = Requirements.from_message({**needs, "namespace": job.namespace})
    return sorted(w.id for w in router.registry.roster(max_age=0).eligible(req).candidates)


def start(pipeline: Dispatcher, job: Job, *, run_id: str, params: Mapping[str, Any] | None) -> Dispatched:
    """Plan a fan-out of ``job`` (its id: ``run_id``) and start its first workers; returns
    where the first worker's run went."""
    store = FanoutStore()
    placement = job.placement or {}
    workers = eligible_workers(pipeline.router, job)
    plan = Plan(
        id=run_id,
        job_id=job.id,
        workers=workers,
        runs={worker: run_id if i == 0 else new_id() for i, worker in enumerate(workers)},
        max_parallel=placement.get("max_parallel"),
        stop_on_failure=bool(placement.get("stop_on_failure")),
        params=dict(params) if params else None,
    )
    try:
        store.create(plan)
    except Duplicate:  # published twice: the first made the plan
        plan = store.plan(run_id) or plan
    log.info(
        "fan-out planned",
        extra={"event": "fanout.planned", "job_id": job.id, "fanout_id": plan.id, "workers": len(plan.workers)},
    )
    if not plan.workers:
        return _nobody(pipeline, job, run_id, params)
    first = None
    for worker in plan.first_wave:
        where = _start_one(pipeline, job, plan, worker)
        first = first or where
    return first or Dispatched(run_id, RunStatus.QUEUED, worker_id=plan.workers[0])


def _nobody(pipeline: Dispatcher, job: Job, run_id: str, params: Mapping[str, Any] | None) -> Dispatched:
    """A start with no worker to fan out to: its run is recorded and ended failed, with the reason."""
    why = "no eligible online worker to fan out to (placement mode all)"
    where = Dispatched(run_id, RunStatus.PENDING, reason=why)
    given = Values(dict(params), ()) if params else None
    pipeline.runs.record(run_id, job, attempt=1, placement=where, params=given, binding=Binding(run_id, ""))
    outcome = Outcome(status=RunStatus.FAILED.value, error=why, finished_at=clock.utcnow())
    pipeline.runs.finish(run_id, outcome, status=RunStatus.FAILED, decision=why, by="hydra", job=job, attempt=1)
    return Dispatched(run_id, RunStatus.FAILED, reason=why)


def _start_one(pipeline: Dispatcher, job: Job, plan: Plan, worker: str) -> Dispatched | None:
    """Start ``worker``'s run unless someone did (its start slot decides); None when not started."""
    store = FanoutStore()
    run_id = plan.runs[worker]
    if not store.start(plan.id, worker, run_id):
        return None
    binding = Binding(plan.id, worker)
    if signing.can_sign():
        return pipeline.dispatch(job, run_id=run_id, params=plan.params, binding=binding)
    # A worker cannot sign: recorded due now, the controller publishes it (with its binding).
    now = clock.utcnow()
    where = Dispatched(run_id, RunStatus.PENDING, reason="fan-out: started after another worker's run ended")
    given = Values(dict(plan.params), ()) if plan.params else None
    pipeline.runs.record(run_id, job, attempt=1, placement=where, not_before=now, params=given, binding=binding)
    try:
        DueIndex().add(run_id, now)
    except Unavailable as exc:  # the controller's sweep of MongoDB still finds it
        log.warning("due index not updated for run %s: %s", run_id, exc)
    return where


def ended(pipeline: Dispatcher, job: Job, run_id: str, status: RunStatus) -> None:
    """A fan-out run's final end (by its end-fence winner): record the worker's outcome, skip
    the rest after a failure with stop_on_failure, and start the next waiting worker."""
    run = pipeline.runs.find(run_id)
    if run is None or not run.fanout_id or not run.bound_worker:
        return
    store = FanoutStore()
    plan = store.plan(run.fanout_id)
    if plan is None:
        return
    if not store.take(plan.id, run.bound_worker, "end", status=status.value, run_id=run_id):
        return  # a later attempt (a manual retry): the worker's first final end counts
    starts = store.slots(plan, "start")
    waiting = [w for w in plan.workers if w not in starts]
    if plan.stop_on_failure and failed(end_state(status)):
        why = f"stop_on_failure: the run on {run.bound_worker} ended {status.value}"
        for worker in waiting:
            store.take(plan.id, worker, "start", state=SKIPPED, reason=why, run_id=plan.runs[worker])
        return
    online = _online(pipeline.router)
    for worker in waiting:
        if worker not in online:
            store.take(plan.id, worker, "start", state=SKIPPED, reason=f"{worker} was offline at its turn")
            continue
        if _start_one(pipeline, job, plan, worker) is not None:
            return


def _online(router: AffinityRouter) -> set[str]:
    """Every online worker, drained ones included (a drained worker's run waits: 'draining')."""
    roster = router.registry.roster(max_age=0)
    return {w.id for w in roster.workers} | {w.id for w in roster.drained}


def summary(plan: Plan):
    """The per-worker summary of a fan-out (``hydra.model.fanout.Summary``)."""
    store = FanoutStore()
    return summarize(plan, store.slots(plan, "start"), store.slots(plan, "end"))
