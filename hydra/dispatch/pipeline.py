"""Dispatching an attempt: one pipeline, each step a plain function, whoever publishes.

::

    build_message(job, attempt, values) -> validate(message) -> place (the affinity router)
        -> record (job_runs: queued on a worker, or pending with the reason) -> send

The steps that are plain functions of the message (building, validating, naming it, an unsent
attempt's placement) are ``hydra.dispatch.steps``; placing is the router's, recording the run
store's, and this module runs them all and sends.

:meth:`Pipeline.dispatch` runs it for an attempt of a stored job (the API, the controller,
retries, failover, cron ticks) and returns where the attempt went. A Python user's
``apply_async`` / ``send_task`` reaches :meth:`Pipeline.accept` (``Hydra.send_task`` calls
it): the same steps, after giving a message without ``job_id`` a job of its own. Messages
taken back from a queue (``hydra.pending``, a gone worker's queue) go through the same
placing, recording and sending (:meth:`Pipeline.republish`).

Every message is signed (``hydra.dispatch.envelope``) before its run is recorded - a process
without a private key fails before it leaves a record behind - and a message that is signed
already is only ever sent as it is: a pre-signed canvas step (``hydra.dispatch.canvas``,
started by ``hydra.dispatch.continuation``) and a message taken back from a queue. Messages
carry no canvas: what follows a run is kept with its record (``hydra.store.flows``).

The record is written before the message is sent, so a worker never meets an attempt
nobody recorded, and the run is noted as sent (``hydra.broker.sent``) before its record is
written: a publisher that dies in between leaves a run the controller publishes again after
``HYDRA_QUEUED_BOUND`` seconds, and a send that fails for any reason but the broker ends the
run with that reason. When the broker cannot be reached, the attempt is recorded pending with
the reason and no queue, and the controller publishes it once the broker is back
(``hydra.dispatch.attempts.publish_delayed``): an accepted job is never lost to a broker
outage.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol

from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from hydra import clock, names
from hydra.broker import metrics
from hydra.broker.sent import SentIndex
from hydra.dispatch import fanout, resources, signing
from hydra.dispatch.canvas import Canvas
from hydra.dispatch.envelope import HYDRA_HEADERS, RESERVED_HEADERS, Envelope, Sealed, passed_on, seal
from hydra.dispatch.router import AffinityRouter, placement_of, queue_placement
from hydra.dispatch.steps import build_message, shadow_name, summary, unsent, validate
from hydra.dispatch.submissions import KEY_HOLDER, Submitter, audit_submission
from hydra.errors import BrokerUnavailable, InvalidJob
from hydra.model.fanout import Binding, fans_out
from hydra.model.message import MESSAGE_BODY_FIELDS, MESSAGE_FIELDS, execution_digest
from hydra.model.outcome import Outcome
from hydra.model.params import Values
from hydra.model.priority import LEVELS, broker_level
from hydra.model.records import Chain, Dispatched, Job
from hydra.model.status import RunStatus
from hydra.store.flows import FlowStore
from hydra.store.jobs import JobStore, new_id
from hydra.store.runs import RunStore

log = logging.getLogger(__name__)

#: What can go wrong talking to the broker while sending (kombu, redis-py, sockets).
SEND_ERRORS = (KombuOperationalError, RedisError, ConnectionError, OSError)
#: How hard a send retries before the attempt is left for the controller to publish.
SEND_RETRY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.3}


class Publisher(Protocol):
    """What the pipeline sends with: the Celery app (``hydra.celery.app.Hydra``)."""

    def publish(self, name: str, kwargs: dict, **options: Any) -> Any:
        """Celery's own send_task, past this pipeline."""

    def AsyncResult(self, task_id: str) -> Any:  # noqa: N802 - Celery's name
        """The result handle of a task id."""


class Republished(StrEnum):
    """What :meth:`Pipeline.republish` did with a message."""

    SENT = "sent"
    DROPPED = "dropped"  # its attempt ended, or was claimed
    WAITING = "waiting"  # put back: no eligible worker
    OVER_QUOTA = "over_quota"  # put back: its namespace is at a limit


