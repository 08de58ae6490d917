"""Response and query-string schemas. The job body itself is ``hydra.spec.JobSpecSchema``."""

from __future__ import annotations

from flask import g, has_request_context
from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, pre_load, validate

from hydra.control import rendering
from hydra.control.rendering import Unrenderable  # noqa: F401 - its 409
from hydra.model.fanout import PlacementSchema
from hydra.model.idempotency import IdempotencyKey
from hydra.model.notify import EVENTS, redacted_targets
from hydra.model.params import ParamSchema
from hydra.model.queries import (  # noqa: F401 - the query arguments, shared with gRPC
    STATUS_WORDS,
    CursorField,
    DeadLetterArgs,
    JobListArgs,
    RunListArgs,
    StatusField,
)
from hydra.model.redaction import REDACTED, redacted, redacted_http
from hydra.model.resources import ResourcesSchema
from hydra.model.spec import NAME_RE, AffinitySchema, BackoffSchema, HttpSchema, JobSpecSchema, shown_in_answers

#: The response header that says how many stored records a listing skipped (and which).
SKIPPED_HEADER = "X-Skipped-Records"


class Tolerant:
    """A schema mixin: a stored record that cannot be rendered never breaks a listing
    (``hydra.control.rendering``): in a list it is skipped, flagged and logged, and the answer
    says so in the ``X-Skipped-Records`` header; alone it is a 409."""

    def _serialize(self, obj, *, many=False):
        one = super()._serialize  # type: ignore[misc]
        if many and obj is not None:
            rendered, skipped = rendering.render_each(obj, lambda item: one(item, many=False))
            if skipped and has_request_context():
                g.setdefault("hydra_skipped", []).extend(skipped)
            return rendered
        return rendering.render_one(obj, lambda item: one(item, many=False))


#: How a listing says where its next page starts (documented on each listing).
NEXT_CURSOR_HEADER = {
    "X-Next-Cursor": {
        "description": "Pass as `cursor` to get the next page; absent on the last page.",
        "schema": {"type": "string"},
    }
}

