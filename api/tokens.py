"""``/tokens``: API tokens - make one (its secret is in this answer only), list them, revoke one."""

from __future__ import annotations

from dataclasses import asdict

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from api.auth import caller
from hydra.control import admin
from hydra.model.namespaces import Namespace
from hydra.model.spec import USER_RE

blp = Blueprint("tokens", __name__, url_prefix="/tokens", description="API tokens: make, list, revoke.")


class TokenBodySchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(
        required=True,
        validate=validate.Length(1, 100),
        metadata={"description": "What the token is for, for people (ci, alice's laptop, ...)."},
    )
    user = fields.String(
        load_default=None,
        validate=validate.Regexp(USER_RE),
        metadata={"description": "The user it authenticates as (default: the caller)."},
    )
    roles = fields.Dict(
        keys=fields.String(validate=Namespace(every=True)),
        values=fields.String(validate=validate.OneOf(["viewer", "operator", "admin"])),
        required=True,
        metadata={
            "description": "Role by namespace (`*`: every namespace): viewer, operator or admin. "
            "Needs admin in each namespace named."
        },
    )
    act_as = fields.List(
        fields.String(),
        load_default=list,
        metadata={"description": "Users it may submit jobs as besides its own (`*`: any)."},
    )
    expires_days = fields.Float(
        load_default=None,
        validate=validate.Range(min=0, min_inclusive=False, max=3650),
        metadata={
            "description": "Days until it expires (default: never). A token made with a token expires "
            "no later than that one (a later time, or none, is cut to it)."
        },
    )


class TokenSchema(Schema):
    id = fields.String(metadata={"description": "The token's id (the part after `hydra_`)."})
    name = fields.String(metadata={"description": "Name of the job, for people."})
    user = fields.String(metadata={"description": "The user it authenticates as."})
    roles = fields.Dict(keys=fields.String(), values=fields.String(), metadata={"description": "Role by namespace."})
    act_as = fields.List(fields.String(), metadata={"description": "Users it may submit jobs as."})
    created_at = fields.DateTime(allow_none=True, metadata={"description": "When it was created."})
    created_by = fields.String(allow_none=True, metadata={"description": "Who made it."})
    expires_at = fields.DateTime(allow_none=True, metadata={"description": "When it stops working (null: never)."})
    revoked_at = fields.DateTime(
        allow_none=True, metadata={"description": "When it was revoked (null: not revoked itself; see `parent`)."}
    )
    parent = fields.String(
        allow_none=True,
        metadata={
            "description": "The token it was made with (null: made by a person or an operator). It works only "
            "while that one works: revoking or outliving the parent ends it too."
        },
    )


class NewTokenSchema(TokenSchema):
    token = fields.String(
        metadata={
            "description": "The secret: send it as `Authorization: Bearer <token>`. "
            "It is shown this once and never stored."
        }
    )


@blp.route("/", strict_slashes=False)
class Tokens(MethodView):
    @blp.arguments(TokenBodySchema)
    @blp.response(201, NewTokenSchema)
    @blp.alt_response(422, description="The body is invalid; `errors.json` names each field.")
    def post(self, body):
        """Make a token (only an admin of every namespace it grants a role in)."""
        issued = admin.create_token(
            caller(),
            name=body["name"],
            user=body["user"],
            roles=body["roles"],
            act_as=body["act_as"],
            expires_days=body["expires_days"],
        )
        return {**asdict(issued.token), "token": issued.secret}

    @blp.response(200, TokenSchema(many=True))
    def get(self):
        """List the tokens the caller could have made, and its own (never their secrets)."""
        return admin.visible_tokens(caller())


@blp.route("/<token_id>")
class Token(MethodView):
    @blp.response(200, TokenSchema)
    @blp.alt_response(404, description="No token with that id.")
    def delete(self, token_id):
        """Revoke a token (its record stays, with `revoked_at`)."""
        return admin.revoke_token(caller(), token_id)
