"""Submitting a job, and what a submission answers: the REST API (``POST /jobs/``, trigger,
retry) and gRPC (``SubmitJob``, ``RetryRun``) give the same :class:`Accepted`.

With an idempotency key (``hydra.model.idempotency``) a submission is made at most once
per key: the first request claims the key (``hydra.store.idempotency``, a unique insert)
together with the job and run ids it will use, then submits with those ids; a later or
concurrent request with the same key and body reads the claim and answers with that job
(``replayed``), waiting briefly while the first one is still being served. Should the first
request die between its claim and its job, a request more than :data:`STALE` later submits
the job under the claimed ids itself - the job's ``_id`` insert decides between such
requests too, so one job is made, whatever happens.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from hydra import clock
from hydra.celery.app import current_pipeline
from hydra.control import verbs
from hydra.dispatch.pipeline import Pipeline
from hydra.errors import Duplicate, HydraError, KeyInFlight, KeyReused, Unavailable
from hydra.model.access import Principal
from hydra.model.idempotency import KEEP, body_digest, scope_of
from hydra.model.records import Dispatched, Job
from hydra.model.status import SCHEDULED, STORED, RunStatus
from hydra.store.idempotency import IdempotencyStore, KeyClaim
from hydra.store.jobs import new_id

#: How long a repeated request waits for the first one's answer.
REPLAY_WAIT = 5.0
#: A claim this old whose job does not exist was left by a request that died.
STALE = timedelta(seconds=30)
POLL = 0.05


@dataclass(frozen=True)
class Accepted:
    """What a submission answers: the job, its first run and where that run went."""

    job_id: str
    run_id: str | None
    #: queued, pending, scheduled (it starts at ``scheduled_at``), or stored (it runs when
    #: triggered: a parameter it declares has no default).
    status: str
    worker_id: str | None = None
    pending_reason: str | None = None
    scheduled_at: datetime | None = None
    #: This answers an earlier request with the same idempotency key.
    replayed: bool = False

    @property
    def id(self) -> str:
        return self.job_id

    def as_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key != "replayed"}


def _stored(job_id: str, *, replayed: bool = False) -> Accepted:
    """The answer for a job stored without a run: it waits for a trigger with its parameters."""
    return Accepted(job_id, None, STORED, replayed=replayed)


def accepted(job_id: str, run: Dispatched | None, starts_at: datetime | None = None) -> Accepted:
    """The answer for a job whose first run is ``run`` (None for a cron job, or one that waits
    for a trigger), starting at ``starts_at`` when it does not start now."""
    if run is None and starts_at is None:
        return _stored(job_id)
    return Accepted(
        job_id=job_id,
        run_id=run.run_id if run else None,
        status=SCHEDULED if starts_at is not None else run.status.value if run else SCHEDULED,
        worker_id=run.worker_id if run else None,
        pending_reason=run.reason if run else None,
        scheduled_at=starts_at,
    )


def submit(
    spec: dict,
    *,
    actor: Principal,
    idempotency_key: str | None = None,
    source: str = "api",
    pipeline: Pipeline | None = None,
) -> Accepted:
    """Submit a validated job body for ``actor`` (``hydra.control.verbs.submit``), at most
    once per ``idempotency_key``. Raises what the verb raises, KeyReused for a key used
    with another body, KeyInFlight when its first request is still being served."""
    if not idempotency_key:
        job, run, starts_at = verbs.submit(spec, actor=actor, source=source, pipeline=pipeline)
        return accepted(job.id, run, starts_at)
    return _Once(spec, actor, idempotency_key, source, pipeline).submit()


class _Once:
    """One idempotent submission (see the module docstring)."""

    def __init__(self, spec: dict, actor: Principal, key: str, source: str, pipeline: Pipeline | None):
        self.actor, self.source, self.pipeline = actor, source, current_pipeline(pipeline)
        self.jobs, self.runs = self.pipeline.jobs, self.pipeline.runs
        self.store = IdempotencyStore()
        # The checks of a plain submission, once, first: a refused request claims no key.
        self.spec = verbs.admit(spec, actor)
        self.key, self.namespace = key, self.spec["namespace"]
        self.digest = body_digest(spec)

    def submit(self) -> Accepted:
        now = clock.utcnow()
        wanted = KeyClaim(
            id="",
            user=self.actor.user,
            namespace=self.namespace,
            key=self.key,
            digest=self.digest,
            job_id=new_id(),
            run_id=None if verbs.starts_later(self.spec) else new_id(),
            created_at=now,
            expires_at=now + KEEP,
        )
        claim, mine = self.store.claim(scope_of(self.actor.user, self.namespace, self.key), wanted)
        if claim.digest != self.digest:
            raise KeyReused(
                f"Idempotency-Key {self.key!r} was used with another job body "
                f"(job {claim.job_id}); use a new key for a new job"
            )
        return self._first(claim) if mine else self._replay(claim)

    def _first(self, claim: KeyClaim) -> Accepted:
        """Submit under the claimed ids, and keep the answer on the claim."""
        try:
            job, run, starts_at = verbs.start(
                self.spec,
                actor=self.actor,
                source=self.source,
                pipeline=self.pipeline,
                job_id=claim.job_id,
                run_id=claim.run_id,
            )
        except Duplicate:  # another request made the job under these ids first
            return self._replay(claim)
        except HydraError:
            self._release_unless_made(claim)
            raise
        answer = accepted(job.id, run, starts_at)
        try:
            self.store.answer(claim.id, answer.as_dict())
        except Unavailable:
            pass  # a replay then answers from the job's records
        return answer

    def _release_unless_made(self, claim: KeyClaim) -> None:
        """The submission failed: free the key unless its job was stored (then the controller
        dispatches it, and a replay answers with it)."""
        try:
            if self.jobs.find(claim.job_id) is None:
                self.store.release(claim.id)
        except Unavailable:
            pass  # the claim stays; once STALE, a repeated request makes the job itself

    def _replay(self, claim: KeyClaim) -> Accepted:
        """The first request's answer, once it is there (at most :data:`REPLAY_WAIT` s)."""
        deadline = time.monotonic() + REPLAY_WAIT
        while True:
            current = self.store.find(claim.id)
            if current is None:  # the first request failed and gave the key up: this one is first now
                return self.submit()
            if current.response:
                return Accepted(**current.response, replayed=True)
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL)
        job = self.jobs.find(claim.job_id)
        if job is not None:  # made, but its answer was never stored (that request died after)
            return self._from_records(claim, job)
        created = claim.created_at or clock.utcnow()
        if clock.utcnow() - created > STALE:
            return self._first(claim)
        raise KeyInFlight(f"a request with Idempotency-Key {self.key!r} is still being served; send it again")

    def _from_records(self, claim: KeyClaim, job: Job) -> Accepted:
        if claim.run_id is None and not job.schedule:
            return _stored(job.id, replayed=True)
        if claim.run_id is None:
            return Accepted(job.id, None, SCHEDULED, scheduled_at=job.next_run_at(), replayed=True)
        run = self.runs.find(claim.run_id)
        if run is None:  # accepted, not dispatched yet: the controller dispatches it
            return Accepted(job.id, claim.run_id, RunStatus.PENDING.value, replayed=True)
        if run.status == RunStatus.PENDING.value and run.not_before and run.not_before > clock.utcnow():
            return Accepted(job.id, run.id, SCHEDULED, scheduled_at=run.not_before, replayed=True)
        return Accepted(job.id, run.id, run.status, run.worker_id, run.pending_reason, replayed=True)
