"""Dispatching an attempt: one pipeline, each step a plain function, whoever publishes.

::

    build_message(job, attempt) -> validate(message) -> place (the affinity router)
        -> record (job_runs: queued on a worker, or pending with the reason) -> send

:meth:`Pipeline.dispatch` runs it for an attempt of a stored job (the API, the controller,
retries, failover, cron ticks) and returns where the attempt went. A Python user's
``apply_async`` / ``send_task`` reaches :meth:`Pipeline.accept` (``Hydra.send_task`` calls
it): the same steps, after giving a message without ``job_id`` a job of its own. Messages
taken back from a queue (``hydra.pending``, a gone worker's queue) go through the same
placing, recording and sending (:meth:`Pipeline.republish`).

The record is written before the message is sent, so a worker never meets an attempt
nobody recorded. When the broker cannot be reached, the attempt is recorded pending with
the reason and no queue, and the controller publishes it once the broker is back
(``hydra.dispatch.attempts.publish_delayed``): an accepted job is never lost to a broker
outage.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any, Protocol

from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from hydra import clock, names
from hydra.broker import metrics
from hydra.broker.sent import SentIndex
from hydra.dispatch import signing
from hydra.dispatch.router import AffinityRouter, placement_of, queue_placement
from hydra.errors import BrokerUnavailable, InvalidJob
from hydra.model.priority import LEVELS, broker_level
from hydra.model.records import Chain, Dispatched, Job
from hydra.model.spec import MESSAGE_BODY_FIELDS, MESSAGE_FIELDS, execution_digest, load_message, message_kwargs
from hydra.model.status import RunStatus
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


# --- the steps ------------------------------------------------------------------------------


def build_message(job: Job, attempt: int) -> dict:
    """The kwargs of the message that runs attempt ``attempt`` of ``job``."""
    return message_kwargs(job.spec(), job_id=job.id, attempt=attempt)


def validate(kwargs: Any, args: Any = ()) -> dict:
    """The message's kwargs, validated and normalized like a REST job body; raises InvalidJob."""
    if args:
        raise InvalidJob({"args": ["hydra.run_command takes keyword arguments only; use apply_async(kwargs={...})"]})
    return load_message(kwargs or {})


def shadow_name(message: dict) -> str:
    """The name Flower's task list, Celery's logs and its events show for an attempt
    (Celery's ``shadow``): ``hydra: nightly-build #2``. The message's real task name stays
    ``hydra.run_command``, which is what routing, signing and the worker's checks use."""
    return f"hydra: {message.get('name') or '?'} #{message.get('attempt', 1)}"


def summary(message: dict) -> str:
    """What logs, events and Flower show of a message (never its environment's values)."""
    command = message.get("command") or " ".join(message.get("args") or [])
    if message.get("executor") == "http":
        command = "{method} {url}".format(**(message.get("http") or {"method": "?", "url": "?"}))
    if len(command) > 160:
        command = command[:157] + "..."
    return repr(
        {
            "job": message.get("name"),
            "user": message.get("user"),
            "command": command,
            "attempt": message.get("attempt", 1),
        }
    )


def unsent(run_id: str, exc: Exception) -> Dispatched:
    """Where an attempt is when its message could not be sent: pending, for the controller."""
    return Dispatched(
        run_id,
        RunStatus.PENDING,
        reason=f"broker unavailable ({exc.__class__.__name__}); will be published when it is back",
    )


# --- the pipeline ----------------------------------------------------------------------------


