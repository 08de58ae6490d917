"""Response and query-string schemas. The job body itself is ``hydra.spec.JobSpecSchema``."""

from __future__ import annotations

import logging

from flask import g, has_request_context
from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, pre_load, validate

from hydra.errors import Conflict
from hydra.model import cursor
from hydra.model.records import Job, Run
from hydra.model.spec import NAME_RE, AffinitySchema, BackoffSchema, HttpSchema, JobSpecSchema
from hydra.model.status import FILTER_WORDS, parse_status

log = logging.getLogger(__name__)
#: The response header that says how many stored records a listing skipped (and which).
SKIPPED_HEADER = "X-Skipped-Records"


class Unrenderable(Conflict):
    """A stored record this version cannot render (flagged for an operator)."""


class Tolerant:
    """A schema mixin: a stored record that cannot be rendered never breaks a listing. In a
    list it is skipped, flagged in the store (``unrenderable``: the reason) and logged, and
    the answer says so in the ``X-Skipped-Records`` header; alone it is a 409."""

    def _serialize(self, obj, *, many=False):
        if many and obj is not None:
            rendered = []
            for item in obj:
                try:
                    rendered.append(super()._serialize(item, many=False))
                except Exception as exc:  # noqa: BLE001 - whatever a stored record holds
                    _skip(item, exc)
            return rendered
        try:
            return super()._serialize(obj, many=False)
        except Exception as exc:  # noqa: BLE001
            _flag(obj, exc)
            raise Unrenderable(
                f"{type(obj).__name__.lower()} {getattr(obj, 'id', '?')!r} is stored in a form this version cannot "
                f"render ({exc.__class__.__name__}); it is flagged for an operator"
            ) from None


def _flag(item, exc: Exception) -> None:
    from hydra.errors import Unavailable
    from hydra.store.jobs import JobStore
    from hydra.store.runs import RunStore

    reason = f"{exc.__class__.__name__}: {exc}"[:500]
    ident = getattr(item, "id", None)
    log.warning(
        "stored record cannot be rendered: %s",
        reason,
        extra={"event": "record.unrenderable", "job_id" if isinstance(item, Job) else "run_id": ident},
    )
    store = JobStore() if isinstance(item, Job) else RunStore() if isinstance(item, Run) else None
    if store is not None and ident is not None and getattr(item, "unrenderable", None) != reason:
        try:
            store.flag_unrenderable(ident, reason)
        except Unavailable:
            pass


def _skip(item, exc: Exception) -> None:
    _flag(item, exc)
    if has_request_context():
        g.setdefault("hydra_skipped", []).append(str(getattr(item, "id", "?")))


STATUS_WORDS = list(FILTER_WORDS)


