"""One error format for every failure: ``{"code", "status", "message", "errors"}``.

flask-smorest already renders HTTP errors (and webargs validation errors, with the field
names under ``errors.json``) this way; this module maps Hydra's errors onto the same shape
(the stores and the broker raise ``Unavailable`` for a server that does not answer), so no
request ends in a bare 500.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from hydra.errors import Conflict, Forbidden, InvalidJob, InvalidRequest, NotAuthenticated, NotFound, Unavailable

log = logging.getLogger(__name__)

_NAMES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def error_response(code: int, message: str, errors: dict | None = None, headers: dict | None = None):
    body = {"code": code, "status": _NAMES.get(code, ""), "message": message}
    if errors is not None:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = code
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(InvalidJob)
    def invalid_job(exc: InvalidJob):
        return error_response(422, "the job is invalid", {"json": exc.errors})

    @app.errorhandler(InvalidRequest)
    def invalid_request(exc: InvalidRequest):
        return error_response(422, "the request is invalid", {exc.location: exc.errors})

    @app.errorhandler(NotAuthenticated)
    def not_authenticated(exc: NotAuthenticated):
        return error_response(401, str(exc), headers={"WWW-Authenticate": 'Bearer realm="hydra"'})

    @app.errorhandler(Forbidden)
    def forbidden(exc: Forbidden):
        return error_response(403, str(exc))

    @app.errorhandler(NotFound)
    def not_found(exc: NotFound):
        return error_response(404, str(exc))

    @app.errorhandler(Conflict)
    def conflict(exc: Conflict):
        return error_response(409, str(exc))

    @app.errorhandler(Unavailable)
    def unavailable(exc: Unavailable):
        log.warning("%s unavailable: %s", exc.service, exc)
        return error_response(503, f"{exc.service} is unavailable", headers={"Retry-After": "5"})

    @app.errorhandler(MethodNotAllowed)
    def method_not_allowed(exc: MethodNotAllowed):
        # flask-smorest's HTTP error handler drops the Allow header RFC 9110 requires.
        return error_response(
            405,
            f"method not allowed (allowed: {', '.join(exc.valid_methods or [])})",
            headers={"Allow": ", ".join(exc.valid_methods or [])},
        )

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):  # rendered by flask-smorest's handler
            return exc
        log.exception("unhandled error")
        return error_response(500, "internal error (logged)")
