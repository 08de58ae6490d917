"""Ending an attempt and starting the next one.

:func:`end_attempt` is the one way an attempt's end is recorded - by the result backend (the
worker's outcome), the controller (``lost``) or a user (``cancelled``): it applies the
lifecycle decision (``hydra.model.lifecycle``; an attempt whose cancel was requested ends
``cancelled`` whatever else stopped it, see ``hydra.control.cancel``), records the end
through the run's end fence, and - only if this call won the fence - starts what follows:
the failover attempt at once, or a retry after its backoff - and, once an attempt's end is
final, what follows it: its canvas steps and the jobs that depend on its job
(``hydra.dispatch.continuation``); and it notes what its job's notification targets are told
(``hydra.dispatch.notices``). Because only the fence winner
follows up, no attempt is ever retried or failed over twice, even with two controllers or
a late worker result.

A later attempt is a *delayed run*: recorded at once in ``job_runs`` as ``pending`` with
``not_before``, and indexed in the due index (``hydra.broker.due``); the controller publishes
it when due (:func:`publish_due`). A worker ends most attempts, and it holds no private key
(``hydra.dispatch.signing``): the attempt it would start at once (a failover) becomes a
delayed run due now, which the leading controller signs and publishes on its next pass. MongoDB keeps the truth, so a flushed Redis only delays
it until the controller's sweep finds it (``hydra.control.sweeps.Sweeps.publish_unpublished``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from hydra import clock
from hydra.broker import metrics
from hydra.broker.due import DueIndex
from hydra.broker.stops import StopFlags
from hydra.dispatch import continuation, fanout, notices, signing
from hydra.dispatch.pipeline import Pipeline
from hydra.errors import InvalidJob, Unavailable
from hydra.model.fanout import fans_out
from hydra.model.lifecycle import Decision, decide
from hydra.model.outcome import Outcome
from hydra.model.params import Values
from hydra.model.records import Chain, Dispatched, Job
from hydra.model.status import RunStatus
from hydra.store.jobs import new_id
from hydra.store.runs import RunStore

log = logging.getLogger(__name__)


def end_attempt(
    run_id: str,
    outcome: Outcome,
    *,
    by: str,
    job: Job,
    attempt: int,
    pipeline: Pipeline,
    chain: Chain = Chain(),
    started: bool = True,
    holding: bool = False,
) -> Decision | None:
    """Record the end of attempt ``attempt`` of ``job`` (``outcome.status`` is the raw
    outcome) and start its follow-up. ``started`` is False for an attempt that never ran.
    ``holding``: the caller holds the attempt's start fence (the worker that claimed it, a
    cancel that took it); any other ender takes it first (``RunStore.finish``).
    Returns the decision recorded, or None when another party recorded the end first
    (nothing is then changed)."""
    runs = pipeline.runs
    raw = RunStatus(outcome.status)
    effective = raw
    if raw in (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST) and runs.cancel_requested(run_id):
        effective = RunStatus.CANCELLED  # a cancel was under way: no retry, no failover (hydra.control.cancel)
    decision = decide(job.retry_policy, effective, lost_before=chain.lost, failed_before=chain.failed, started=started)
    if effective == RunStatus.LOST and fans_out(job.placement):  # bound to its worker: never moved
        decision = Decision(RunStatus.LOST, reason=fanout.LOST_REASON, lost=decision.lost, failed=decision.failed)
    why = "cancel requested" if effective != raw else decision.reason
    if not runs.finish(
        run_id, outcome, status=decision.status, raw=raw, decision=why, by=by, job=job, attempt=attempt, holding=holding
    ):
        return None
    if raw in (RunStatus.LOST, RunStatus.CANCELLED):
        request_stop(run_id, f"attempt ended as {decision.status.value} by {by}")
    # its quota places were freed with its end's index entries (one script in runs.finish:
    # hydra.broker.index.Index.run_ended); the controller corrects them if Redis missed it
    log.info(
        "run ended",
        extra={
            "event": "run.ended",
            "run_id": run_id,
            "job_id": job.id,
            "status": decision.status.value,
            "outcome": raw.value,
            "worker": by,
        },
    )
    # once: only the end-fence winner gets here
    metrics.run_finished(decision.status.value, outcome.duration, namespace=job.namespace, job_id=job.id)
    notices.after_end(run_id, job, decision.status, raw, pipeline=pipeline)
    next_id = ""
    if decision.next_in is not None:  # the attempt that follows carries what follows this run
        next_id = follow_up(
            job.id,
            attempt=attempt + 1,
            delay=decision.next_in,
            reason=decision.reason,
            chain=Chain(run_id, decision.lost, decision.failed),
            pipeline=pipeline,
            run_id=continuation.hand_over(run_id, pipeline),
        )
    continuation.after(run_id, job, decision.status, next_id=next_id, pipeline=pipeline, start_job=follow_up)
    if decision.next_in is None and fans_out(job.placement):
        try:
            fanout.ended(pipeline, job, run_id, decision.status)
        except Exception as exc:  # the end is recorded: the fan-out's next worker is logged, not raised
            log.error("fan-out of run %s not carried on: %s", run_id, exc, exc_info=not isinstance(exc, Unavailable))
    return decision


def request_stop(run_id: str, reason: str) -> None:
    """Ask the worker running ``run_id`` (if any) to stop it; best effort (the worker's
    watchdog also reads the end fence in MongoDB)."""
    try:
        StopFlags().request(run_id, reason)
    except Unavailable as exc:
        log.warning("stop flag for run %s not set: %s", run_id, exc)


def follow_up(
    job_id: str,
    *,
    attempt: int,
    delay: float,
    reason: str | None,
    chain: Chain,
    pipeline: Pipeline,
    run_id: str | None = None,
) -> str:
    """Start attempt ``attempt`` (the one after ``chain.retry_of``) now, or record it to start in
    ``delay`` seconds, with the parameter values of the attempt it follows; returns its run id
    (``run_id`` when given; "" when the job was deleted meanwhile). A process that cannot sign
    (a worker) records it due now instead: the controller publishes it. (A job's dependants
    start this way too, as attempt 1, with their parameters' defaults.)"""
    stored = pipeline.jobs.find(job_id)
    if stored is None or stored.deleted_at:  # nothing more to run
        return ""
    before = pipeline.runs.find(chain.retry_of) if chain.retry_of and stored.params else None
    given = before.given if before is not None else None
    if delay <= 0 and signing.can_sign():
        values = given.values if given else None
        return pipeline.dispatch(stored, attempt=attempt, chain=chain, run_id=run_id, params=values).run_id
    return schedule(
        stored,
        at=clock.utcnow() + timedelta(seconds=max(delay, 0.0)),
        attempt=attempt,
        chain=chain,
        reason=reason,
        runs=pipeline.runs,
        run_id=run_id,
        params=given,
    )


def schedule(
    job: Job,
    *,
    at: datetime,
    runs: RunStore,
    attempt: int = 1,
    chain: Chain = Chain(),
    reason: str | None = None,
    run_id: str | None = None,
    params: Values | None = None,
) -> str:
    """Record an attempt that must not start before ``at`` (with the values ``params`` of its
    trigger parameters, which it is published with); return its run id."""
    run_id = run_id or new_id()
    why = f"{reason + '; ' if reason else ''}starts at {at.isoformat(timespec='seconds')}"
    runs.record(
        run_id,
        job,
        attempt=attempt,
        chain=chain,
        not_before=at,
        placement=Dispatched(run_id, RunStatus.PENDING, reason=why),
        params=params,
    )
    try:
        DueIndex().add(run_id, at)
    except Unavailable as exc:  # the controller's sweep of MongoDB still finds it
        log.warning("due index not updated for run %s: %s", run_id, exc)
    return run_id


def publish_due(pipeline: Pipeline, now: datetime | None = None, *, limit: int = 500) -> int:
    """Publish the delayed runs whose time has come; returns how many were published."""
    due = DueIndex()
    published = 0
    for run_id in due.due(now or clock.utcnow(), limit):
        if publish_delayed(run_id, pipeline):
            published += 1
        due.remove(run_id)
    return published


def publish_delayed(run_id: str, pipeline: Pipeline) -> bool:
    """Publish a delayed (or unpublished) pending run unless it ended or already left."""
    runs = pipeline.runs
    run = runs.find(run_id)
    if run is None or run.status != RunStatus.PENDING.value or run.queue:
        return False
    if runs.end_of(run_id) is not None:
        return False
    job = pipeline.jobs.find(run.job_id)
    if job is None or job.deleted_at:  # nothing will run it: say so rather than wait forever
        why = "the job was deleted"
        end_unrunnable(
            run_id, why, job=job or Job(id=run.job_id), by="hydra", pipeline=pipeline, status=RunStatus.CANCELLED
        )
        return False
    return dispatch_stored(pipeline, job, run_id, attempt=run.attempt, chain=run.chain, params=run.params)


def end_unrunnable(
    run_id: str, why: str, *, job: Job, by: str, pipeline: Pipeline, status: RunStatus = RunStatus.DEAD_LETTER
) -> bool:
    """End a run that will never run - its message vanished too often, its job was deleted - as
    ``status`` with the reason, and go on with what follows it (its canvas, its job's
    dependants: ``hydra.dispatch.continuation``). False when it had ended already."""
    ended = pipeline.runs.finish(
        run_id, Outcome(status=status, error=why, finished_at=clock.utcnow()), status=status, decision=why, by=by
    )
    if ended:
        notices.after_end(run_id, job, status, None, pipeline=pipeline)
        continuation.after(run_id, job, status, next_id="", pipeline=pipeline, start_job=follow_up)
    return ended


def dispatch_stored(pipeline: Pipeline, job: Job, run_id: str, **how) -> bool:
    """Dispatch a run of a job read back from MongoDB. A stored job that no longer validates
    (written past the API, or by an older version) ends the run failed, saying why, instead
    of raising out of the sweep or the scheduler, where it would hold up every run behind it."""
    try:
        pipeline.dispatch(job, run_id=run_id, **how)
    except InvalidJob as exc:
        log.error(
            "stored job cannot run",
            extra={"event": "run.unrunnable", "job_id": job.id, "run_id": run_id, "error": str(exc)},
        )
        pipeline.runs.finish(
            run_id,
            Outcome(status=RunStatus.FAILED, error=f"the stored job cannot run: {exc}"),
            status=RunStatus.FAILED,
            by="hydra",
            job=job,
            attempt=how.get("attempt") or 1,
        )
        return False
    return True
