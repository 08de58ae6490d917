"""One error format for every failure: ``{"code", "status", "message", "errors"}``.

flask-smorest already renders HTTP errors (and webargs validation errors, with the field
names under ``errors.json``) this way; this module answers Hydra's errors in the same shape,
with the status and retry hint each error class carries (``hydra/errors.py``; the stores and
the broker raise ``Unavailable`` for a server that does not answer), so no request ends in a
bare 500.

gunicorn answers some requests itself, before Flask sees them: a request line longer than
``limit_request_line`` (414), a header field longer than ``limit_request_field_size`` or more
fields than ``limit_request_fields`` (431), a request it cannot parse (400). It has no setting
for the body of those answers (its ``util.write_error`` writes HTML), so
:func:`answer_gunicorn_errors_in_json` replaces that one function in each API worker
(``gunicorn.conf.py``, ``post_worker_init``): gunicorn still decides the status, the body is
the one shape.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from hydra.errors import HydraError, InvalidJob, InvalidRequest, NotAuthenticated, Unavailable

log = logging.getLogger(__name__)

_NAMES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    414: "URI Too Long",
    422: "Unprocessable Entity",
    431: "Request Header Fields Too Large",
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


def answer(exc: HydraError):
    """The HTTP answer to a Hydra error: its status, retry hint and OpenAPI text are the
    class's own (``hydra/errors.py``); a body that failed validation names its fields."""
    if exc.http_status >= 500 and exc.retry_after is None:  # no class of its own: a bug
        log.error("unhandled error", exc_info=exc)
        return error_response(500, "internal error (logged)")
    headers = {} if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, NotAuthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="hydra"'
    if isinstance(exc, (InvalidJob, InvalidRequest)):
        what = "job" if isinstance(exc, InvalidJob) else "request"
        return error_response(exc.http_status, f"the {what} is invalid", {exc.location: exc.errors}, headers)
    if isinstance(exc, Unavailable):
        log.warning("%s unavailable: %s", exc.service, exc)
        return error_response(exc.http_status, f"{exc.service} is unavailable", headers=headers)
    return error_response(exc.http_status, str(exc), headers=headers)


def init_app(app: Flask) -> None:
    app.register_error_handler(HydraError, answer)

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


def gunicorn_message(status: int, said: str, limits: Any) -> str:
    """What an answer gunicorn gives itself says (``limits``: its settings)."""
    if status == 414:
        return (
            f"the request line (method, path and query) is longer than {limits.limit_request_line} bytes: "
            "shorten the query"
        )
    if status == 431:
        return (
            f"a request header field is longer than {limits.limit_request_field_size} bytes, or there are more "
            f"than {limits.limit_request_fields} of them"
        )
    if status >= 500:
        return "internal error (logged)"
    return said[:300] or _NAMES.get(status, "the request is invalid")


def answer_gunicorn_errors_in_json(limits: Any) -> None:
    """Make this gunicorn worker write the answers it gives itself in the one error shape
    (``limits``: its settings, whose limits the messages name)."""
    from gunicorn import util

    def write_error(sock, status_int: int, reason: str, mesg: str) -> None:
        body = json.dumps({"code": status_int, "status": reason, "message": gunicorn_message(status_int, mesg, limits)})
        head = (
            f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        util.write_nonblock(sock, (head + body).encode("latin-1"))

    util.write_error = write_error
