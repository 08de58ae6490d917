"""A worker as answers show it, draining one, and the service's health."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate


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


class HealthSchema(Schema):
    status = fields.String(metadata={"description": "ok, or down when a required service is down."})
    down = fields.List(fields.String(), metadata={"description": "Services that are down."})
    message = fields.String(metadata={"description": "Which services are down (only when some are)."})
    redis = fields.Dict(metadata={"description": "`ok`, and `error` when Redis does not answer."})
    mongodb = fields.Dict(metadata={"description": "`ok`, and `error` when MongoDB does not answer."})
    controller = fields.Dict(metadata={"description": "`ok` while a controller is alive, and its `name`."})
    workers = fields.Dict(metadata={"description": "Number of workers by status (online, offline)."})
