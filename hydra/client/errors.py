"""The errors of ``hydra.client``: every failure raises a :class:`ClientError`."""

from __future__ import annotations

from typing import Any

from hydra.errors import HydraError


class ClientError(HydraError):
    """A request to the API failed. ``status_code`` is None when no answer came."""

    def __init__(self, message: str, *, status_code: int | None = None, body: Any = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body


class Unavailable(ClientError):
    pass


class InvalidRequest(ClientError):
    @property
    def errors(self) -> dict:
        """Field errors by location: ``{"json": {"field": ["message", ...]}, "query": {...}}``."""
        return (self.body or {}).get("errors") or {} if isinstance(self.body, dict) else {}


class NotAuthenticated(ClientError):
    """401: no token, or one the API does not accept (HYDRA_TOKEN, or .hydra/admin.token)."""


class Forbidden(ClientError):
    """403: the token's roles do not allow this."""


class NotFound(ClientError):
    pass


class Conflict(ClientError):
    pass


class ServerError(ClientError):
    pass


class WaitTimeout(ClientError):
    pass


_ERRORS = {
    400: InvalidRequest,
    401: NotAuthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidRequest,
    503: Unavailable,
}


def error_of(request: str, status_code: int, body: Any) -> ClientError:
    """The error for an error answer (``body``: its decoded JSON, or None) to ``request``
    (``"GET /jobs/"``): its class by status, its message from the one error shape."""
    message = body.get("message") if isinstance(body, dict) else None
    if not message:
        name = body.get("status") if isinstance(body, dict) else None
        message = f"{request}: HTTP {status_code}" + (f" {name}" if name else "")
    return _ERRORS.get(status_code, ServerError)(message, status_code=status_code, body=body)
