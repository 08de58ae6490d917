"""``/audit``: who submitted, changed, paused, triggered, cancelled, retried or deleted what, and when."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate

from api.auth import caller
from api.jobs import paged
from api.schemas.common import NEXT_CURSOR_HEADER
from hydra.control import admin
from hydra.model.queries import CursorField

blp = Blueprint("audit", __name__, url_prefix="/audit", description="The audit trail (admins).")


class AuditArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    namespace = fields.String(load_default=None, metadata={"description": "The namespace."})
    actor = fields.String(load_default=None, metadata={"description": "Only what this user did."})
    target = fields.String(load_default=None, metadata={"description": "Only what was done to this job, run or token."})
    limit = fields.Integer(
        load_default=100, validate=validate.Range(1, 1000), metadata={"description": "At most this many items."}
    )
    cursor = CursorField(
        load_default=None, metadata={"description": "Where the previous page ended: its X-Next-Cursor header (opaque)."}
    )


class AuditEventSchema(Schema):
    id = fields.String(metadata={"description": "Unique id (a UUID)."})
    at = fields.DateTime(metadata={"description": "When it was done."})
    actor = fields.String(metadata={"description": "The user who did it."})
    via = fields.String(metadata={"description": "How that user authenticated (token:<id>, oidc:<issuer>)."})
    action = fields.String(
        metadata={
            "description": "job.submit, job.update, job.delete, job.pause, job.resume, "
            "job.trigger, run.cancel, run.retry, token.create, "
            "token.revoke, namespace.limits."
        }
    )
    namespace = fields.String(allow_none=True, metadata={"description": "The namespace it belongs to."})
    target = fields.String(allow_none=True, metadata={"description": "The job, run, token or namespace."})
    details = fields.Dict(metadata={"description": "What changed (environment variables by name only)."})


@blp.route("/", strict_slashes=False)
class Audit(MethodView):
    @blp.arguments(AuditArgs, location="query")
    @blp.response(200, AuditEventSchema(many=True), headers=NEXT_CURSOR_HEADER)
    def get(self, args):
        """The audit trail of the namespaces the caller administers, newest first."""
        events, cursor = admin.audit_trail(
            caller(),
            namespace=args["namespace"],
            actor_name=args["actor"],
            target=args["target"],
            limit=args["limit"],
            cursor=args["cursor"],
        )
        return paged(events, cursor)