class StatusField(fields.String):
    """A run status; ``completed`` is accepted for ``succeeded``."""

    def __init__(self, **kwargs):
        # Documented as an enum, so clients (and schemathesis) know the accepted words.
        kwargs["metadata"] = {"enum": STATUS_WORDS, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        word = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parse_status(word)
        except ValueError:
            raise ValidationError(f"unknown status {word!r}; use one of {', '.join(STATUS_WORDS)}") from None


class CursorField(fields.String):
    """An opaque page cursor (from the ``X-Next-Cursor`` header of the previous page)."""

    def _deserialize(self, value, attr, data, **kwargs):
        token = super()._deserialize(value, attr, data, **kwargs)
        try:
            cursor.decode(token)
        except cursor.BadCursor as exc:
            raise ValidationError(str(exc)) from None
        return token


#: How a listing says where its next page starts (documented on each listing).
NEXT_CURSOR_HEADER = {
    "X-Next-Cursor": {
        "description": "Pass as `cursor` to get the next page; absent on the last page.",
        "schema": {"type": "string"},
    }
}


#: What an answer shows for the value of an environment variable: values are write-only.
REDACTED = "<redacted>"


class RedactedValues(fields.Dict):
    """A job's ``env``: the variables' names, each value shown as :data:`REDACTED`."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return {str(name): REDACTED for name in value}


class JobCreatedSchema(Schema):
    id = fields.String(metadata={"description": "The job id (same as job_id)."})
    job_id = fields.String()
    run_id = fields.String(
        allow_none=True, metadata={"description": "The first run (for a cron job: none until its first tick)."}
    )
    status = fields.String(
        metadata={
            "description": "queued (on a worker), pending (waiting for one) or scheduled (starts at `scheduled_at`)."
        }
    )
    worker_id = fields.String(allow_none=True)
    pending_reason = fields.String(allow_none=True)
    scheduled_at = fields.DateTime(
        allow_none=True,
        metadata={"description": "When a scheduled job's first run starts (one-off time, or the next cron tick)."},
    )


class JobSchema(Tolerant, Schema):
    id = fields.String()
    name = fields.String()
    user = fields.String()
    namespace = fields.String()
    affinity = fields.Nested(AffinitySchema)
    command = fields.String(allow_none=True)
    args = fields.List(fields.String(), allow_none=True)
    shell = fields.String(allow_none=True)
    env = RedactedValues(
        keys=fields.String(),
        values=fields.String(),
        metadata={
            "description": f"The names of its environment variables; values are write-only (shown as `{REDACTED}`)."
        },
    )
    cwd = fields.String(allow_none=True)
    retries = fields.Integer()
    timeout = fields.Float(allow_none=True)
    priority = fields.Integer()
    schedule = fields.String(allow_none=True)
    timezone = fields.String(allow_none=True)
    scheduled_at = fields.DateTime(allow_none=True)
    misfire = fields.String(allow_none=True)
    overlap = fields.String(allow_none=True)
    backoff = fields.Nested(BackoffSchema, allow_none=True)
    max_lost = fields.Integer(allow_none=True)
    executor = fields.String(allow_none=True)
    http = fields.Nested(HttpSchema, allow_none=True)
    status = fields.String(allow_none=True, metadata={"description": "Status of the job's latest run."})
    last_run_id = fields.String(allow_none=True)
    source = fields.String(metadata={"description": "api or python (apply_async)."})
    paused = fields.Boolean(allow_none=True, metadata={"description": "A paused job's schedule does not fire."})
    paused_at = fields.DateTime(allow_none=True)
    next_run_at = fields.Method(
        "_next_run_at",
        allow_none=True,
        metadata={"description": "The next cron tick (none when not scheduled, paused or deleted)."},
    )
    last_fire_at = fields.DateTime(allow_none=True, metadata={"description": "The last cron tick handled."})
    last_skipped_at = fields.DateTime(
        allow_none=True,
        metadata={"description": "The last tick skipped (overlap forbid, or a missed tick with misfire skip)."},
    )
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    deleted_at = fields.DateTime(
        allow_none=True, metadata={"description": "Set once the job was deleted; its runs stay readable."}
    )

    def _next_run_at(self, job):
        moment = job.next_run_at()
        return moment.isoformat() if moment else None


class RefusalSchema(Schema):
    at = fields.DateTime(metadata={"description": "When it was refused."})
    by = fields.String(metadata={"description": "The worker (or controller) that refused it."})
    reason = fields.String(metadata={"description": "Why (unsigned, tampered, replayed, undecodable, vanished)."})


class RunSchema(Tolerant, Schema):
    id = fields.String()
    job_id = fields.String()
    job_name = fields.String(allow_none=True)
    user = fields.String(allow_none=True)
    namespace = fields.String()
    attempt = fields.Integer()
    retry_of = fields.String(allow_none=True)
    lost = fields.Integer(allow_none=True, metadata={"description": "Earlier attempts of this chain that were lost."})
    status = fields.String()
    outcome = fields.String(
        allow_none=True,
        metadata={
            "description": "The attempt's raw outcome (succeeded, failed, timed_out, lost, cancelled) when "
            "`status` says what followed (retrying, dead_letter)."
        },
    )
    decision = fields.String(allow_none=True)
    not_before = fields.DateTime(allow_none=True, metadata={"description": "A delayed run starts at this time."})
    worker_id = fields.String(allow_none=True)
    queue = fields.String(allow_none=True)
    pending_reason = fields.String(allow_none=True)
    priority = fields.Integer(allow_none=True)
    command = fields.String(allow_none=True)
    args = fields.List(fields.String(), allow_none=True)
    shell = fields.String(allow_none=True)
    returncode = fields.Integer(allow_none=True)
    stdout = fields.String()
    stderr = fields.String()
    stdout_bytes = fields.Integer(allow_none=True)
    stderr_bytes = fields.Integer(allow_none=True)
    stdout_truncated = fields.Boolean(allow_none=True)
    stderr_truncated = fields.Boolean(allow_none=True)
    error = fields.String(allow_none=True)
    executor = fields.String(allow_none=True)
    url = fields.String(allow_none=True, metadata={"description": "An http run's URL."})
    cancel_requested_at = fields.DateTime(allow_none=True)
    retried_by = fields.String(allow_none=True, metadata={"description": "The run a manual retry started."})
    queued_at = fields.DateTime(allow_none=True)
    placed_at = fields.DateTime(allow_none=True)
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    duration = fields.Float(allow_none=True)
    ended_by = fields.String(allow_none=True)
    refusals = fields.List(
        fields.Nested(RefusalSchema),
        metadata={
            "description": "Deliveries of a message for this run that were refused and not run (unsigned, "
            "tampered, replayed, undecodable), or published again because the message vanished."
        },
    )
    revived = fields.Integer(
        allow_none=True, metadata={"description": "Times it was published again because its message had vanished."}
    )


class WorkerSchema(Schema):
    id = fields.String()
    os = fields.String()
    tags = fields.List(fields.String())
    allowed_users = fields.List(fields.String(), allow_none=True, metadata={"description": "null means any user."})
    namespaces = fields.List(
        fields.String(), allow_none=True, metadata={"description": "The namespaces it runs jobs of; null means all."}
    )
    max_concurrency = fields.Integer()
    current_running = fields.Integer()
    load = fields.Integer(metadata={"description": "Runs routed to the worker and not finished."})
    status = fields.String(metadata={"description": "online or offline."})
    last_heartbeat = fields.DateTime(allow_none=True)
    heartbeat_interval = fields.Float(allow_none=True)
    queue = fields.String()
    shells = fields.List(fields.String())
    hostname = fields.String(allow_none=True)
    pid = fields.Integer(allow_none=True)
    processed = fields.Integer(allow_none=True)
    first_seen = fields.DateTime(allow_none=True)


class JobListArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    status = StatusField(load_default=None)
    status_filter = StatusField(load_default=None, metadata={"description": "Another name for status."})
    user = fields.String(load_default=None)
    namespace = fields.String(load_default=None)
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 1000))
    cursor = CursorField(load_default=None)


class RunListArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    cursor = CursorField(load_default=None)


class DeadLetterArgs(RunListArgs):
    job_id = fields.String(load_default=None)
    include_retried = fields.Boolean(
        load_default=False, metadata={"description": "Also list dead letters that were retried already."}
    )


class JobPatchSchema(JobSpecSchema):
    """Some fields of a job body (load it with ``partial=True``): they replace the stored ones,
    then the merged body is validated as a whole (hydra.control.update)."""

    class Meta:
        unknown = RAISE

    def check_combination(self, data, **kwargs):  # not a hook here: checked on the merged body
        return None

    @pre_load
    def something_to_change(self, data, **kwargs):
        if isinstance(data, dict) and not data:
            raise ValidationError("give at least one field to change", "_schema")
        return data


class ScheduleSchema(JobSpecSchema):
    """A one-off task: ``{"command": "./run_cleanup.sh", "scheduled_at": ""}``. Any job field
    may be added; ``name`` defaults to one made from the command (and ``user``, as for every
    job, to the caller)."""

    class Meta:
        unknown = RAISE

    name = fields.String(load_default=None, validate=[validate.Length(1, 200), validate.Regexp(NAME_RE)])


class TaskSchema(Schema):
    """A one-off task's status view of a job: its latest run's state and times."""

    id = fields.String(metadata={"description": "The task (job) id."})
    job_id = fields.String()
    run_id = fields.String(allow_none=True)
    command = fields.String(allow_none=True)
    scheduled_at = fields.DateTime(allow_none=True)
    status = fields.String(
        metadata={
            "description": "scheduled (its time has not come), then the run's status: pending, queued, "
            "running, succeeded, failed, timed_out, cancelled, lost, retrying, dead_letter."
        }
    )
    worker_id = fields.String(allow_none=True)
    created_at = fields.DateTime(allow_none=True)
    picked_at = fields.DateTime(allow_none=True, metadata={"description": "When a worker was chosen."})
    started_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True, metadata={"description": "When it succeeded."})
    failed_at = fields.DateTime(allow_none=True, metadata={"description": "When it ended without success."})
    returncode = fields.Integer(allow_none=True)
    stdout = fields.String(allow_none=True)
    stderr = fields.String(allow_none=True)
    error = fields.String(allow_none=True)


class HealthSchema(Schema):
    status = fields.String(metadata={"description": "ok, or down when a required service is down."})
    down = fields.List(fields.String(), metadata={"description": "Services that are down."})
    message = fields.String()
    redis = fields.Dict()
    mongodb = fields.Dict()
    controller = fields.Dict()
    workers = fields.Dict()
