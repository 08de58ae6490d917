"""What a run's end starts: the steps of its canvas and the jobs that depend on its job.

Called by ``hydra.dispatch.attempts.end_attempt``, so only by the winner of the run's end
fence, once, wherever that is (the worker that ran it, the controller that found it lost, a
user's cancel):

* an attempt that is followed by another (a retry, a failover) hands its flow over
  (:func:`hand_over`, before the next attempt is recorded) and notes which attempt followed
  (:func:`after`), so the canvas goes on after the *final* outcome, whichever attempt it is;
* the final end (:func:`carry_on`) starts what follows it (``hydra.model.flow.outcome_plan``):
  pre-signed steps are sent exactly as their publisher signed them (:func:`start_step`,
  nothing is signed here: a worker holds no private key); steps it leaves not run are
  recorded ``cancelled`` with the reason, their job included (:func:`skip`); a chord's header
  part arrives, and the last one decides the body (:func:`arrive`); the jobs named by its
  job's ``on_success`` / ``on_failure`` / ``on_completion`` start as new runs of those jobs
  (published at once by a process that can sign, else recorded due now for the leading
  controller, like a failover), except paused or deleted ones, which are noted.

Everything it starts is written to MongoDB (``hydra.store.flows``) before its run is
recorded, and each step's run record is written only if new (``RunStore.record(only_new)``),
so a step starts, or is recorded as not run, once. What the end started is noted on the
ended run (``started``) and on each started run (``upstream``), which the API, the console
and the commands' ``HYDRA_UPSTREAM_*`` variables read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hydra.broker import metrics
from hydra.dispatch.canvas import step_envelope
from hydra.dispatch.envelope import Sealed
from hydra.dispatch.pipeline import Pipeline
from hydra.dispatch.router import placement_of
from hydra.dispatch.steps import unsent, validate
from hydra.errors import BrokerUnavailable, Duplicate, InvalidJob, Unavailable
from hydra.model.flow import (
    VIA_CHORD,
    VIA_FAILURE,
    ChordStart,
    Node,
    Step,
    Upstream,
    dependants_for,
    outcome_plan,
)
from hydra.model.message import MESSAGE_FIELDS, execution_digest
from hydra.model.outcome import Outcome
from hydra.model.params import Values
from hydra.model.records import Chain, Dispatched, Job
from hydra.model.status import FOLLOWED, RunStatus
from hydra.store.jobs import new_id

log = logging.getLogger(__name__)

#: ``start_job(job_id, *, attempt, delay, reason, chain, pipeline, run_id) -> run id``: start
#: a stored job now, or record it due now for the controller (``attempts.follow_up``).
StartJob = Callable[..., str]


def hand_over(run_id: str, pipeline: Pipeline) -> str:
    """The run id of the attempt that will follow run ``run_id``, its flow handed over to it."""
    next_id = new_id()
    try:
        pipeline.flows.hand_over(run_id, next_id)
    except Unavailable as exc:
        log.error("flow of run %s not handed over: %s", run_id, exc, extra={"event": "flow.failed", "run_id": run_id})
    return next_id


def after(
    run_id: str, job: Job, status: RunStatus, *, next_id: str, pipeline: Pipeline, start_job: StartJob
) -> list[dict]:
    """Run ``run_id`` ended as ``status``: followed by attempt ``next_id`` (noted), or for good
    (:func:`carry_on`). Never raises (logged): the end itself is recorded already."""
    try:
        if next_id or status in FOLLOWED:  # followed by an attempt, or by none ("": its job was deleted)
            pipeline.flows.followed(run_id, next_id)
        if next_id:
            return []
        return carry_on(run_id, job, status, pipeline=pipeline, start_job=start_job)
    except Exception as exc:
        log.error(
            "what follows run %s could not be started: %s",
            run_id,
            exc,
            exc_info=not isinstance(exc, Unavailable),
            extra={"event": "flow.failed", "run_id": run_id},
        )
        return []


def carry_on(run_id: str, job: Job, status: RunStatus, *, pipeline: Pipeline, start_job: StartJob) -> list[dict]:
    """Start what follows the final end of run ``run_id`` (see the module docstring); returns
    what was started or left not run, as noted on the run."""
    flows = pipeline.flows
    root = flows.first(run_id)
    entries: list[dict] = []
    if root is not None:
        then = root.continuation
        plan = outcome_plan(then, status, run_id)
        upstream = Upstream((run_id,), (status.value,), plan.via, job.id, job.name)
        for node in plan.start:
            entries += start(node, upstream, pipeline)
        for node in plan.skip:
            entries += skip(node, plan.reason, upstream, pipeline)
        if then.chord is not None:
            entries += arrive(then.chord, root.id, status, run_id, pipeline)
    entries += start_dependants(run_id, job, status, pipeline=pipeline, start_job=start_job)
    flows.note_started(run_id, entries)
    return entries


# -- canvas steps -------------------------------------------------------------------------------


def start(node: Node, upstream: Upstream, pipeline: Pipeline) -> list[dict]:
    """Start a node: a pre-signed step, or a chord's header."""
    if isinstance(node, Step):
        return [start_step(node, upstream, pipeline)]
    chord = pipeline.flows.chord(node.group_id)
    if chord is None:
        log.error("chord %s is not stored", node.group_id, extra={"event": "flow.failed"})
        return []
    return [entry for header in chord.header_nodes for entry in start(header, upstream, pipeline)]


