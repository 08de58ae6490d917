"""What a job is: the validated job body, shared by the REST API and the task message
(``hydra.model.message``, which adds which job and attempt it runs).

The job body (name, user, affinity, command, shell, retries, timeout, schedule) plus
priority, scheduled_at, env, cwd and args; the retry policy (backoff, max_lost); the executor
(shell, or an HTTP webhook with its ``http`` request); for cron jobs the misfire and
overlap policies; and the trigger parameters it declares (``hydra.model.params``). Its nested
parts (affinity, backoff, an http request) are ``hydra.model.parts``. The same schema validates
a Python user's ``apply_async(kwargs=...)`` in the dispatch pipeline, so both ways in accept
exactly the same jobs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from croniter import croniter
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates,
    validates_schema,
)

from hydra.errors import InvalidJob
from hydra.model import dependencies
from hydra.model.bodies import body_problems
from hydra.model.fanout import PlacementSchema, placement_problem
from hydra.model.lifecycle import DEFAULT_MAX_LOST
from hydra.model.monitoring import monitor_field
from hydra.model.namespaces import Namespace
from hydra.model.notify import notify_field
from hydra.model.params import combination_problems, params_field
from hydra.model.parts import (
    DEFAULT_BACKOFF,
    MAX_TIMEOUT,
    START_TIME_PATTERN,
    USER_RE,
    AffinitySchema,
    BackoffSchema,
    HttpSchema,
    StartTime,
)
from hydra.model.platform import SHELLS
from hydra.model.redaction import REDACTED
from hydra.model.resources import combination_problems as limit_problems
from hydra.model.resources import max_concurrent_field, resources_field

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9 _.:@/+-]*$"
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

MAX_RETRIES = 20
DEFAULT_PRIORITY = 50
#: The executors a job may name; ``hydra.execution.executors`` registers exactly these.
EXECUTORS = ("shell", "http")
#: What a cron job does about ticks missed while no scheduler ran (see hydra.scheduler).
MISFIRE_POLICIES = ("skip", "run_once")
#: What a cron tick does while the job's previous run is still active (see hydra.scheduler).
OVERLAP_POLICIES = ("allow", "forbid", "queue")
#: Job fields that only concern when the stored job starts, never one attempt's message.
SCHEDULING_FIELDS = ("schedule", "scheduled_at", "timezone", "misfire", "overlap")
#: The fields an answer about a job shows beyond its body (its state: ``id``, ``status``, times).
#: A job body that holds them - a job fetched with ``GET /jobs/{job_id}`` and sent back - has
#: exactly these ignored (``JobSpecSchema``); any other unknown field is refused. The schema
#: of the answer says which they are (``api.schemas`` calls :func:`shown_in_answers` with its
#: fields), so a field added to answers is ignored in bodies with no list to keep here.
READ_ONLY_FIELDS: frozenset[str] = frozenset()


def shown_in_answers(names: Iterable[str]) -> None:
    """Declare the fields an answer about a job shows: those that are not body fields are the
    read-only ones (:data:`READ_ONLY_FIELDS`)."""
    global READ_ONLY_FIELDS
    READ_ONLY_FIELDS = frozenset(names) - set(JobSpecSchema().fields)


#: Why a body may not hold the placeholder answers show for a write-only value.
REDACTED_REFUSAL = (
    f"{REDACTED!r} is how answers show a write-only value: give the value itself "
    "(a job file applied with `hydra job apply` may reference the stored one)"
)
#: Job fields no attempt's message carries: its scheduling, and what /metrics says of it.
JOB_ONLY_FIELDS = (*SCHEDULING_FIELDS, "monitor")


class JobSpecSchema(Schema):
    """A job body. Loading returns a normalized dict; errors name the field."""

    class Meta:
        unknown = RAISE
        ordered = True

    name = fields.String(
        required=True,
        validate=[
            validate.Length(1, 200),
            validate.Regexp(
                NAME_RE, error="must start with a letter or digit and use letters, digits, space and _ . : @ / + -"
            ),
        ],
        metadata={"description": "Name of the job, for people."},
    )
    user = fields.String(
        load_default=None,
        validate=[
            validate.Length(1, 100),
            validate.Regexp(USER_RE, error="must be letters, digits, '_', '.', '@' or '-'"),
        ],
        metadata={"description": "The user the job runs as: the caller unless it may act as another."},
    )
    namespace = fields.String(
        load_default=None,
        validate=Namespace(),
        metadata={
            "description": "The namespace the job, its runs and their output belong to "
            "(default: the caller's only namespace, else default)."
        },
    )
    affinity = fields.Nested(
        AffinitySchema,
        load_default=lambda: AffinitySchema().load({}),
        metadata={"description": "Where the job may run: OS, tags, allowed users."},
    )
    command = fields.String(
        validate=validate.Length(1, 100_000),
        load_default=None,
        metadata={
            "description": "The command line, run under `shell`; with `args`, the program to run without a shell."
        },
    )
    args = fields.List(
        fields.String(validate=validate.Length(max=100_000)),
        load_default=None,
        validate=validate.Length(max=1000),
        metadata={"description": "Argument list run without any shell (no quoting or expansion)."},
    )
    shell = fields.String(
        validate=validate.OneOf(SHELLS),
        load_default=None,
        metadata={"description": "bash, sh, cmd or powershell; default bash (or sh) on Linux/macOS, cmd on Windows."},
    )
    env = fields.Dict(
        keys=fields.String(),
        values=fields.String(validate=validate.Length(max=100_000)),
        load_default=dict,
        metadata={"description": "Added to a scrubbed base environment (the worker's own secrets never reach a job)."},
    )
    cwd = fields.String(
        validate=validate.Length(1, 4096),
        load_default=None,
        metadata={"description": "Working directory of the command (null: the worker's)."},
    )
    retries = fields.Integer(
        validate=validate.Range(0, MAX_RETRIES),
        load_default=0,
        strict=True,
        metadata={"description": "Further attempts after a failed or timed-out one."},
    )
    timeout = fields.Float(
        validate=validate.Range(min=0, max=MAX_TIMEOUT, min_inclusive=False),
        load_default=None,
        allow_nan=False,
        metadata={"description": "Seconds before the whole process tree is killed (status timed_out)."},
    )
    priority = fields.Integer(
        validate=validate.Range(0, 100),
        load_default=DEFAULT_PRIORITY,
        strict=True,
        metadata={"description": "0 (lowest) to 100 (highest)."},
    )
    schedule = fields.String(
        load_default=None,
        metadata={"description": "5-field cron expression; the job then runs on every tick instead of once."},
    )
    timezone = fields.String(load_default="UTC", metadata={"description": "IANA time zone for `schedule`."})
    scheduled_at = StartTime(
        load_default=None,
        format="iso",
        metadata={
            "description": "ISO 8601 time with zone: run once at that time instead of now. An empty string means now.",
            "pattern": START_TIME_PATTERN,
        },
    )
    misfire = fields.String(
        load_default="run_once",
        validate=validate.OneOf(MISFIRE_POLICIES),
        metadata={"description": "Cron ticks missed while no scheduler ran: skip them, or run_once (one run for all)."},
    )
    overlap = fields.String(
        load_default="allow",
        validate=validate.OneOf(OVERLAP_POLICIES),
        metadata={
            "description": "A cron tick while the previous run is active: allow (run both), forbid (skip the "
            "tick) or queue (start it when the previous run ends; at most one waits)."
        },
    )
    backoff = fields.Nested(
        BackoffSchema,
        load_default=None,
        metadata={
            "description": f"Retry delays; defaults base {DEFAULT_BACKOFF.base:g} s, factor {DEFAULT_BACKOFF.factor:g}, "
            f"cap {DEFAULT_BACKOFF.cap:g} s, jitter {DEFAULT_BACKOFF.jitter:g}."
        },
    )
    max_lost = fields.Integer(
        load_default=None,
        validate=validate.Range(1, 100),
        strict=True,
        metadata={
            "description": f"Lost attempts (worker died) before the run is dead-lettered; default {DEFAULT_MAX_LOST}."
        },
    )
    executor = fields.String(
        load_default="shell",
        validate=validate.OneOf(EXECUTORS),
        metadata={"description": "shell (command/args) or http (the `http` request)."},
    )
    http = fields.Nested(
        HttpSchema,
        load_default=None,
        metadata={"description": "The request of an http job (a webhook call); required with executor http."},
    )
    on_success, on_failure, on_completion = map(dependencies.dependants_field, dependencies.FIELDS)
    params = params_field()
    # resource limits and per-job concurrency (hydra.model.resources)
    resources = resources_field()
    max_concurrent = max_concurrent_field()
    monitor = monitor_field()  # metrics per job (hydra.model.monitoring)

    #: A body may hold the read-only fields an answer shows, and they are ignored.
    ignores_read_only = True
    placement = fields.Nested(
        PlacementSchema,
        load_default=None,
        metadata={"description": "Run on one worker (default) or on every eligible online worker (mode all)."},
    )
    notify = notify_field(
        "Who hears about its runs: targets, each {on: [events], webhook: {url, secret}} or {on, slack: {url}}; "
        "events: failed, dead_letter, lost, succeeded, recovered. Default: its namespace's. Secrets are write-only."
    )

    @pre_load
    def reject_non_object(self, data: Any, **kwargs: Any) -> Any:
        if not isinstance(data, dict):
            raise ValidationError("the job body must be a JSON object", "_schema")
        if self.ignores_read_only and any(name in READ_ONLY_FIELDS for name in data):
            data = {key: value for key, value in data.items() if key not in READ_ONLY_FIELDS}
        errors = body_problems(data)
        if errors:
            raise ValidationError(errors)
        if data.get("scheduled_at") == "":  # empty means now
            data = {key: value for key, value in data.items() if key != "scheduled_at"}
        return data

    @validates("env")
    def check_env(self, value: Any, **kwargs: Any) -> None:
        if len(value) > 200:
            raise ValidationError("at most 200 variables")
        bad = [key for key in value if not ENV_KEY_RE.match(key)]
        if bad:
            raise ValidationError(f"invalid variable names: {', '.join(map(repr, bad[:5]))}")

    @validates("env")
    def check_env_values(self, value: Any, **kwargs: Any) -> None:
        placeholders = sorted(key for key, item in value.items() if item == REDACTED)
        if placeholders:
            raise ValidationError(f"{', '.join(placeholders[:5])}: {REDACTED_REFUSAL}")

    @validates("http")
    def check_http_secrets(self, value: Any, **kwargs: Any) -> None:
        if not value:
            return
        errors: dict[str, list[str]] = {}
        placeholders = sorted(key for key, item in (value.get("headers") or {}).items() if item == REDACTED)
        if placeholders:
            errors["headers"] = [f"{', '.join(placeholders[:5])}: {REDACTED_REFUSAL}"]
        if value.get("body") == REDACTED:
            errors["body"] = [REDACTED_REFUSAL]
        if errors:
            raise ValidationError(errors)

    @validates("schedule")
    def check_schedule(self, value: Any, **kwargs: Any) -> None:
        if value is None:
            return
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValidationError("must be a 5-field cron expression, e.g. '*/5 * * * *'")

    @validates("timezone")
    def check_timezone(self, value: Any, **kwargs: Any) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"unknown time zone {value!r}") from None

    @validates_schema
    def check_combination(self, data: Any, **kwargs: Any) -> Any:
        errors: dict[str, list[str]] = {}
        if data.get("executor") == "http":
            if not data.get("http"):
                errors["http"] = ["an http job needs its request: {url, method, headers, body, timeout}"]
            for key in ("command", "args", "shell"):
                if data.get(key):
                    errors[key] = ["an http job runs no command; drop it"]
        elif not data.get("command") and not data.get("args"):
            errors["command"] = ["give a command (or an args list)"]
        elif data.get("http"):
            errors["http"] = ["set executor to 'http' to send a request"]
        if data.get("args") and data.get("shell"):
            errors["shell"] = ["an args list runs without a shell; drop `shell`"]
        allowed = (data.get("affinity") or {}).get("allowed_users") or []
        if allowed and data.get("user") is not None and data["user"] not in allowed:
            errors["user"] = [f"{data.get('user')!r} is not in affinity.allowed_users"]
        if data.get("schedule") and data.get("scheduled_at"):
            errors["scheduled_at"] = ["use either schedule (cron) or scheduled_at (one-off), not both"]
        if data.get("schedule") and "schedule" not in errors and "timezone" not in errors:
            reason = never_fires(data["schedule"], data.get("timezone") or "UTC")
            if reason:
                errors["schedule"] = [reason]
        errors.update(combination_problems(data))
        errors.update(limit_problems(data))
        if placement_problem(data.get("placement")):
            errors["placement"] = placement_problem(data.get("placement"))  # type: ignore[assignment]
        if errors:
            raise ValidationError(errors)

    @post_load
    def to_utc(self, data: Any, **kwargs: Any) -> Any:
        if data.get("scheduled_at") is not None:
            data["scheduled_at"] = data["scheduled_at"].astimezone(UTC)
        return data


def never_fires(expr: str, tz: str) -> str | None:
    """Why a (valid) cron expression is refused: it has no next tick (``0 0 31 2 *``)."""
    from hydra.model.cron import next_fire

    try:
        next_fire(expr, tz, datetime.now(UTC))
    except (ValueError, KeyError, OverflowError):
        return f"{expr!r} never fires (no such date); e.g. '0 0 28 2 *' fires on 28 February"
    return None


_job_schema = JobSpecSchema()


def load_job(body: Any) -> dict:
    """Validate a REST job body; raise InvalidJob naming each bad field."""
    try:
        return _job_schema.load(body)
    except ValidationError as exc:
        raise InvalidJob(exc.normalized_messages()) from None


#: The fields of a job body, in their schema order.
JOB_FIELDS = tuple(_job_schema.fields)