#: The header that marks an answer to a repeated request (same Idempotency-Key and body).
REPLAYED = "Idempotent-Replayed"
REPLAYED_HEADER = {
    REPLAYED: {
        "description": "`true` when this answers an earlier request with the same `Idempotency-Key`: "
        "no job was made now.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


class IdempotencyHeaders(Schema):
    """The optional ``Idempotency-Key`` of a submission (``hydra.model.idempotency``)."""

    class Meta:
        unknown = EXCLUDE

    key = IdempotencyKey(data_key="Idempotency-Key")


class RedactedValues(fields.Dict):
    """A job's ``env``: the variables' names, each value shown as :data:`REDACTED`."""

    def _serialize(self, value, attr, obj, **kwargs):
        return redacted(value)


class RedactedRequest(fields.Nested):
    """A webhook's request: its headers' names, each value shown as :data:`REDACTED`, and a
    body shown as :data:`REDACTED` (``hydra.model.redaction``)."""

    def _serialize(self, nested_obj, attr, obj, **kwargs):
        return super()._serialize(redacted_http(nested_obj), attr, obj, **kwargs)


class ShownWebhookSchema(Schema):
    url = fields.String(metadata={"description": "Where the signed JSON body is POSTed."})
    secret = fields.String(metadata={"description": f"Write-only: always `{REDACTED}`."})


class ShownSlackSchema(Schema):
    url = fields.String(metadata={"description": f"Write-only (the URL is the credential): always `{REDACTED}`."})


class ShownTargetSchema(Schema):
    """A notification target as answers show it (``hydra.model.notify.TargetSchema`` is what a body gives)."""

    on = fields.List(fields.String(), metadata={"description": f"Events it hears: {', '.join(EVENTS)}."})
    webhook = fields.Nested(ShownWebhookSchema, metadata={"description": "A generic webhook (its secret redacted)."})
    slack = fields.Nested(ShownSlackSchema, metadata={"description": "A Slack-compatible incoming webhook."})


class RedactedTargets(fields.List):
    """Notification targets: a webhook's secret and a Slack URL shown as :data:`REDACTED`."""

    def _serialize(self, value, attr, obj, **kwargs):
        return super()._serialize(redacted_targets(value), attr, obj, **kwargs)


def notify_answer(description: str) -> RedactedTargets:
    return RedactedTargets(
        fields.Nested(ShownTargetSchema),
        allow_none=True,
        metadata={
            "description": f"{description} A webhook's `secret` and a Slack `url` are write-only (shown as "
            f"`{REDACTED}`); a PATCH that leaves `notify` out keeps them."
        },
    )


class AttemptSchema(Schema):
    at = fields.DateTime(metadata={"description": "When the attempt was made."})
    status_code = fields.Integer(
        allow_none=True, metadata={"description": "The target's HTTP status (none: no answer)."}
    )
    error = fields.String(allow_none=True, metadata={"description": "Why it was not delivered (none: delivered)."})


class DeliverySchema(Schema):
    kind = fields.String(metadata={"description": "webhook or slack."})
    event = fields.String(metadata={"description": f"The event it was sent for: one of {', '.join(EVENTS)}."})
    url = fields.String(metadata={"description": f"The webhook's URL (a Slack URL is a secret: `{REDACTED}`)."})
    state = fields.String(
        metadata={
            "description": "pending (an attempt is due), delivered (a 2xx answer), failed (every attempt failed) or "
            "refused (the webhook egress guard refused the address)."
        }
    )
    attempts = fields.List(fields.Nested(AttemptSchema), metadata={"description": "Each attempt, oldest first."})


class NotificationsSchema(Schema):
    events = fields.List(fields.String(), metadata={"description": "The run's events, most specific first."})
    done = fields.Boolean(metadata={"description": "Every delivery is delivered, failed or refused."})
    deliveries = fields.List(fields.Nested(DeliverySchema), metadata={"description": "One per target that heard it."})


class JobCreatedSchema(Schema):
    id = fields.String(metadata={"description": "The job id (same as job_id)."})
    job_id = fields.String(metadata={"description": "The new job's id."})
    run_id = fields.String(
        allow_none=True, metadata={"description": "The first run (for a cron job: none until its first tick)."}
    )
    status = fields.String(
        metadata={
            "description": "queued (on a worker), pending (waiting for one), scheduled (starts at `scheduled_at`) "
            "or stored (no run yet: a parameter it declares has no default, so it runs when triggered with a value)."
        }
    )
    worker_id = fields.String(
        allow_none=True, metadata={"description": "The worker the run was routed to (null while pending)."}
    )
    pending_reason = fields.String(
        allow_none=True, metadata={"description": "Why no worker could take the run yet (null when queued)."}
    )
    scheduled_at = fields.DateTime(
        allow_none=True,
        metadata={"description": "When a scheduled job's first run starts (one-off time, or the next cron tick)."},
    )


class JobSchema(Tolerant, Schema):
    id = fields.String(metadata={"description": "Unique id (a UUID)."})
    name = fields.String(metadata={"description": "Name of the job, for people."})
    user = fields.String(metadata={"description": "User the job runs for (checked against workers' allowed users)."})
    namespace = fields.String(metadata={"description": "The namespace it belongs to."})
    affinity = fields.Nested(
        AffinitySchema, metadata={"description": "Where the job may run: OS, tags, allowed users."}
    )
    command = fields.String(
        allow_none=True,
        metadata={"description": "The command line (run under `shell`), or the program when `args` is given."},
    )
    args = fields.List(fields.String(), allow_none=True, metadata={"description": "Argument list run without a shell."})
    shell = fields.String(
        allow_none=True, metadata={"description": "bash, sh, cmd or powershell (null: the worker's default)."}
    )
    env = RedactedValues(
        keys=fields.String(),
        values=fields.String(),
        metadata={
            "description": f"The names of its environment variables; values are write-only (shown as `{REDACTED}`)."
        },
    )
    cwd = fields.String(
        allow_none=True, metadata={"description": "Working directory of the command (null: the worker's)."}
    )
    retries = fields.Integer(metadata={"description": "Further attempts after a failed or timed-out one."})
    timeout = fields.Float(
        allow_none=True, metadata={"description": "Seconds before the command's whole process tree is killed."}
    )
    priority = fields.Integer(metadata={"description": "0 (lowest) to 100 (highest)."})
    schedule = fields.String(allow_none=True, metadata={"description": "5-field cron expression of a recurring job."})
    timezone = fields.String(allow_none=True, metadata={"description": "IANA time zone of `schedule`."})
    scheduled_at = fields.DateTime(
        allow_none=True, metadata={"description": "When a one-off job runs (ISO 8601, UTC)."}
    )
    misfire = fields.String(allow_none=True, metadata={"description": "Missed cron ticks: skip or run_once."})
    overlap = fields.String(
        allow_none=True, metadata={"description": "A cron tick while a run is active: allow, forbid or queue."}
    )
    backoff = fields.Nested(
        BackoffSchema, allow_none=True, metadata={"description": "Retry delays (base, factor, cap, jitter)."}
    )
    max_lost = fields.Integer(
        allow_none=True, metadata={"description": "Lost attempts before the run is dead-lettered."}
    )
    executor = fields.String(allow_none=True, metadata={"description": "shell or http."})
    http = RedactedRequest(
        HttpSchema,
        allow_none=True,
        metadata={
            "description": "The request of an http job. Header values and the body are write-only "
            f"(shown as `{REDACTED}`); a PATCH that leaves them out keeps them."
        },
    )
    on_success = fields.List(
        fields.String(), allow_none=True, metadata={"description": "Jobs it starts after a success."}
    )
    on_failure = fields.List(
        fields.String(), allow_none=True, metadata={"description": "Jobs it starts after a failure for good."}
    )
    on_completion = fields.List(
        fields.String(), allow_none=True, metadata={"description": "Jobs it starts after either."}
    )
    params = fields.List(
        fields.Nested(ParamSchema),
        allow_none=True,
        metadata={"description": "The parameters a trigger may give values for (`POST /jobs/{job_id}/trigger`)."},
    )
    resources = fields.Nested(
        ResourcesSchema,
        allow_none=True,
        metadata={"description": "Limits of each run ({memory_mb, cpu}), its namespace's defaults filled in."},
    )
    max_concurrent = fields.Integer(
        allow_none=True, metadata={"description": "Runs of it placed on workers at once, at most (null: no limit)."}
    )
    monitor = fields.Boolean(
        metadata={"description": "Its ended runs are counted per job on /metrics (hydra_job_runs_finished_total)."}
    )
    placement = fields.Nested(
        PlacementSchema,
        allow_none=True,
        metadata={
            "description": "One worker per start, or every eligible one (mode all: `GET /jobs/{job_id}/fanout`)."
        },
    )
    notify = notify_answer("Who hears about its runs (none: its namespace's default targets).")
    status = fields.String(allow_none=True, metadata={"description": "Status of the job's latest run."})
    last_run_id = fields.String(allow_none=True, metadata={"description": "The job's most recently changed run."})
    last_success_at = fields.DateTime(
        allow_none=True, metadata={"description": "When a run of it last succeeded (null: never)."}
    )
    last_failure_at = fields.DateTime(
        allow_none=True,
        metadata={
            "description": "When a run of it last failed for good: failed or timed out with no retry "
            "left, or dead-lettered (null: never)."
        },
    )
    source = fields.String(metadata={"description": "api or python (apply_async)."})
    paused = fields.Boolean(allow_none=True, metadata={"description": "A paused job's schedule does not fire."})
    paused_at = fields.DateTime(
        allow_none=True, metadata={"description": "When its schedule was paused (null: not paused)."}
    )
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
    created_at = fields.DateTime(metadata={"description": "When it was created."})
    updated_at = fields.DateTime(metadata={"description": "When it last changed."})
    deleted_at = fields.DateTime(
        allow_none=True, metadata={"description": "Set once the job was deleted; its runs stay readable."}
    )

    def _next_run_at(self, job):
        moment = job.next_run_at()
        return moment.isoformat() if moment else None


#: What an answer about a job shows beyond its body is read-only: a body ignores those fields.
shown_in_answers(JobSchema._declared_fields)


class RefusalSchema(Schema):
    at = fields.DateTime(metadata={"description": "When it was refused."})
    by = fields.String(metadata={"description": "The worker (or controller) that refused it."})
    reason = fields.String(metadata={"description": "Why (unsigned, tampered, replayed, undecodable, vanished)."})


class RunSchema(Tolerant, Schema):
    id = fields.String(metadata={"description": "The run id (also the Celery task id)."})
    job_id = fields.String(metadata={"description": "The job this belongs to."})
    job_name = fields.String(allow_none=True, metadata={"description": "Name of the job."})
    user = fields.String(allow_none=True, metadata={"description": "User the run is for."})
    namespace = fields.String(metadata={"description": "The namespace it belongs to."})
    attempt = fields.Integer(metadata={"description": "1 for the first attempt of the job, 2 for its first retry, ..."})
    retry_of = fields.String(
        allow_none=True, metadata={"description": "The attempt this one follows (a retry or failover), or null."}
    )
    lost = fields.Integer(allow_none=True, metadata={"description": "Earlier attempts of this chain that were lost."})
    status = fields.String(
        metadata={
            "description": "pending, queued, running, succeeded, failed, timed_out, cancelled, lost, retrying or dead_letter."
        }
    )
    outcome = fields.String(
        allow_none=True,
        metadata={
            "description": "The attempt's raw outcome (succeeded, failed, timed_out, lost, cancelled) when "
            "`status` says what followed (retrying, dead_letter)."
        },
    )
    decision = fields.String(
        allow_none=True,
        metadata={"description": "Why the attempt's end led to its status (retry n of m, failover, dead letter)."},
    )
    not_before = fields.DateTime(allow_none=True, metadata={"description": "A delayed run starts at this time."})
    worker_id = fields.String(allow_none=True, metadata={"description": "The worker it was routed to or ran on."})
    queue = fields.String(allow_none=True, metadata={"description": "The Celery queue its message was published to."})
    pending_reason = fields.String(
        allow_none=True, metadata={"description": "Why it waits (no eligible worker, start time not reached)."}
    )
    priority = fields.Integer(allow_none=True, metadata={"description": "Priority of the job."})
    command = fields.String(
        allow_none=True,
        metadata={"description": "The command line (run under `shell`), or the program when `args` is given."},
    )
    args = fields.List(fields.String(), allow_none=True, metadata={"description": "Argument list run without a shell."})
    shell = fields.String(
        allow_none=True, metadata={"description": "bash, sh, cmd or powershell (null: the worker's default)."}
    )
    params = fields.Function(
        lambda run: run.shown_params,
        allow_none=True,
        metadata={
            "description": "The values of the job's parameters this run got (given by its trigger, else the "
            f"defaults); secret ones are write-only (shown as `{REDACTED}`).",
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
    )
    returncode = fields.Integer(
        allow_none=True, metadata={"description": "Exit code (negative: killed by that signal; null: never ran)."}
    )
    stdout = fields.String(
        metadata={"description": "Standard output (head and tail when longer than the output limit)."}
    )
    stderr = fields.String(
        metadata={"description": "Standard error (head and tail when longer than the output limit)."}
    )
    stdout_bytes = fields.Integer(allow_none=True, metadata={"description": "Bytes written to stdout in all."})
    stderr_bytes = fields.Integer(allow_none=True, metadata={"description": "Bytes written to stderr in all."})
    stdout_truncated = fields.Boolean(
        allow_none=True, metadata={"description": "stdout was longer than the output limit (the middle was left out)."}
    )
    stderr_truncated = fields.Boolean(
        allow_none=True, metadata={"description": "stderr was longer than the output limit (the middle was left out)."}
    )
    error = fields.String(
        allow_none=True, metadata={"description": "Why it did not succeed when the exit code does not say."}
    )
    executor = fields.String(allow_none=True, metadata={"description": "shell or http."})
    url = fields.String(allow_none=True, metadata={"description": "An http run's URL."})
    cancel_requested_at = fields.DateTime(
        allow_none=True, metadata={"description": "When a cancel was asked for (the worker is stopping it)."}
    )
    retried_by = fields.String(allow_none=True, metadata={"description": "The run a manual retry started."})
    queued_at = fields.DateTime(allow_none=True, metadata={"description": "When the attempt was recorded."})
    placed_at = fields.DateTime(allow_none=True, metadata={"description": "When it was routed to a worker's queue."})
    started_at = fields.DateTime(allow_none=True, metadata={"description": "When the worker started the command."})
    finished_at = fields.DateTime(allow_none=True, metadata={"description": "When the attempt ended."})
    duration = fields.Float(allow_none=True, metadata={"description": "Seconds the command ran."})
    ended_by = fields.String(
        allow_none=True, metadata={"description": "Who recorded the end: the worker's name, the controller, or a user."}
    )
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
    # -- fan-out (placement mode all)
    fanout_id = fields.String(
        allow_none=True, metadata={"description": "The fan-out it belongs to (`GET /jobs/{job_id}/fanout`)."}
    )
    bound_worker = fields.String(
        allow_none=True, metadata={"description": "A fan-out's run runs on this worker only, and is never moved."}
    )
    notifications = fields.Nested(
        NotificationsSchema,
        allow_none=True,
        metadata={
            "description": "What its job's notification targets were told of this run's end, with each attempt "
            "(in GET /runs/{run_id} only; null when nobody was notified)."
        },
    )


class WorkerSchema(Schema):
    id = fields.String(metadata={"description": "The worker's Celery node name (name@host)."})
    os = fields.String(metadata={"description": "linux, macos or windows."})
    tags = fields.List(fields.String(), metadata={"description": "Capability tags (from its tag.* queues)."})
    allowed_users = fields.List(fields.String(), allow_none=True, metadata={"description": "null means any user."})
    namespaces = fields.List(
        fields.String(), allow_none=True, metadata={"description": "The namespaces it runs jobs of; null means all."}
    )
    max_concurrency = fields.Integer(metadata={"description": "Commands it runs at once (its pool size)."})
    current_running = fields.Integer(metadata={"description": "Commands running at its last heartbeat."})
    load = fields.Integer(metadata={"description": "Runs routed to the worker and not finished."})
    status = fields.String(metadata={"description": "online or offline."})
    last_heartbeat = fields.DateTime(allow_none=True, metadata={"description": "Time of its last heartbeat."})
    heartbeat_interval = fields.Float(allow_none=True, metadata={"description": "Seconds between its heartbeats."})
    queue = fields.String(metadata={"description": "Its own queue (hydra.worker.<id>)."})
    shells = fields.List(fields.String(), metadata={"description": "Shells found on the machine."})
    resource_limits = fields.Boolean(
        metadata={"description": "It can enforce jobs' resource limits (memory and cpu cgroup controllers)."}
    )
    hostname = fields.String(allow_none=True, metadata={"description": "Its machine."})
    pid = fields.Integer(allow_none=True, metadata={"description": "Its main process id."})
    processed = fields.Integer(allow_none=True, metadata={"description": "Tasks it has processed since it started."})
    first_seen = fields.DateTime(allow_none=True, metadata={"description": "When the controller first saw it."})
    # -- drain (hydra worker drain)
    drained = fields.Boolean(
        metadata={"description": "Drained by an operator: no new run is placed on it; what runs there finishes."}
    )
    drained_by = fields.String(allow_none=True, metadata={"description": "Who drained it (null: not drained)."})
    drained_at = fields.DateTime(allow_none=True, metadata={"description": "When it was drained."})
    drain_reason = fields.String(allow_none=True, metadata={"description": "Why, as the operator said."})


class FanoutWorkerSchema(Schema):
    worker = fields.String(metadata={"description": "The worker."})
    run_id = fields.String(metadata={"description": "Its run (planned until it starts)."})
    state = fields.String(
        metadata={"description": "waiting, running, succeeded, failed, lost or skipped (not reached)."}
    )
    status = fields.String(allow_none=True, metadata={"description": "Its run's final status."})
    reason = fields.String(allow_none=True, metadata={"description": "Why it was skipped."})


class FanoutSchema(Schema):
    """One fan-out of a job: its workers, chosen when it started, and how each one's run went."""

    id = fields.String(metadata={"description": "The fan-out (the run id it started with)."})
    job_id = fields.String(metadata={"description": "The job it belongs to."})
    created_at = fields.DateTime(allow_none=True, metadata={"description": "When its workers were chosen."})
    max_parallel = fields.Integer(allow_none=True, metadata={"description": "Its workers' runs in flight at most."})
    stop_on_failure = fields.Boolean(metadata={"description": "Whether a failure skips the workers not started."})
    done = fields.Boolean(metadata={"description": "Every worker's run ended, or was skipped."})
    ok = fields.Boolean(metadata={"description": "Every worker's run succeeded."})
    workers = fields.List(fields.Nested(FanoutWorkerSchema), metadata={"description": "Worker by worker, by name."})
    succeeded = fields.List(fields.String(), metadata={"description": "Workers whose run succeeded."})
    failed = fields.List(fields.String(), metadata={"description": "Workers whose run failed (or timed out, ...)."})
    lost = fields.List(fields.String(), metadata={"description": "Workers lost with their run."})
    not_reached = fields.List(fields.String(), metadata={"description": "Workers skipped (stop_on_failure, offline)."})
    in_progress = fields.List(fields.String(), metadata={"description": "Workers waiting or running."})


class FanoutArgs(Schema):
    class Meta:
        unknown = RAISE

    fanout_id = fields.String(
        load_default=None, metadata={"description": "Which fan-out of the job (default: its latest)."}
    )


class DrainBodySchema(Schema):
    """The body of a drain (optional)."""

    class Meta:
        unknown = RAISE

    reason = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=500),
        metadata={"description": "Why the worker is drained (shown with it); at most 500 characters."},
    )


class DrainSchema(Schema):
    """A drained worker."""

    id = fields.String(metadata={"description": "The worker."})
    by = fields.String(metadata={"description": "Who drained it."})
    at = fields.DateTime(metadata={"description": "When."})
    reason = fields.String(allow_none=True, metadata={"description": "Why (null: no reason given)."})


class TriggerSchema(Schema):
    """The body of a trigger (optional): the values of the job's parameters."""

    class Meta:
        unknown = RAISE

    params = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(metadata={"type": "string"}),
        load_default=dict,
        metadata={
            "description": 'A value for each parameter to set, by name (`{"TARGET": "prod"}`); the others '
            "take their defaults. Checked against the job's declaration: a 422 names each bad one under "
            "`errors.json.params`."
        },
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

    name = fields.String(
        load_default=None,
        validate=[validate.Length(1, 200), validate.Regexp(NAME_RE)],
        metadata={"description": "Name of the job, for people."},
    )


class TaskSchema(Schema):
    """A one-off task's status view of a job: its latest run's state and times."""

    id = fields.String(metadata={"description": "The task (job) id."})
    job_id = fields.String(metadata={"description": "The job this belongs to."})
    run_id = fields.String(allow_none=True, metadata={"description": "The run (attempt) id, also the Celery task id."})
    command = fields.String(
        allow_none=True,
        metadata={"description": "The command line (run under `shell`), or the program when `args` is given."},
    )
    scheduled_at = fields.DateTime(
        allow_none=True, metadata={"description": "When a one-off job runs (ISO 8601, UTC)."}
    )
    status = fields.String(
        metadata={
            "description": "scheduled (its time has not come), then the run's status: pending, queued, "
            "running, succeeded, failed, timed_out, cancelled, lost, retrying, dead_letter."
        }
    )
    worker_id = fields.String(
        allow_none=True, metadata={"description": "The worker (Celery node name) it was placed on or ran on."}
    )
    created_at = fields.DateTime(allow_none=True, metadata={"description": "When it was created."})
    picked_at = fields.DateTime(allow_none=True, metadata={"description": "When a worker was chosen."})
    started_at = fields.DateTime(allow_none=True, metadata={"description": "When a worker started it."})
    completed_at = fields.DateTime(allow_none=True, metadata={"description": "When it succeeded."})
    failed_at = fields.DateTime(allow_none=True, metadata={"description": "When it ended without success."})
    returncode = fields.Integer(
        allow_none=True,
        metadata={"description": "Exit status (an http run: the response status); null when it never ran."},
    )
    stdout = fields.String(
        allow_none=True, metadata={"description": "Captured standard output (capped; the cut is marked)."}
    )
    stderr = fields.String(
        allow_none=True, metadata={"description": "Captured standard error (capped; the cut is marked)."}
    )
    error = fields.String(allow_none=True, metadata={"description": "Why it failed, besides its exit status."})


class HealthSchema(Schema):
    status = fields.String(metadata={"description": "ok, or down when a required service is down."})
    down = fields.List(fields.String(), metadata={"description": "Services that are down."})
    message = fields.String(metadata={"description": "Which services are down (only when some are)."})
    redis = fields.Dict(metadata={"description": "`ok`, and `error` when Redis does not answer."})
    mongodb = fields.Dict(metadata={"description": "`ok`, and `error` when MongoDB does not answer."})
    controller = fields.Dict(metadata={"description": "`ok` while a controller is alive, and its `name`."})
    workers = fields.Dict(metadata={"description": "Number of workers by status (online, offline)."})