class Pipeline:
    """The steps, with what they need: the app to send with, the router, and the stores."""

    def __init__(self, app: Publisher, *, router: AffinityRouter | None = None, runs: RunStore | None = None):
        self.app = app
        self.router = router or AffinityRouter()
        self.runs = runs or RunStore()
        self.jobs: JobStore = self.runs.jobs

    def dispatch(self, job: Job, *, attempt: int = 1, chain: Chain = Chain(), run_id: str | None = None) -> Dispatched:
        """Publish attempt ``attempt`` of the stored ``job``; returns where it went."""
        run_id = run_id or new_id()
        message = validate(build_message(job, attempt))
        try:
            where = placement_of(run_id, self.router.choose(message, run_id))
        except BrokerUnavailable as exc:
            return self._left_unsent(run_id, job, attempt, chain, exc)
        self.runs.record(run_id, job, attempt=attempt, placement=where, chain=chain, digest=execution_digest(message))
        try:
            self.send(run_id, message, where, chain, retry=True, retry_policy=SEND_RETRY)
        except BrokerUnavailable as exc:
            return self._left_unsent(run_id, job, attempt, chain, exc)
        return where

    def accept(self, args: Any, kwargs: Any, options: dict) -> Any:
        """A ``hydra.run_command`` published from outside (``apply_async``, ``send_task``):
        validate, give it a job when it has none, place it (unless the caller named a queue),
        record, send. Returns Celery's AsyncResult.

        A message naming a stored job (``job_id``) runs that job as stored: any body field
        it gives that differs from the job's is refused (InvalidJob), never sent. Messages
        are JSON: another ``serializer`` is refused, as is ``compression``."""
        serializer = options.get("serializer")
        if serializer not in (None, "json"):
            raise InvalidJob({"serializer": [f"hydra.run_command messages are JSON only, not {serializer!r}"]})
        if options.get("compression"):
            raise InvalidJob({"compression": ["hydra.run_command messages are not compressed"]})
        if isinstance(kwargs, dict) and kwargs.get("job_id") is not None and not args:
            message = self._message_of_stored_job(kwargs)
        else:
            message = validate(kwargs, args)
        options = {key: value for key, value in options.items() if key not in ("serializer", "compression")}
        run_id = options.pop("task_id", None) or new_id()
        job = self._job_of(message, run_id)
        chain = Chain.from_headers(options.get("headers") or {})
        named = options.get("queue") or options.get("routing_key")
        try:
            if named:
                where = queue_placement(run_id, str(getattr(named, "name", named)))
                if where.status == RunStatus.PENDING:
                    where = placement_of(run_id, self.router.place(message))
            else:
                where = placement_of(run_id, self.router.choose(message, run_id))
        except BrokerUnavailable as exc:
            self._left_unsent(run_id, job, message["attempt"], chain, exc)
            return self._result(run_id)
        self.runs.record(
            run_id, job, attempt=message["attempt"], placement=where, chain=chain, digest=execution_digest(message)
        )
        try:
            return self.send(run_id, message, where, chain, **options)
        except BrokerUnavailable as exc:
            self._left_unsent(run_id, job, message["attempt"], chain, exc)
            return self._result(run_id)

    def republish(self, message: Any, *, only_if_placeable: bool) -> Republished:
        """Send a message taken from a queue (``message`` is kombu's) through the router again,
        and acknowledge it. Dropped when its attempt ended or was claimed meanwhile. With
        ``only_if_placeable``, a message no worker can take yet (or whose namespace is at a
        limit) is left unacknowledged: the caller puts it back (``message.requeue()``) once
        it has looked at the rest of the queue.

        A message Hydra did not sign, cannot decode or cannot validate is never sent again:
        it is acknowledged and recorded (``RunStore.refuse``), so one bad message cannot stall
        placement and no forged message is laundered by signing it here."""
        headers = message.headers if isinstance(message.headers, dict) else {}
        run_id = headers.get("id")
        if not isinstance(run_id, str) or not run_id:
            run_id = None
        try:
            _args, kwargs, _embed = message.payload
        except Exception as exc:  # noqa: BLE001 - kombu's decoders raise anything (pickle, zlib, json)
            # (hydra.broker.envelope's stand-ins for envelopes kombu cannot read land here too)
            self._refuse_message(message, run_id, f"undecodable message ({message.content_type}): {exc}")
            return Republished.DROPPED
        if run_id is not None and (self.runs.end_of(run_id) is not None or self.runs.start_of(run_id) is not None):
            message.ack()  # ended (cancelled while it waited), or a copy of an attempt someone claimed
            return Republished.DROPPED
        reason = signing.verify(
            run_id, str(headers.get("task")), kwargs, _chain_or_none(headers), headers.get(signing.HEADER)
        )
        if reason is None and headers.get("task") != names.TASK_RUN_COMMAND:
            reason = f"not a {names.TASK_RUN_COMMAND} message"
        if reason is not None:
            self._refuse_message(message, run_id, reason)
            return Republished.DROPPED
        try:
            kwargs = validate(kwargs)
        except InvalidJob as exc:
            self._refuse_message(message, run_id, f"invalid message: {exc.errors}")
            return Republished.DROPPED
        assert run_id is not None  # verify() refuses a message without one
        placement = self.router.choose(kwargs, run_id)
        if placement.worker is None and only_if_placeable:
            return Republished.OVER_QUOTA if placement.over_quota else Republished.WAITING
        if placement.worker is None:  # back to waiting: it holds no place on a worker
            self.router.slots.released(kwargs["namespace"], run_id)
        where = placement_of(run_id, placement)
        job = (self.jobs.find(kwargs["job_id"]) if kwargs.get("job_id") else None) or Job.from_message(kwargs)
        chain = Chain.from_headers(message.headers)
        self.runs.record(
            run_id, job, attempt=kwargs["attempt"], placement=where, chain=chain, digest=execution_digest(kwargs)
        )
        self.send(run_id, kwargs, where, chain, priority=_broker_priority(message.properties.get("priority")))
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

    def send(self, run_id: str, message: dict, where: Dispatched, chain: Chain, **options) -> Any:
        """Send the message to the queue ``where`` names (or the caller's ``queue``);
        raises BrokerUnavailable."""
        if options.get("priority") is None:
            options["priority"] = broker_level(message.get("priority"))
        options["headers"] = {
            **(options.get("headers") or {}),
            **chain.headers(),
            signing.HEADER: signing.sign(run_id, names.TASK_RUN_COMMAND, message, chain),
        }
        options["queue"] = options.get("queue") or where.queue or names.PENDING_QUEUE
        options["serializer"] = "json"
        try:
            result = self.app.publish(
                names.TASK_RUN_COMMAND,
                message,
                task_id=run_id,
                kwargsrepr=summary(message),
                shadow=options.pop("shadow", None) or shadow_name(message),
                **options,
            )
        except SEND_ERRORS as exc:
            raise BrokerUnavailable(f"cannot publish run {run_id}: {exc.__class__.__name__}: {exc}") from exc
        try:
            SentIndex().add(run_id, clock.epoch())  # until a worker claims it (Controller.revive_vanished)
        except BrokerUnavailable:
            pass
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
        built = validate(build_message(job, attempt if isinstance(attempt, int) else 1))
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

    def _job_of(self, message: dict, run_id: str) -> Job:
        """The stored job a message runs; a message without ``job_id`` gets one (counted as
        submitted from Python; marked undispatched until its run is recorded)."""
        job_id = message.get("job_id")
        if job_id is None:
            spec = {key: value for key, value in message.items() if key not in MESSAGE_FIELDS}
            job = self.jobs.create(spec, source="python", first_run_id=run_id)
            metrics.job_submitted("python")
            message["job_id"] = job.id
            return job
        found = self.jobs.find(job_id)
        if found is None:
            raise InvalidJob({"job_id": [f"no job {job_id!r}"]})
        return found

    def _left_unsent(self, run_id: str, job: Job, attempt: int, chain: Chain, exc: Exception) -> Dispatched:
        where = unsent(run_id, exc)
        log.warning(
            "publish failed for run %s of job %s: %s",
            run_id,
            job.id,
            exc,
            extra={"event": "run.publish_failed", "run_id": run_id, "job_id": job.id},
        )
        self.runs.record(run_id, job, attempt=attempt, placement=where, chain=chain)
        return where

    def _result(self, run_id: str) -> Any:
        return self.app.AsyncResult(run_id)


def _chain_or_none(headers: dict) -> Chain:
    """The chain a message's headers claim (a malformed one reads as no chain: the signature
    then fails, since it was made over the real one)."""
    try:
        return Chain.from_headers(headers)
    except (TypeError, ValueError):
        return Chain(retry_of="<malformed>")


def _broker_priority(value: Any) -> int | None:
    """The broker priority a message carried (not signed: one that is no level reads as
    none, and the message's own priority decides)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value in LEVELS else None


def _queue_of(message: Any) -> str | None:
    info = getattr(message, "delivery_info", None) or {}
    return info.get("routing_key") if isinstance(info, dict) else None