# --- the pipeline ----------------------------------------------------------------------------


class Pipeline:
    """The steps, with what they need: the app to send with, the router, and the stores."""

    def __init__(self, app: Publisher, *, router: AffinityRouter | None = None, runs: RunStore | None = None):
        self.app = app
        self.router = router or AffinityRouter()
        self.runs = runs or RunStore()
        self.jobs: JobStore = self.runs.jobs
        self.flows = FlowStore(index=self.runs.index)

    def dispatch(
        self,
        job: Job,
        *,
        attempt: int = 1,
        chain: Chain = Chain(),
        run_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        binding: Binding | None = None,
    ) -> Dispatched:
        """Publish attempt ``attempt`` of the stored ``job`` (``params``: its parameters' values); returns where it went.

        A job with ``placement.mode: all`` fans out (``hydra.dispatch.fanout``): a new start
        plans the workers and dispatches a run bound to each; a run of a fan-out (``binding``,
        or recorded on its run or the run it follows) goes to its worker only."""
        if binding is None and fans_out(job.placement):
            binding = fanout.binding_of(self.runs, run_id, chain)
            if binding is None:
                return fanout.start(self, job, run_id=run_id or new_id(), params=params)
        run_id = run_id or new_id()
        message = build_message(job, attempt, params)
        if binding is not None:
            message.update(fanout_id=binding.fanout_id, bound_worker=binding.worker)
        message = validate(message)
        given = Values.of_message(message)
        sealed = seal(run_id, message, chain, {})  # before anything is recorded: SigningKeyMissing leaves nothing
        try:
            where = placement_of(run_id, self.router.choose(message, run_id))
        except BrokerUnavailable as exc:
            return self.left_unsent(run_id, job, attempt, exc, chain, params=given, binding=binding)
        self._record(run_id, job, message, where, chain)
        try:
            self.send(sealed, where, retry=True, retry_policy=SEND_RETRY)
        except BrokerUnavailable as exc:
            return self.left_unsent(run_id, job, attempt, exc, chain, params=given, binding=binding)
        return where

    def accept(self, args: Any, kwargs: Any, options: dict, *, submitter: Submitter = KEY_HOLDER) -> Any:
        """A ``hydra.run_command`` published from outside (``apply_async``, ``send_task``, the
        API's ``POST /tasks/``): validate it (and check it against ``submitter``'s rights,
        ``hydra.dispatch.submissions``), give it a job when it has none, take in its canvas
        (``hydra.dispatch.canvas``: every step validated, checked and pre-signed), sign it,
        store what follows it (``hydra.store.flows``), audit, place it (unless the caller
        named a queue), record, send. Returns Celery's AsyncResult.

        A message naming a stored job (``job_id``) runs that job as stored: any body field
        it gives that differs from the job's is refused (InvalidJob), never sent. Messages
        are JSON: another ``serializer`` is refused, as is ``compression``, and headers that
        are Hydra's or Celery's own."""
        serializer = options.get("serializer")
        if serializer not in (None, "json"):
            raise InvalidJob({"serializer": [f"hydra.run_command messages are JSON only, not {serializer!r}"]})
        if options.get("compression"):
            raise InvalidJob({"compression": ["hydra.run_command messages are not compressed"]})
        reserved = sorted(set(options.get("headers") or {}) & RESERVED_HEADERS)
        if reserved:
            raise InvalidJob({"headers": [f"{', '.join(reserved)}: set by Hydra and Celery, not by a caller"]})
        if isinstance(kwargs, dict) and (kwargs.get("fanout_id") or kwargs.get("bound_worker")):
            raise InvalidJob({"bound_worker": ["set by Hydra for the runs of a fan-out, not by a caller"]})
        message = self._message_of(args, submitter.settle(kwargs))
        submitter.check(message, self.jobs)
        new_job = message.get("job_id") is None
        if new_job:  # its id decided now: the signature covers it; its namespace's limits too
            message["job_id"] = new_id()
            message = resources.settle(message, self.router)
        options = {key: value for key, value in options.items() if key not in ("serializer", "compression")}
        run_id = options.pop("task_id", None) or new_id()
        canvas = Canvas(lambda body: self.step_message(body, submitter), new_id, self.app)
        then = canvas.then_of(options, run_id)
        options = canvas.without(options)
        sealed = seal(run_id, message, Chain(), options)  # before anything is stored
        canvas.check_joined(self.flows)
        for made in canvas.chords:
            self.flows.register_chord(made)
        self.flows.begin(run_id, then=then)
        job = self._store_job(message, first_run_id=run_id) if new_job else self.jobs.get(message["job_id"])
        audit_submission(submitter, run_id, message, canvas.steps)
        named = options.get("queue") or options.get("routing_key")
        try:
            if named:
                where = queue_placement(run_id, str(getattr(named, "name", named)))
                if where.status == RunStatus.PENDING:
                    where = placement_of(run_id, self.router.place(message))
            else:
                where = placement_of(run_id, self.router.choose(message, run_id))
        except BrokerUnavailable as exc:
            self.left_unsent(run_id, job, message["attempt"], exc, params=Values.of_message(message))
            return self._result(run_id)
        self._record(run_id, job, message, where, Chain())
        try:
            return self.send(sealed, where, **passed_on(options))
        except BrokerUnavailable as exc:
            self.left_unsent(run_id, job, message["attempt"], exc, params=Values.of_message(message))
            return self._result(run_id)

    def republish(self, message: Any, *, only_if_placeable: bool) -> Republished:
        """Send a message taken from a queue (``message`` is kombu's) through the router again,
        exactly as it was signed, and acknowledge it. Dropped when its attempt ended or was
        claimed meanwhile. With ``only_if_placeable``, a message no worker can take yet (or
        whose namespace is at a limit) is left unacknowledged: the caller puts it back
        (``message.requeue()``) once it has looked at the rest of the queue.

        A message Hydra did not sign, cannot decode or cannot validate is never sent again:
        it is acknowledged and recorded (``RunStore.refuse``), so one bad message cannot stall
        placement, and nothing is signed here."""
        headers = message.headers if isinstance(message.headers, dict) else {}
        run_id = headers.get("id")
        if not isinstance(run_id, str) or not run_id:
            run_id = None
        try:
            args, kwargs, embed = message.payload
        except Exception as exc:  # noqa: BLE001 - kombu's decoders raise anything (pickle, zlib, json)
            # (hydra.broker.envelope's stand-ins for envelopes kombu cannot read land here too)
            self._refuse_message(message, run_id, f"undecodable message ({message.content_type}): {exc}")
            return Republished.DROPPED
        if run_id is not None and (self.runs.end_of(run_id) is not None or self.runs.start_of(run_id) is not None):
            message.ack()  # ended (cancelled while it waited), or a copy of an attempt someone claimed
            return Republished.DROPPED
        envelope = Envelope.of_message(headers, args, kwargs, embed)
        signature = headers.get(signing.HEADER)
        reason = envelope.verify(signature)
        if reason is None and headers.get("task") != names.TASK_RUN_COMMAND:
            reason = f"not a {names.TASK_RUN_COMMAND} message"
        try:
            kwargs = validate(kwargs, args) if reason is None else kwargs
        except InvalidJob as exc:
            reason = f"invalid message: {exc.errors}"
        if reason is not None:
            self._refuse_message(message, run_id, reason)
            return Republished.DROPPED
        assert run_id is not None  # verify() refuses a message without one
        placement = self.router.choose(kwargs, run_id)
        if placement.worker is None and only_if_placeable:
            return Republished.OVER_QUOTA if placement.over_quota else Republished.WAITING
        if placement.worker is None:  # back to waiting: it holds no place on a worker
            self.router.slots.released(kwargs["namespace"], run_id, kwargs.get("job_id"))
        where = placement_of(run_id, placement)
        job = (self.jobs.find(kwargs["job_id"]) if kwargs.get("job_id") else None) or Job.from_message(kwargs)
        self._record(run_id, job, kwargs, where, envelope.chain)
        self.send(
            Sealed(envelope, str(signature)), where, priority=_broker_priority(message.properties.get("priority"))
        )
        message.ack()
        return Republished.SENT

    def _refuse_message(self, message: Any, run_id: str | None, reason: str) -> None:
        """Acknowledge a message that must not be sent again, and record why (on its run when
        one is recorded, else as a new dead-lettered run)."""
        run_id = self.runs.refuse(run_id, reason, by="controller", dead_letter=True)
        log.warning(
            "message refused: %s",
            reason,
            extra={"event": "run.refused", "run_id": run_id, "reason": reason, "queue": _queue_of(message)},
        )
        message.ack()

    def send(self, sealed: Sealed, where: Dispatched, **options) -> Any:
        """Send a signed message to the queue ``where`` names (or the caller's ``queue``),
        exactly as signed; raises BrokerUnavailable. ``options`` are what the signature does
        not cover (queue, priority, retry policy, Celery's ids of parents and groups)."""
        envelope = sealed.envelope
        run_id, message = envelope.id, envelope.kwargs
        if options.get("priority") is None:
            options["priority"] = broker_level(message.get("priority"))
        options["queue"] = options.get("queue") or where.queue or names.PENDING_QUEUE
        limits = envelope.headers["timelimit"]
        try:
            result = self.app.publish(
                names.TASK_RUN_COMMAND,
                message,
                task_id=run_id,
                kwargsrepr=summary(message),
                shadow=options.pop("shadow", None) or shadow_name(message),
                headers={
                    **(options.pop("headers", None) or {}),
                    **{name: envelope.headers[name] for name in HYDRA_HEADERS},
                    signing.HEADER: sealed.signature,
                },
                link=envelope.embed["callbacks"],
                link_error=envelope.embed["errbacks"],
                chain=envelope.embed["chain"],
                chord=envelope.embed["chord"],
                eta=envelope.headers["eta"],
                expires=envelope.headers["expires"],
                time_limit=limits[0],
                soft_time_limit=limits[1],
                ignore_result=envelope.headers["ignore_result"],
                serializer="json",
                **options,
            )
        except SEND_ERRORS as exc:
            raise BrokerUnavailable(f"cannot publish run {run_id}: {exc.__class__.__name__}: {exc}") from exc
        except Exception as exc:
            self._not_published(run_id, exc)
            raise
        log.info(
            "run published",
            extra={
                "event": "run.published",
                "run_id": run_id,
                "job_id": message.get("job_id"),
                "status": where.status.value,
                "worker": where.worker_id,
                "reason": where.reason,
            },
        )
        return result

    # -- helpers ------------------------------------------------------------------------------
    def _message_of_stored_job(self, kwargs: dict) -> dict:
        """The message for an attempt of the stored job ``kwargs["job_id"]``, built from the
        job; InvalidJob when the caller's kwargs say otherwise about any body field."""
        job_id = kwargs["job_id"]
        job = self.jobs.find(job_id) if isinstance(job_id, str) else None
        if job is None or job.deleted_at:
            raise InvalidJob({"job_id": [f"no job {job_id!r}"]})
        attempt = kwargs.get("attempt", 1)
        raw = build_message(job, attempt if isinstance(attempt, int) else 1)
        if kwargs.get("param_values") is not None:  # checked against the stored declaration as given
            raw["param_values"] = kwargs["param_values"]
        built = validate(raw)
        given = {key: value for key, value in kwargs.items() if key in MESSAGE_BODY_FIELDS}
        unknown = sorted(set(kwargs) - set(MESSAGE_BODY_FIELDS) - set(MESSAGE_FIELDS))
        if unknown:
            raise InvalidJob({key: ["Unknown field."] for key in unknown})
        claimed = validate({**built, **given})
        differ = [key for key in given if claimed.get(key) != built.get(key)]
        if differ:
            raise InvalidJob(
                {
                    key: [f"differs from stored job {job_id!r}: a message for a stored job runs it as stored"]
                    for key in differ
                }
            )
        return built

    def _message_of(self, args: Any, kwargs: Any) -> dict:
        """A submission's message, validated (built from the stored job when it names one)."""
        if isinstance(kwargs, dict) and kwargs.get("job_id") is not None and not args:
            return self._message_of_stored_job(kwargs)
        return validate(kwargs, args)

    def step_message(self, kwargs: Any, submitter: Submitter) -> dict:
        """A canvas step's message, validated and checked like the task's; a step without a
        job gets a job id now (its job is stored when it starts: ``hydra.dispatch.continuation``)."""
        message = self._message_of((), submitter.settle(kwargs))
        submitter.check(message, self.jobs)
        if message.get("job_id") is None:
            message["job_id"] = new_id()
        return message

    def _store_job(self, message: dict, *, first_run_id: str | None = None) -> Job:
        """Store the job of a message submitted from Python, under the id it carries (counted
        as submitted from Python; with ``first_run_id``, marked undispatched until its run is
        recorded; a canvas step's job has none until the step starts)."""
        spec = {key: value for key, value in message.items() if key not in MESSAGE_FIELDS}
        job = self.jobs.create(spec, source="python", first_run_id=first_run_id, job_id=message["job_id"])
        metrics.job_submitted("python")
        return job

    def watch(self, run_id: str) -> None:
        """Note the run as sent before its record says so (``hydra.broker.sent``): should this
        process die before the message leaves, the controller publishes it again."""
        try:
            SentIndex().add(run_id, clock.epoch())  # until a worker claims it (control.sweeps)
        except BrokerUnavailable:  # the send will not get through either: recorded unsent then
            pass

    def _not_published(self, run_id: str, exc: Exception) -> None:
        """A send failed for a reason that is not the broker's (a bug): the run ends with it."""
        log.exception("run %s could not be published", run_id, extra={"event": "run.publish_crashed", "run_id": run_id})
        error = f"could not be published: {exc.__class__.__name__}: {exc}"
        self.runs.finish(
            run_id,
            Outcome(status=RunStatus.FAILED, error=error),
            status=RunStatus.FAILED,
            decision="not published",
            by="hydra",
        )
        try:
            SentIndex().remove(run_id)
        except BrokerUnavailable:
            pass

    def _record(self, run_id: str, job: Job, message: dict, where: Dispatched, chain: Chain) -> bool:
        """Record the attempt a (validated) message runs, with its execution digest and its
        parameters' values, its message about to be sent: noted as sent (:meth:`watch`) in the
        same round trip as the run's index entries, before the record is inserted."""
        digest, given = execution_digest(message), Values.of_message(message)
        bound = Binding(message["fanout_id"], message["bound_worker"]) if message.get("bound_worker") else None
        return self.runs.record(
            run_id,
            job,
            attempt=message["attempt"],
            placement=where,
            chain=chain,
            digest=digest,
            params=given,
            binding=bound,
            sent_at=clock.epoch(),  # until a worker claims it (control.sweeps)
        )

    def left_unsent(
        self,
        run_id: str,
        job: Job,
        attempt: int,
        exc: Exception,
        chain: Chain = Chain(),
        params: Values | None = None,
        binding: Binding | None = None,
    ) -> Dispatched:
        """Record an attempt whose message could not be sent: pending, for the controller (with
        its parameters' values, which it is published with)."""
        where = unsent(run_id, exc)
        log.warning(
            "publish failed for run %s of job %s: %s",
            run_id,
            job.id,
            exc,
            extra={"event": "run.publish_failed", "run_id": run_id, "job_id": job.id},
        )
        self.runs.record(run_id, job, attempt=attempt, placement=where, chain=chain, params=params, binding=binding)
        return where

    def _result(self, run_id: str) -> Any:
        return self.app.AsyncResult(run_id)


def _broker_priority(value: Any) -> int | None:
    """The broker priority a message carried (not signed: one that is no level reads as
    none, and the message's own priority decides)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value in LEVELS else None


def _queue_of(message: Any) -> str | None:
    info = getattr(message, "delivery_info", None) or {}
    return info.get("routing_key") if isinstance(info, dict) else None
