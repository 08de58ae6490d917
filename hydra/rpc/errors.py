"""Hydra's errors as gRPC statuses, with the standard error details (``google.rpc``).

============================ ===================== =====================================
error                        code                  details
============================ ===================== =====================================
InvalidJob, bad arguments    INVALID_ARGUMENT      BadRequest: a violation per field
NotAuthenticated             UNAUTHENTICATED
Forbidden                    PERMISSION_DENIED
NotFound                     NOT_FOUND
KeyInFlight                  ABORTED               (send it again)
Conflict (others)            FAILED_PRECONDITION
Unavailable                  UNAVAILABLE           RetryInfo: 5 s
anything else                INTERNAL              (logged)
============================ ===================== =====================================

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

from hydra.errors import (
    Conflict,
    Forbidden,
    HydraError,
    InvalidJob,
    KeyInFlight,
    NotAuthenticated,
    NotFound,
    Unavailable,
)

log = logging.getLogger(__name__)

DOMAIN = "hydra.v1"
#: What a client should wait before trying again when a store is down (REST: Retry-After).
RETRY_AFTER_SECONDS = 5


class InvalidArgument(HydraError):
    """Request fields that fail validation: ``errors`` as marshmallow gives them (a field
    name, or nested, to messages), relative to the request field ``prefix``."""

    def __init__(self, errors: dict, prefix: str = ""):
        self.errors, self.prefix = errors, prefix
        super().__init__(f"invalid argument: {errors}")


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
    if isinstance(exc, (InvalidArgument, InvalidJob)):
        prefix = exc.prefix if isinstance(exc, InvalidArgument) else ""
        bad = error_details_pb2.BadRequest(field_violations=violations(exc.errors, prefix))
        fields = ", ".join(sorted({v.field or "(request)" for v in bad.field_violations}))
        return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=f"invalid: {fields}", details=_pack(bad, info))
    if isinstance(exc, Unavailable):
        log.warning("%s unavailable: %s", exc.service, exc)
        retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=RETRY_AFTER_SECONDS))
        return status_pb2.Status(
            code=code_pb2.UNAVAILABLE, message=f"{exc.service} is unavailable", details=_pack(retry, info)
        )
    codes = (
        (NotAuthenticated, code_pb2.UNAUTHENTICATED),
        (Forbidden, code_pb2.PERMISSION_DENIED),
        (NotFound, code_pb2.NOT_FOUND),
        (KeyInFlight, code_pb2.ABORTED),
        (Conflict, code_pb2.FAILED_PRECONDITION),
    )
    for cls, code in codes:
        if isinstance(exc, cls):
            return status_pb2.Status(code=code, message=str(exc), details=_pack(info))
    log.error("unhandled error in a gRPC call", exc_info=exc)
    return status_pb2.Status(code=code_pb2.INTERNAL, message="internal error (logged)")


def abort(context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
    """End the call with the status of ``exc`` (raises, as ``context.abort`` does)."""
    context.abort_with_status(rpc_status.to_status(status_of(exc)))
    raise AssertionError("abort_with_status returned")  # it raises
