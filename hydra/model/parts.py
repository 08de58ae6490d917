"""The nested parts of a job body and its own field types: where a job may run
(``affinity``), its retry delays (``backoff``), an http job's request (``http``), an OS name,
and ``scheduled_at``'s start time. ``hydra.model.spec.JobSpecSchema`` puts them together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, pre_load, validate

from hydra.model.lifecycle import Backoff
from hydra.model.platform import KNOWN_OS, normalize_os

USER_RE = r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$"
TAG_RE = r"^[a-z0-9][a-z0-9_.-]*$"
MAX_TIMEOUT = 7 * 24 * 3600.0
#: Earliest and latest instants ``scheduled_at`` may name.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)
#: An HTTP header name: RFC 9110 token characters, less '$' and '.' (which MongoDB keys cannot hold).
HEADER_NAME_RE = r"^[A-Za-z0-9!#%&'*+^_`|~-]+$"
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


def _os_name(value: str) -> str:
    normalized = normalize_os(value) if isinstance(value, str) else None
    if normalized is None:
        raise ValidationError(f"unknown OS {value!r}; use one of {', '.join(KNOWN_OS)}")
    return normalized


class OsField(fields.String):
    """An OS name; aliases such as 'darwin' and 'win32' are accepted and normalized."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        return _os_name(super()._deserialize(value, attr, data, **kwargs))


#: What the API documents for ``scheduled_at``: a date-time with zone, or "" (meaning now).
START_TIME_PATTERN = (
    r"^$|^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})$"
)


class StartTime(fields.AwareDateTime):
    """``scheduled_at``: an ISO 8601 date-time with its zone. The empty string (meaning "now",
    as one-off task clients send it) is removed before loading (``JobSpecSchema.reject_non_object``);
    this class exists so the OpenAPI document can say so (a plain string with a pattern).
    Instants before 1970 or after 9999-12-30 (UTC) are refused."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            utc = moment.astimezone(UTC)
        except (OverflowError, ValueError):
            utc = None
        if utc is None or not EARLIEST <= utc <= LATEST:
            raise ValidationError("out of range: give a time between 1970-01-01 and 9999-12-30 (UTC)")
        return moment


class AffinitySchema(Schema):
    """Where a job may run. Empty lists mean "no constraint"."""

    class Meta:
        unknown = RAISE

    os = fields.List(
        OsField(),
        load_default=list,
        metadata={"description": "Operating systems the job may run on (any when empty): linux, macos, windows."},
    )
    tags = fields.List(
        fields.String(
            validate=[
                validate.Length(1, 64),
                validate.Regexp(TAG_RE, error="tags are lowercase letters, digits, '_', '.', '-'"),
            ]
        ),
        load_default=list,
        validate=validate.Length(max=32),
        metadata={"description": "Tags every chosen worker must have (worker queues tag.<name>)."},
    )
    allowed_users = fields.List(
        fields.String(validate=[validate.Length(1, 100), validate.Regexp(USER_RE)]),
        load_default=list,
        validate=validate.Length(max=100),
        metadata={"description": "When not empty, the job's user must be one of these."},
    )

    @post_load
    def dedupe(self, data: Any, **kwargs: Any) -> Any:
        return {key: sorted(set(values)) for key, values in data.items()}


#: The delays a job that gives no ``backoff`` retries with (defined once, in hydra.model.lifecycle).
DEFAULT_BACKOFF = Backoff()


class BackoffSchema(Schema):
    """Delay before retry n: min(cap, base * factor ** (n - 1)) seconds, +/- jitter (a fraction)."""

    class Meta:
        unknown = RAISE

    base = fields.Float(
        validate=validate.Range(min=0, max=86_400, min_inclusive=False),
        allow_nan=False,
        metadata={"description": f"Seconds before the first retry (default {DEFAULT_BACKOFF.base:g})."},
    )
    factor = fields.Float(
        validate=validate.Range(1, 100),
        allow_nan=False,
        metadata={
            "description": f"Each further retry waits this many times longer (default {DEFAULT_BACKOFF.factor:g})."
        },
    )
    cap = fields.Float(
        validate=validate.Range(min=0, max=MAX_TIMEOUT, min_inclusive=False),
        allow_nan=False,
        metadata={"description": f"Longest wait in seconds (default {DEFAULT_BACKOFF.cap:g})."},
    )
    jitter = fields.Float(
        validate=validate.Range(0, 1),
        allow_nan=False,
        metadata={
            "description": f"Random spread, as a fraction of the wait, both ways (default {DEFAULT_BACKOFF.jitter:g})."
        },
    )


class HttpSchema(Schema):
    """The request of an ``http`` job (a webhook call); 2xx means succeeded."""

    class Meta:
        unknown = RAISE

    url = fields.Url(
        required=True,
        schemes={"http", "https"},
        require_tld=False,
        validate=validate.Length(max=8192),
        metadata={"description": "The http(s) URL to call."},
    )
    method = fields.String(
        load_default="POST",
        validate=validate.OneOf(HTTP_METHODS),
        metadata={"description": "HTTP method (default POST)."},
    )
    headers = fields.Dict(
        keys=fields.String(
            validate=[
                validate.Length(1, 256),
                validate.Regexp(
                    HEADER_NAME_RE, error="a header name is letters, digits and !#%&'*+^_`|~- (no '$' or '.')"
                ),
            ]
        ),
        values=fields.String(
            validate=[
                validate.Length(max=8192),
                validate.Regexp(r"^[^\r\n\x00]*$", error="a header value holds no CR, LF or NUL"),
            ]
        ),
        load_default=dict,
        metadata={"description": "Request headers."},
    )
    body = fields.Raw(
        load_default=None, metadata={"description": "A string is sent as is; any other JSON value is sent as JSON."}
    )
    timeout = fields.Float(
        load_default=None,
        allow_nan=False,
        validate=validate.Range(min=0, max=MAX_TIMEOUT, min_inclusive=False),
        metadata={"description": "Seconds for the whole request (default: the job's timeout, else 30)."},
    )

    @pre_load
    def upper_method(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("method"), str):
            data = dict(data, method=data["method"].upper())
        return data
