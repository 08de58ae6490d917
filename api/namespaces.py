"""``/namespaces/<namespace>``: a namespace's limits - how many of its runs may be in flight, and
wait; set, read, and deleted (back to the installation's defaults). The path's namespace is
checked like a job's: 422 naming it otherwise."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from api.auth import caller
from hydra.control import admin
from hydra.model.namespaces import MESSAGE, NAMESPACE_RE

blp = Blueprint("namespaces", __name__, url_prefix="/namespaces", description="Namespaces and their quotas.")


class LimitsBodySchema(Schema):
    class Meta:
        unknown = RAISE

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


class LimitsSchema(LimitsBodySchema):
    id = fields.String(metadata={"description": "The namespace."})
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
        """Set a namespace's quotas (its admins)."""
        return admin.set_limits(caller(), namespace, max_running=body["max_running"], max_queued=body["max_queued"])

    @blp.response(204)
    @blp.alt_response(422, description=BAD_NAMESPACE)
    def delete(self, namespace):
        """Delete a namespace's quotas: the installation's defaults hold again (its admins; audited)."""
        admin.delete_limits(caller(), namespace)
