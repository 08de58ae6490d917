"""Response and query-string schemas. The job body itself is ``hydra.spec.JobSpecSchema``."""
from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from hydra.spec import AffinitySchema
from hydra.status import RunStatus, parse_status

STATUS_WORDS = [s.value for s in RunStatus] + ["completed"]


class StatusField(fields.String):
    """A run status; seed 003's ``completed`` is accepted for ``succeeded``."""

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


class JobCreatedSchema(Schema):
    id = fields.String(metadata={"description": "The job id (same as job_id)."})
    job_id = fields.String()
    run_id = fields.String(allow_none=True, metadata={"description": "The first run, when it runs now."})
    status = fields.String(metadata={"description": "queued (on a worker) or pending (waiting for one)."})
    worker_id = fields.String(allow_none=True)
    pending_reason = fields.String(allow_none=True)


class JobSchema(Schema):
    id = fields.String(attribute="_id")
    name = fields.String()
    user = fields.String()
    affinity = fields.Nested(AffinitySchema)
    command = fields.String(allow_none=True)
    args = fields.List(fields.String(), allow_none=True)
    shell = fields.String(allow_none=True)
    env = fields.Dict(keys=fields.String(), values=fields.String())
    cwd = fields.String(allow_none=True)
    retries = fields.Integer()
    timeout = fields.Float(allow_none=True)
    priority = fields.Integer()
    schedule = fields.String(allow_none=True)
    timezone = fields.String(allow_none=True)
    scheduled_at = fields.DateTime(allow_none=True)
    status = fields.String(allow_none=True, metadata={"description": "Status of the job's latest run."})
    last_run_id = fields.String(allow_none=True)
    source = fields.String(metadata={"description": "api or python (apply_async)."})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class RunSchema(Schema):
    id = fields.String(attribute="_id")
    job_id = fields.String()
    job_name = fields.String(allow_none=True)
    user = fields.String(allow_none=True)
    attempt = fields.Integer()
    retry_of = fields.String(allow_none=True)
    lost = fields.Integer(allow_none=True, metadata={"description": "Earlier attempts of this chain that were lost."})
    status = fields.String()
    outcome = fields.String(allow_none=True, metadata={
        "description": "The attempt's raw outcome (succeeded, failed, timed_out, lost, cancelled) when "
                       "`status` says what followed (retrying, dead_letter)."})
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
    queued_at = fields.DateTime(allow_none=True)
    placed_at = fields.DateTime(allow_none=True)
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    duration = fields.Float(allow_none=True)
    ended_by = fields.String(allow_none=True)


class WorkerSchema(Schema):
    id = fields.String(attribute="_id")
    os = fields.String()
    tags = fields.List(fields.String())
    allowed_users = fields.List(fields.String(), allow_none=True,
                                metadata={"description": "null means any user."})
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
    status_filter = StatusField(load_default=None, metadata={"description": "Seed 003's name for status."})
    user = fields.String(load_default=None)
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 1000))


class RunListArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))


class HealthSchema(Schema):
    status = fields.String(metadata={"description": "ok, or down when a required service is down."})
    down = fields.List(fields.String(), metadata={"description": "Services that are down."})
    message = fields.String()
    redis = fields.Dict()
    mongodb = fields.Dict()
    controller = fields.Dict()
    workers = fields.Dict()
