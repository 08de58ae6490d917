"""A run (one attempt) as answers show it: its refused deliveries and its notifications."""

from __future__ import annotations

from marshmallow import Schema, fields

from api.schemas.common import Tolerant
from hydra.model.notify import EVENTS
from hydra.model.redaction import REDACTED


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
