"""The task message: the kwargs of a ``hydra.run_command`` message, as a worker runs it.

A message is a job body (``hydra.model.spec.JobSpecSchema``) less what belongs to the stored
job (its scheduling, monitoring, placement and notification targets), plus which job and
attempt it is (:data:`MESSAGE_FIELDS`). The dispatch pipeline builds it from a stored job
(:func:`message_kwargs`) and validates it (:func:`load_message`) as any publisher's; the
worker validates it once per delivery when it admits it. :func:`execution_digest` is what the
publisher records with the run and the worker compares: what the message runs, and as whom.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, ValidationError, fields, post_load, validate

from hydra.errors import InvalidJob
from hydra.model.namespaces import DEFAULT_NAMESPACE, Namespace
from hydra.model.notify import EVENTS, listened
from hydra.model.params import message_values, values_field
from hydra.model.parts import USER_RE
from hydra.model.resources import concurrency_limit
from hydra.model.spec import JOB_ONLY_FIELDS, JobSpecSchema

#: Fields a task message carries besides the job body (``param_values``: hydra.model.params;
#: ``fanout_id``, ``bound_worker``: hydra.model.fanout; ``notify_on``: the events its job's
#: notification targets hear, hydra.model.notify).
MESSAGE_FIELDS = ("job_id", "attempt", "param_values", "fanout_id", "bound_worker", "notify_on")
#: Job fields a message never carries: scheduling and monitoring belong to the stored job, and so
#: do its placement (a fan-out's runs each carry their binding instead) and its notification
#: targets (their secrets stay in MongoDB; the message names their events only).
STORED_ONLY_FIELDS = (*JOB_ONLY_FIELDS, "placement", "notify")


class TaskMessageSchema(JobSpecSchema):
    """The kwargs of a ``hydra.run_command`` message: a job body plus which job and attempt.

    ``name`` may be left out by Python callers (it defaults to the command).
    """

    class Meta:
        unknown = RAISE
        ordered = True

    name = fields.String(load_default=None, validate=validate.Length(1, 200))
    #: A message holds no answer's fields: each unknown one is refused.
    ignores_read_only = False
    #: A message always says whose it is (a REST body may leave it to the caller's identity).
    user = fields.String(required=True, validate=[validate.Length(1, 100), validate.Regexp(USER_RE)])
    namespace = fields.String(load_default=DEFAULT_NAMESPACE, validate=Namespace())
    job_id = fields.String(load_default=None, validate=validate.Length(1, 64))
    attempt = fields.Integer(load_default=1, validate=validate.Range(1, 10_000), strict=True)
    param_values = values_field()
    # -- a fan-out's run (hydra.model.fanout): set by Hydra's pipeline only
    fanout_id = fields.String(load_default=None, validate=validate.Length(1, 64))
    bound_worker = fields.String(load_default=None, validate=validate.Length(1, 255))
    notify_on = fields.List(
        fields.String(validate=validate.OneOf(EVENTS)),
        load_default=None,
        validate=validate.Length(max=len(EVENTS)),
        metadata={"description": "The events its job's notification targets hear (set by Hydra)."},
    )

    @post_load
    def default_name(self, data: Any, **kwargs: Any) -> Any:
        if not data.get("name"):
            data["name"] = (data.get("command") or " ".join(data.get("args") or []))[:200] or "command"
        message_values(data)
        return data


#: A message runs now: what belongs to the stored job is left out (STORED_ONLY_FIELDS).
_message_schema = TaskMessageSchema(exclude=STORED_ONLY_FIELDS)


def load_message(kwargs: Any) -> dict:
    """Validate the kwargs of a task message (any publisher); raise InvalidJob."""
    try:
        return _message_schema.load(kwargs)
    except ValidationError as exc:
        raise InvalidJob(exc.normalized_messages()) from None


#: The body fields a task message carries (scheduling belongs to the stored job).
MESSAGE_BODY_FIELDS = tuple(name for name in _message_schema.fields if name not in MESSAGE_FIELDS)


def message_kwargs(body: dict, *, job_id: str, attempt: int, values: dict | None = None) -> dict:
    """The kwargs of the task message that runs attempt ``attempt`` of a stored job's ``body``
    (with its parameters' ``values``; the defaults fill in when it is validated)."""
    kwargs = {key: body[key] for key in MESSAGE_BODY_FIELDS if body.get(key) is not None}
    kwargs["job_id"] = job_id
    kwargs["attempt"] = attempt
    if concurrency_limit(body) is not None:  # overlap forbid: 1 (the message carries no overlap)
        kwargs["max_concurrent"] = concurrency_limit(body)
    if values:
        kwargs["param_values"] = dict(values)
    if body.get("notify"):
        kwargs["notify_on"] = listened(body["notify"])
    return kwargs


#: The fields of a message that say what runs, and as whom: the worker's run must agree with
#: the run record on these (``execution_digest``).
EXECUTION_FIELDS = (
    "job_id",
    "user",
    "namespace",
    "executor",
    "command",
    "args",
    "shell",
    "env",
    "cwd",
    "http",
    "timeout",
    "params",
    "param_values",
    "resources",
)


def execution_digest(message: dict) -> str:
    """A digest of what a (validated) message runs: recorded with the run by the publisher and
    compared by the worker, so a message that disagrees with its run record is refused."""
    import hashlib
    import json

    subset = {key: message.get(key) for key in EXECUTION_FIELDS if message.get(key) is not None}
    if subset.get("executor") == "shell":
        subset.pop("executor")
    text = json.dumps(subset, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
