"""The errors of ``hydra.client``: Hydra's own errors (``hydra.errors``), as the API answered them.

Each error answer raises the ``hydra.errors`` class whose ``http_status`` it is, in a
subclass that also is a :class:`ClientError` (the answer's ``status_code`` and ``body``), so
``except hydra.errors.NotFound`` works on both sides of the API, and ``except ClientError``
catches every failure of a client call.
"""

from __future__ import annotations

from typing import Any

from hydra import errors


class ClientError(errors.HydraError):
    """A request to the API failed. ``status_code`` is None when no answer came."""

    def __init__(self, message: str, *, status_code: int | None = None, body: Any = None):
        # Not the server-side classes' constructors: an answer carries a message, not their fields.
        Exception.__init__(self, message)
        self.message = message
        self.status_code = status_code
        self.body = body

    def __str__(self) -> str:
        return self.message


class Unavailable(ClientError, errors.Unavailable):
    """The API cannot be reached, or answered 503 (MongoDB or Redis down)."""

    service = "the Hydra API"


class InvalidRequest(ClientError, errors.InvalidRequest):
    """400 or 422."""

    @property
    def errors(self) -> dict:
        """Field errors by location: ``{"json": {"field": ["message", ...]}, "query": {...}}``."""
        return (self.body or {}).get("errors") or {} if isinstance(self.body, dict) else {}


class NotAuthenticated(ClientError, errors.NotAuthenticated):
    """401: no token, or one the API does not accept (HYDRA_TOKEN, or .hydra/admin.token)."""


class Forbidden(ClientError, errors.Forbidden):
    """403: the token's roles do not allow this."""


class NotFound(ClientError, errors.NotFound):
    """404."""

    kind, ident = "", ""  # the server's words are in ``message``


class Conflict(ClientError, errors.Conflict):
    """409 (e.g. cancelling a run that already ended)."""


class ServerError(ClientError):
    """Any other error answer (500: a bug in the server, logged there)."""


class WaitTimeout(ClientError):
    """:meth:`Client.wait` / :meth:`Client.follow` ran out of time."""


#: The error of each answer's status, from the statuses the classes carry; 400 (a body that is
#: not JSON) is an invalid request too.
_ERRORS = {
    400: InvalidRequest,
    **{cls.http_status: cls for cls in (NotAuthenticated, Forbidden, NotFound, Conflict, InvalidRequest, Unavailable)},
}


def error_of(request: str, status_code: int, body: Any) -> ClientError:
    """The error for an error answer (``body``: its decoded JSON, or None) to ``request``
    (``"GET /jobs/"``): its class by status, its message from the one error shape."""
    message = body.get("message") if isinstance(body, dict) else None
    if not message:
        name = body.get("status") if isinstance(body, dict) else None
        message = f"{request}: HTTP {status_code}" + (f" {name}" if name else "")
    return _ERRORS.get(status_code, ServerError)(message, status_code=status_code, body=body)
