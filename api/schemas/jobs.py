"""A job as answers show it (``JobSchema``), what a submission answers, and the bodies beside
the job's own (``hydra.model.spec.JobSpecSchema``): a trigger's values, a PATCH, a one-off
task (``/schedule``) and its status view; a job's fan-out.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from api.schemas.common import RedactedRequest, RedactedValues, Tolerant, notify_answer
from hydra.model.fanout import PlacementSchema
from hydra.model.params import ParamSchema
from hydra.model.redaction import REDACTED
from hydra.model.resources import ResourcesSchema
from hydra.model.spec import NAME_RE, AffinitySchema, BackoffSchema, HttpSchema, JobSpecSchema, shown_in_answers


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
