"""What every answer schema shares: records that cannot be rendered (``Tolerant``), the
listing and idempotency headers, and the fields that show secrets redacted (a job's ``env``, a
webhook's request, notification targets).
"""

from __future__ import annotations

from flask import g, has_request_context
from marshmallow import EXCLUDE, Schema, fields

from hydra.control import rendering
from hydra.control.rendering import Unrenderable  # noqa: F401 - its 409
from hydra.model.idempotency import IdempotencyKey
from hydra.model.notify import EVENTS, redacted_targets
from hydra.model.redaction import REDACTED, redacted, redacted_http

#: The response header that says how many stored records a listing skipped (and which).
SKIPPED_HEADER = "X-Skipped-Records"


class Tolerant:
    """A schema mixin: a stored record that cannot be rendered never breaks a listing
    (``hydra.control.rendering``): in a list it is skipped, flagged and logged, and the answer
    says so in the ``X-Skipped-Records`` header; alone it is a 409."""

    def _serialize(self, obj, *, many=False):
        one = super()._serialize  # type: ignore[misc]
        if many and obj is not None:
            rendered, skipped = rendering.render_each(obj, lambda item: one(item, many=False))
            if skipped and has_request_context():
                g.setdefault("hydra_skipped", []).extend(skipped)
            return rendered
        return rendering.render_one(obj, lambda item: one(item, many=False))


#: How a listing says where its next page starts (documented on each listing).
NEXT_CURSOR_HEADER = {
    "X-Next-Cursor": {
        "description": "Pass as `cursor` to get the next page; absent on the last page.",
        "schema": {"type": "string"},
    }
}

#: The header that marks an answer to a repeated request (same Idempotency-Key and body).
REPLAYED = "Idempotent-Replayed"
REPLAYED_HEADER = {
    REPLAYED: {
        "description": "`true` when this answers an earlier request with the same `Idempotency-Key`: "
        "no job was made now.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


class IdempotencyHeaders(Schema):
    """The optional ``Idempotency-Key`` of a submission (``hydra.model.idempotency``)."""

    class Meta:
        unknown = EXCLUDE

    key = IdempotencyKey(data_key="Idempotency-Key")


class RedactedValues(fields.Dict):
    """A job's ``env``: the variables' names, each value shown as :data:`REDACTED`."""

    def _serialize(self, value, attr, obj, **kwargs):
        return redacted(value)


class RedactedRequest(fields.Nested):
    """A webhook's request: its headers' names, each value shown as :data:`REDACTED`, and a
    body shown as :data:`REDACTED` (``hydra.model.redaction``)."""

    def _serialize(self, nested_obj, attr, obj, **kwargs):
        return super()._serialize(redacted_http(nested_obj), attr, obj, **kwargs)


class ShownWebhookSchema(Schema):
    url = fields.String(metadata={"description": "Where the signed JSON body is POSTed."})
    secret = fields.String(metadata={"description": f"Write-only: always `{REDACTED}`."})


class ShownSlackSchema(Schema):
    url = fields.String(metadata={"description": f"Write-only (the URL is the credential): always `{REDACTED}`."})


class ShownTargetSchema(Schema):
    """A notification target as answers show it (``hydra.model.notify.TargetSchema`` is what a body gives)."""

    on = fields.List(fields.String(), metadata={"description": f"Events it hears: {', '.join(EVENTS)}."})
    webhook = fields.Nested(ShownWebhookSchema, metadata={"description": "A generic webhook (its secret redacted)."})
    slack = fields.Nested(ShownSlackSchema, metadata={"description": "A Slack-compatible incoming webhook."})


class RedactedTargets(fields.List):
    """Notification targets: a webhook's secret and a Slack URL shown as :data:`REDACTED`."""

    def _serialize(self, value, attr, obj, **kwargs):
        return super()._serialize(redacted_targets(value), attr, obj, **kwargs)


def notify_answer(description: str) -> RedactedTargets:
    return RedactedTargets(
        fields.Nested(ShownTargetSchema),
        allow_none=True,
        metadata={
            "description": f"{description} A webhook's `secret` and a Slack `url` are write-only (shown as "
            f"`{REDACTED}`); a PATCH that leaves `notify` out keeps them."
        },
    )
