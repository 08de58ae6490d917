"""``/namespaces/<namespace>``: a namespace's limits - how many of its runs may be in flight, and
wait, the default notification targets of its jobs, and its jobs' default and maximum resource
limits; set, read, and deleted (back to the installation's defaults). The path's namespace is
checked like a job's: 422 naming it otherwise."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate, validates_schema

from api.auth import caller
from api.schemas.common import notify_answer
from hydra.control import admin
from hydra.model.namespaces import MESSAGE, NAMESPACE_RE
from hydra.model.notify import notify_field
from hydra.model.resources import MAX_CPU, MAX_MEMORY_MB, MIN_CPU, MIN_MEMORY_MB

#: A namespace's job resource limits (``hydra.model.resources``), as PUT takes them.
RESOURCE_LIMITS = ("default_memory_mb", "default_cpu", "max_memory_mb", "max_cpu")


def _memory(description: str) -> fields.Field:
    return fields.Integer(
        load_default=None,
        allow_none=True,
        strict=True,
        validate=validate.Range(MIN_MEMORY_MB, MAX_MEMORY_MB),
        metadata={"description": description},
    )


def _cpu(description: str) -> fields.Field:
    return fields.Float(
        load_default=None,
        allow_none=True,
        allow_nan=False,
        validate=validate.Range(MIN_CPU, MAX_CPU),
        metadata={"description": description},
    )


blp = Blueprint("namespaces", __name__, url_prefix="/namespaces", description="Namespaces and their quotas.")


class LimitsBodySchema(Schema):
    class Meta:
        unknown = RAISE

    @pre_load
    def needs_a_limit(self, data, **kwargs):
        """No body (or ``{}``) sets nothing: a 422 naming the body, never a silent reset of both
        limits (DELETE is how they go back to the defaults)."""
        if isinstance(data, dict) and not data:
            raise ValidationError(
                "the body is required: a JSON object with max_running and/or max_queued "
                "(null: the default; DELETE resets both)",
                "_schema",
            )
        return data

    max_running = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(0, 1_000_000),
        strict=True,
        metadata={
            "description": "Runs placed on workers and not ended (queued or running) at most; null: the default."
        },
    )
    max_queued = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(0, 1_000_000),
        strict=True,
        metadata={"description": "Runs waiting in workers' queues at most; null: the default."},
    )
    default_memory_mb = _memory("`resources.memory_mb` (MiB) of its jobs that set none; null: no default.")
    default_cpu = _cpu("`resources.cpu` (cores) of its jobs that set none; null: no default.")
    max_memory_mb = _memory(
        "`resources.memory_mb` at most: a job asking more gets a 422; one setting none gets this (or the default)."
    )
    max_cpu = _cpu(
        "`resources.cpu` at most: a job asking more gets a 422; one setting none gets this (or the default)."
    )

    @validates_schema
    def defaults_within_maxima(self, data, **kwargs):
        for name in ("memory_mb", "cpu"):
            default, most = data.get(f"default_{name}"), data.get(f"max_{name}")
            if default is not None and most is not None and default > most:
                raise ValidationError(f"is over max_{name} ({most})", f"default_{name}")

    notify = notify_field(
        "Notification targets of its jobs that name none of their own (the shape of a job's `notify`); "
        "null or left out: none. Secrets are write-only: set them again with every PUT that keeps them."
    )


class LimitsSchema(LimitsBodySchema):
    id = fields.String(metadata={"description": "The namespace."})
    notify = notify_answer("Notification targets of its jobs that name none of their own.")
    updated_at = fields.DateTime(allow_none=True, metadata={"description": "When it last changed."})
    updated_by = fields.String(allow_none=True, metadata={"description": "Who changed it last."})


#: The path's namespace, as the OpenAPI description shows it.
NAMESPACE_PARAMETER = {
    "in": "path",
    "name": "namespace",
    "required": True,
    "description": f"The namespace: {MESSAGE}.",
    "schema": {"type": "string", "pattern": NAMESPACE_RE, "minLength": 1, "maxLength": 63},
}
BAD_NAMESPACE = "No namespace can have that name; `errors.path.namespace` says why."


@blp.route("/<namespace>", parameters=[NAMESPACE_PARAMETER])
class Namespace(MethodView):
    @blp.response(200, LimitsSchema)
    @blp.alt_response(422, description=BAD_NAMESPACE)
    def get(self, namespace):
        """A namespace's quotas (null: the installation's default)."""
        return admin.limits(caller(), namespace)

    @blp.arguments(LimitsBodySchema)
    @blp.response(200, LimitsSchema)
    @blp.alt_response(
        422, description="The body is invalid (`errors.json` names each field), or the namespace (`errors.path`)."
    )
    def put(self, body, namespace):
        """Set a namespace's quotas, its jobs' default notification targets and resource limits (its admins)."""
        return admin.set_limits(
            caller(),
            namespace,
            max_running=body["max_running"],
            max_queued=body["max_queued"],
            **{name: body[name] for name in RESOURCE_LIMITS},
            notify=body["notify"],
        )

    @blp.response(204)
    @blp.alt_response(422, description=BAD_NAMESPACE)
    def delete(self, namespace):
        """Delete a namespace's quotas: the installation's defaults hold again (its admins; audited)."""
        admin.delete_limits(caller(), namespace)
