"""Hydra's errors as gRPC statuses, with the standard error details (``google.rpc``).

Each error's code is its class's ``grpc_code`` (``hydra/errors.py`` maps every error to
REST and gRPC once): INVALID_ARGUMENT with a BadRequest (a violation per field) for a body
that failed validation, UNAVAILABLE with a RetryInfo (its ``retry_after``) for a server
Hydra needs that is down, INTERNAL (logged) for anything else without a code of its own.

Every Hydra error also carries an ErrorInfo whose ``reason`` names it (``KEY_REUSED``,
``NOT_FOUND``, ...), in the domain ``hydra.v1``. A field is named by its path in the
request: ``job.affinity.tags[0]``.
"""

from __future__ import annotations

import logging
import re
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from hydra.errors import HydraError, InvalidJob, InvalidRequest, Unavailable

log = logging.getLogger(__name__)

DOMAIN = "hydra.v1"


class InvalidArgument(InvalidRequest):
    """Request fields that fail validation: ``errors`` as marshmallow gives them (a field
    name, or nested, to messages), relative to the request field ``prefix``."""

    def __init__(self, errors: dict, prefix: str = ""):
        self.errors, self.prefix, self.location = errors, prefix, "json"
        HydraError.__init__(self, f"invalid argument: {errors}")


def violations(errors: Any, path: str = "") -> list[error_details_pb2.BadRequest.FieldViolation]:
    """Marshmallow's error messages as field violations: ``{"affinity": {"tags": {0: [...]}}}``
    -> ``affinity.tags[0]``; a schema-level message names the enclosing field."""
    found = []
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = str(key)
            if name == "_schema":
                child = path
            elif re.fullmatch(r"\d+", name):
                child = f"{path}[{name}]"
            else:
                child = f"{path}.{name}" if path else name
            found += violations(value, child)
    elif isinstance(errors, (list, tuple)):
        for item in errors:
            found += violations(item, path)
    else:
        found.append(error_details_pb2.BadRequest.FieldViolation(field=path, description=str(errors)))
    return found


def _reason(exc: BaseException) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).upper()


def _pack(*details: Any) -> list[any_pb2.Any]:
    packed = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)
        packed.append(item)
    return packed


def status_of(exc: BaseException) -> status_pb2.Status:
    """The gRPC status (code, message, details) that answers ``exc``."""
    info = error_details_pb2.ErrorInfo(reason=_reason(exc), domain=DOMAIN)
    if isinstance(exc, (InvalidJob, InvalidRequest)):
        prefix = exc.prefix if isinstance(exc, InvalidArgument) else ""
        bad = error_details_pb2.BadRequest(field_violations=violations(exc.errors, prefix))
        fields = ", ".join(sorted({v.field or "(request)" for v in bad.field_violations}))
        return status_pb2.Status(
            code=code_pb2.Code.Value(exc.grpc_code), message=f"invalid: {fields}", details=_pack(bad, info)
        )
    if not isinstance(exc, HydraError) or exc.grpc_code == "INTERNAL":
        log.error("unhandled error in a gRPC call", exc_info=exc)
        return status_pb2.Status(code=code_pb2.INTERNAL, message="internal error (logged)")
    details = [info]
    if isinstance(exc, Unavailable):
        log.warning("%s unavailable: %s", exc.service, exc)
    if exc.retry_after is not None:
        details.insert(0, error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=exc.retry_after)))
    message = f"{exc.service} is unavailable" if isinstance(exc, Unavailable) else str(exc)
    return status_pb2.Status(code=code_pb2.Code.Value(exc.grpc_code), message=message, details=_pack(*details))


def abort(context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
    """End the call with the status of ``exc`` (raises, as ``context.abort`` does)."""
    context.abort_with_status(rpc_status.to_status(status_of(exc)))
    raise AssertionError("abort_with_status returned")  # it raises