def start_step(step: Step, upstream: Upstream, pipeline: Pipeline) -> dict:
    """Send a pre-signed step exactly as signed: its flow first, its job (stored now if it is
    new), its run record (only if new: a step starts once), then its message. A step whose
    signature does not match, or whose job was deleted, is recorded as refused and what
    follows it as not run. A broker outage leaves it recorded unsent: the controller
    publishes it (signing it anew from its stored job), and what follows it is in its flow."""
    flows = pipeline.flows
    flows.begin(step.run_id, then=step.then, upstream=upstream)
    envelope = step_envelope(step)
    reason = envelope.verify(step.signature)
    message: dict = {}
    try:
        message = validate(step.kwargs) if reason is None else {}
    except InvalidJob as exc:
        reason = f"invalid step: {exc.errors}"
    job = step_job(step, pipeline) if reason is None else None
    if reason is None and (job is None or job.deleted_at):
        reason = f"the step's job {step.job_id!r} was deleted"
    if reason is not None or job is None:
        why = reason or "no job"
        recorded = pipeline.runs.refuse(step.run_id, why, by="hydra", dead_letter=True)
        log.warning("step refused: %s", why, extra={"event": "run.refused", "run_id": recorded, "reason": why})
        skipped = _skip_following(step, f"not started: step {step.run_id} was refused", pipeline)
        flows.note_started(step.run_id, skipped)
        return _entry(step, upstream.via, note=f"refused: {why}")
    try:
        where = placement_of(step.run_id, pipeline.router.choose(message, step.run_id))
    except BrokerUnavailable as exc:
        where = unsent(step.run_id, exc)
    if where.queue:
        pipeline.watch(step.run_id)
    digest, given = execution_digest(message), Values.of_message(message)
    if not pipeline.runs.record(
        step.run_id, job, attempt=1, placement=where, digest=digest, only_new=True, params=given
    ):
        log.info("step already started", extra={"event": "run.step_again", "run_id": step.run_id})
        return _entry(step, upstream.via)
    if where.queue is not None:
        try:
            pipeline.send(Sealed(envelope, step.signature), where)
        except BrokerUnavailable as exc:
            pipeline.left_unsent(step.run_id, job, 1, exc, params=given)
    return _entry(step, upstream.via)


def step_job(step: Step, pipeline: Pipeline) -> Job | None:
    """The job of a step: a stored job it names, or its own, stored the first time the step
    starts (or is recorded as not run) - an errback that is never needed leaves no job."""
    job = pipeline.jobs.find(step.job_id)
    if job is not None:
        return job
    spec = {key: value for key, value in step.kwargs.items() if key not in MESSAGE_FIELDS}
    try:
        job = pipeline.jobs.create(spec, source="python", job_id=step.job_id)
    except Duplicate:  # stored meanwhile by another start of it
        return pipeline.jobs.find(step.job_id)
    metrics.job_submitted("python")
    return job


def skip(node: Node, reason: str, upstream: Upstream, pipeline: Pipeline) -> list[dict]:
    """Record a node as not run: a step's run ends ``cancelled`` with ``reason`` before it ever
    starts (its record written only if new, then its start fence held: no worker takes it),
    and so does everything that would have followed it; a chord's header parts likewise."""
    if isinstance(node, ChordStart):
        chord = pipeline.flows.chord(node.group_id)
        nodes = chord.header_nodes if chord is not None else ()
        return [entry for header in nodes for entry in skip(header, reason, upstream, pipeline)]
    step = node
    job = step_job(step, pipeline)
    if job is None:
        return []
    flows = pipeline.flows
    flows.begin(step.run_id, upstream=upstream)
    runs = pipeline.runs
    placement = Dispatched(step.run_id, RunStatus.PENDING, reason=reason)
    if not runs.record(step.run_id, job, attempt=1, placement=placement, only_new=True):
        return []  # it started after all (or was recorded already)
    runs.hold(step.run_id, by="hydra")
    runs.finish(
        step.run_id,
        Outcome(status=RunStatus.CANCELLED, error=reason),
        status=RunStatus.CANCELLED,
        decision="not started",
        by="hydra",
        job=job,
        attempt=1,
        holding=True,  # its start fence, taken above
    )
    flows.note_started(step.run_id, _skip_following(step, reason, pipeline))
    return [_entry(step, upstream.via, note=reason)]


def _skip_following(step: Step, reason: str, pipeline: Pipeline) -> list[dict]:
    """What follows a step that does not run: its next steps not run, its chord told."""
    upstream = Upstream((step.run_id,), (RunStatus.CANCELLED.value,), "on_success", step.job_id, step.name)
    entries = [entry for node in step.then.on_success for entry in skip(node, reason, upstream, pipeline)]
    if step.then.chord is not None:
        entries += arrive(step.then.chord, step.run_id, RunStatus.CANCELLED, step.run_id, pipeline)
    return entries


