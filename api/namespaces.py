"""``/namespaces/<namespace>``: a namespace's limits - how many of its runs may be in flight, and
wait - and the default notification targets of its jobs; set, read, and deleted (back to the installation's defaults). The path's namespace is
checked like a job's: 422 naming it otherwise."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from api.auth import caller
from api.schemas import notify_answer
from hydra.control import admin
from hydra.model.namespaces import MESSAGE, NAMESPACE_RE
from hydra.model.notify import notify_field

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
        """Set a namespace's quotas and its jobs' default notification targets (its admins)."""
        return admin.set_limits(
            caller(),
            namespace,
            max_running=body["max_running"],
            max_queued=body["max_queued"],
            notify=body["notify"],
        )

    @blp.response(204)
    @blp.alt_response(422, description=BAD_NAMESPACE)
    def delete(self, namespace):
        """Delete a namespace's quotas: the installation's defaults hold again (its admins; audited)."""
        admin.delete_limits(caller(), namespace)
