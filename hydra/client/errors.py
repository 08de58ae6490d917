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