def arrive(group_id: str, part: str, status: RunStatus, run_id: str, pipeline: Pipeline) -> list[dict]:
    """Header part ``part`` of chord ``group_id`` ended for good (its last attempt ``run_id``).
    Whoever finds every part ended decides the body: it starts when every part succeeded
    (with their run ids and statuses as its upstream); otherwise it is recorded as not run
    and its errbacks start."""
    flows = pipeline.flows
    if not flows.arrive(group_id, part, status=status.value, run_id=run_id):
        return []
    chord = flows.chord(group_id)
    if chord is None:
        return []
    ended = flows.arrivals(group_id, chord.parts)
    if len(ended) < len(chord.parts):
        return []
    body = chord.body_step
    parts = [ended[name] for name in chord.parts]
    upstream = Upstream(tuple(p.run_id for p in parts), tuple(p.status for p in parts), VIA_CHORD, group=group_id)
    failed = next((p for p in parts if p.status != RunStatus.SUCCEEDED.value), None)
    if failed is None:
        return [start_step(body, upstream, pipeline)]
    reason = f"not started: run {failed.run_id} of chord {group_id} ended {failed.status}"
    entries = skip(body, reason, upstream, pipeline)
    if entries:  # this call recorded the body as not run: its errbacks are due
        errback_upstream = Upstream(upstream.runs, upstream.statuses, VIA_FAILURE, group=group_id)
        entries += [entry for node in body.then.on_failure for entry in start(node, errback_upstream, pipeline)]
    return entries


def refused_part(options: dict, pipeline: Pipeline) -> None:
    """A header task of a published chord was refused (nothing of it was stored or sent): its
    part of the chord ends as failed, so the chord's body is decided without it."""
    group_id = options.get("group_id")
    if not isinstance(group_id, str):
        return
    chained = [entry.get("options") or {} for entry in options.get("chain") or () if isinstance(entry, dict)]
    candidates = [options.get("task_id")] + [entry.get("task_id") for entry in chained if entry.get("chord")]
    try:
        chord = pipeline.flows.chord(group_id)
        for part in candidates:
            if chord is not None and part in chord.parts:  # the task, or the last step of its chain
                arrive(group_id, part, RunStatus.FAILED, part, pipeline)
    except Unavailable as exc:
        log.error("chord %s not told of its refused part: %s", group_id, exc, extra={"event": "flow.failed"})


# -- job dependencies ---------------------------------------------------------------------------


def start_dependants(
    run_id: str, job: Job, status: RunStatus, *, pipeline: Pipeline, start_job: StartJob
) -> list[dict]:
    """Start the jobs that ``job`` names for this end (``on_success`` / ``on_failure`` /
    ``on_completion``, as the job was when the run was published: its message carries them),
    each once even when named twice; a paused or deleted one is noted instead, with the reason."""
    fields = dependants_for(status)
    stored = job  # as its run's message had it (or as stored, for an end recorded away from the worker)
    entries: list[dict] = []
    seen: set[str] = set()
    for field_name in fields:
        for target_id in getattr(stored, field_name, None) or ():
            if target_id in seen:
                continue
            seen.add(target_id)
            entries.append(_start_dependant(run_id, stored, status, field_name, target_id, pipeline, start_job))
    return entries


def _start_dependant(
    run_id: str, upstream_job: Job, status: RunStatus, via: str, target_id: str, pipeline: Pipeline, start_job: StartJob
) -> dict:
    target = pipeline.jobs.find(target_id)
    entry: dict[str, Any] = {"run_id": None, "job_id": target_id, "job_name": target.name if target else "", "via": via}
    if target is None or target.deleted_at:
        return {**entry, "note": "not started: the job was deleted"}
    if target.paused:
        return {**entry, "note": "not started: the job is paused"}
    started_id = new_id()
    upstream = Upstream((run_id,), (status.value,), via, upstream_job.id, upstream_job.name)
    pipeline.flows.begin(started_id, upstream=upstream)
    reason = f"started by run {run_id} of job {upstream_job.name or upstream_job.id} ({status.value})"
    try:
        started_id = start_job(
            target_id, attempt=1, delay=0.0, reason=reason, chain=Chain(), pipeline=pipeline, run_id=started_id
        )
    except InvalidJob as exc:  # a stored job that no longer validates
        return {**entry, "note": f"not started: the job cannot run: {exc}"}
    log.info(
        "dependant started",
        extra={"event": "run.dependant", "run_id": started_id, "job_id": target_id, "upstream": run_id, "via": via},
    )
    return {**entry, "run_id": started_id or None}


def _entry(step: Step, via: str, *, note: str | None = None) -> dict:
    entry = {"run_id": step.run_id, "job_id": step.job_id, "job_name": step.name, "via": via}
    return {**entry, "note": note} if note else entry
