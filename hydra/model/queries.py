"""What a listing or an output read may be asked for: the arguments of ``GET /jobs/``,
``GET /jobs/{id}/runs``, ``GET /dead-letter/`` and ``GET /runs/{id}/output`` - and of their
gRPC twins, which load the same schemas (so limits, defaults and messages are the same).
Loading returns the arguments with their defaults; errors name the field."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from hydra.model import cursor
from hydra.model.status import FILTER_WORDS, parse_status

STATUS_WORDS = list(FILTER_WORDS)
#: Longest an output read may wait for new output (seconds).
MAX_WAIT = 10.0


class StatusField(fields.String):
    """A run status; ``completed`` is accepted for ``succeeded``."""

    def __init__(self, **kwargs: Any):
        # Documented as an enum, so clients (and schemathesis) know the accepted words.
        kwargs["metadata"] = {"enum": STATUS_WORDS, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        word = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parse_status(word)
        except ValueError:
            raise ValidationError(f"unknown status {word!r}; use one of {', '.join(STATUS_WORDS)}") from None


class CursorField(fields.String):
    """An opaque page cursor (from the previous page: ``X-Next-Cursor``, or ``next_cursor``)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        token = super()._deserialize(value, attr, data, **kwargs)
        try:
            cursor.decode(token)
        except cursor.BadCursor as exc:
            raise ValidationError(str(exc)) from None
        return token


class JobListArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    status = StatusField(
        load_default=None,
        metadata={"description": "Only those whose (latest) run has this status; `completed` means succeeded."},
    )
    status_filter = StatusField(load_default=None, metadata={"description": "Another name for status."})
    user = fields.String(load_default=None, metadata={"description": "Only those of this user."})
    namespace = fields.String(load_default=None, metadata={"description": "The namespace."})
    limit = fields.Integer(
        load_default=50, validate=validate.Range(1, 1000), metadata={"description": "At most this many items."}
    )
    cursor = CursorField(
        load_default=None, metadata={"description": "Where the previous page ended: its X-Next-Cursor header (opaque)."}
    )


class RunListArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    limit = fields.Integer(
        load_default=100, validate=validate.Range(1, 1000), metadata={"description": "At most this many items."}
    )
    cursor = CursorField(
        load_default=None, metadata={"description": "Where the previous page ended: its X-Next-Cursor header (opaque)."}
    )


class DeadLetterArgs(RunListArgs):
    job_id = fields.String(load_default=None, metadata={"description": "The job's id."})
    include_retried = fields.Boolean(
        load_default=False, metadata={"description": "Also list dead letters that were retried already."}
    )


def chunk_after(description: str) -> fields.Integer:
    """The ``after`` argument of reading or following a run's output: a chunk's sequence
    number (-1: from the start)."""
    return fields.Integer(load_default=-1, validate=validate.Range(-1, 10**8), metadata={"description": description})


class OutputArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    after = chunk_after(
        "Return the chunks after this sequence number (-1: from the start); pass the previous answer's `next`."
    )
    wait = fields.Float(
        load_default=0.0,
        validate=validate.Range(0, MAX_WAIT),
        metadata={
            "description": f"Seconds (at most {MAX_WAIT:g}) to wait for new output when there is none yet "
            "and the run has not ended (long-poll follow mode)."
        },
    )
    limit = fields.Integer(
        load_default=256,
        validate=validate.Range(1, 1000),
        metadata={"description": "At most this many chunks (an answer also stops after about 1 MiB of text)."},
    )


class FollowArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    after = chunk_after(
        "Follow from the chunk after this one (-1: from the start). A `Last-Event-ID` header (what a "
        "reconnecting EventSource sends) counts the same; the larger one is used."
    )
