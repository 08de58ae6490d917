"""Ending an attempt and starting the next one.

:func:`end_attempt` is the one way an attempt's end is recorded - by the result backend (the
worker's outcome), the controller (``lost``) or a user (``cancelled``): it applies the
lifecycle decision (``hydra.lifecycle``; an attempt whose cancel was requested ends
``cancelled`` whatever else stopped it, see ``hydra.cancel``), records the end through the
run's end fence, and - only if this call won the fence - starts what follows: the failover
attempt at once, or a retry after its backoff. Because only the fence winner follows up, no attempt is ever
retried or failed over twice, even with two controllers or a late worker result.

A later attempt is a *delayed run*: recorded at once in ``job_runs`` as ``pending`` with
``not_before``, and indexed in the Redis sorted set ``hydra:due``; the controller publishes
it when due (:func:`publish_due`). MongoDB keeps the truth, so a flushed Redis only delays
it until the controller's sweep finds it (``Controller.publish_unpublished``).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from redis.exceptions import RedisError

from hydra import names
from hydra.jobs import Chain, JobStore, dispatch, new_id
from hydra.lifecycle import decide
from hydra.metrics import run_finished
from hydra.registry import get_redis
from hydra.runs import RunStore, utcnow
from hydra.status import RunStatus
from hydra.watchdog import request_stop

log = logging.getLogger(__name__)


def end_attempt(run_id: str, outcome: dict, *, by: str, job: dict, attempt: int, chain: Chain = Chain(),
                started: bool = True, runs: RunStore | None = None) -> bool:
    """Record the end of attempt ``attempt`` of ``job`` (``outcome["status"]`` is the raw
    outcome) and start its follow-up. ``started`` is False for an attempt that never ran.
    Returns False when another party recorded the end first (nothing is then changed)."""
    runs = runs or RunStore()
    raw = RunStatus(outcome["status"])
    effective = raw
    if raw in (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST) and runs.cancel_requested(run_id):
        effective = RunStatus.CANCELLED  # a cancel was under way: no retry, no failover (hydra.cancel)
    decision = decide(job, effective, lost_before=chain.lost, failed_before=chain.failed, started=started)
    recorded = dict(outcome, status=decision.status.value, outcome=raw.value)
    if effective != raw:
        recorded["decision"] = "cancel requested"
    elif decision.reason:
        recorded["decision"] = decision.reason
    if not runs.finish(run_id, recorded, by=by):
        return False
    if raw in (RunStatus.LOST, RunStatus.CANCELLED):
        request_stop(run_id, f"attempt ended as {decision.status.value} by {by}")
    job_id = job.get("job_id") or job.get("_id")
    log.info("run ended", extra={"event": "run.ended", "run_id": run_id, "job_id": job_id,
                                 "status": decision.status.value, "outcome": raw.value, "worker": by})
    run_finished(decision.status.value, outcome.get("duration"))  # once: only the end-fence winner gets here
    if decision.next_in is not None:
        follow_up(job_id, after=run_id, attempt=attempt + 1, delay=decision.next_in, reason=decision.reason,
                  chain=Chain(run_id, decision.lost, decision.failed), runs=runs)
    return True


def follow_up(job_id: str, *, after: str, attempt: int, delay: float, reason: str | None, chain: Chain,
              runs: RunStore) -> str:
    """Start attempt ``attempt`` (the one after run ``after``) now, or record it to start in ``delay`` s."""
    stored = JobStore().find(job_id)
    if stored is None or stored.get("deleted_at"):  # the job was deleted meanwhile: nothing more to run
        return ""
    if delay <= 0:
        return dispatch(stored, attempt=attempt, chain=chain, runs=runs).run_id
    return schedule(stored, at=utcnow() + timedelta(seconds=delay), attempt=attempt, chain=chain,
                    reason=reason, runs=runs)


def schedule(job: dict, *, at: datetime, attempt: int = 1, chain: Chain = Chain(), reason: str | None = None,
             runs: RunStore | None = None, run_id: str | None = None) -> str:
    """Record an attempt that must not start before ``at``; return its run id."""
    runs = runs or RunStore()
    run_id = run_id or new_id()
    why = f"{reason + '; ' if reason else ''}starts at {at.isoformat(timespec='seconds')}"
    runs.record_published(run_id=run_id, job=job, attempt=attempt, status=RunStatus.PENDING, queue=None,
                          worker_id=None, reason=why, chain=chain, not_before=at)
    try:
        get_redis().zadd(names.DUE_KEY, {run_id: at.timestamp()})
    except RedisError as exc:  # the controller's sweep of MongoDB still finds it
        log.warning("due index not updated for run %s: %s", run_id, exc)
    return run_id


def publish_due(now: datetime | None = None, *, runs: RunStore | None = None, limit: int = 500) -> int:
    """Publish the delayed runs whose time has come; returns how many were published."""
    runs = runs or RunStore()
    redis = get_redis()
    now = now or utcnow()
    published = 0
    for run_id in redis.zrangebyscore(names.DUE_KEY, "-inf", now.timestamp(), start=0, num=limit):
        if publish_delayed(run_id, runs=runs):
            published += 1
        redis.zrem(names.DUE_KEY, run_id)
    return published


def publish_delayed(run_id: str, *, runs: RunStore) -> bool:
    """Publish a delayed (or unpublished) pending run unless it ended or already left."""
    run = runs.find(run_id)
    if run is None or run.get("status") != RunStatus.PENDING.value or run.get("queue"):
        return False
    if runs.end_of(run_id) is not None:
        return False
    job = JobStore().find(run["job_id"])
    if job is None or job.get("deleted_at"):  # nothing will run it: say so rather than wait forever
        runs.finish(run_id, {"status": RunStatus.CANCELLED.value, "error": "the job was deleted"}, by="hydra")
        return False
    dispatch(job, attempt=run.get("attempt", 1), chain=Chain.of_run(run), runs=runs, run_id=run_id)
    return True
