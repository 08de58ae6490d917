"""Idempotent submission, as the well-known payment APIs define it (pure: no I/O).

A client sends a key of its choosing with a submission (REST: the ``Idempotency-Key``
header; gRPC: ``idempotency_key``). For :data:`KEEP` after the first request with a key:

* the same key with the same job body answers with the job that first request made (the
  same job and run ids), marked as a replay, and submits nothing;
* the same key with another body is refused (409 / FAILED_PRECONDITION);
* concurrent requests with the same key make one job between them.

Keys belong to their caller: the scope of a key is the caller's user and the job's
namespace, so two callers never see each other's keys. Bodies are compared as validated
(key order, whitespace and defaults make no difference), by a SHA-256 digest.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from marshmallow import fields, validate

#: How long a key answers for its first request.
KEEP = timedelta(hours=24)
#: A key: 1 to 255 visible ASCII characters (a UUID is the usual choice).
KEY_RE = r"^[!-~]{1,255}$"


class IdempotencyKey(fields.String):
    """An idempotency key (see the module docstring)."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("load_default", None)
        kwargs.setdefault(
            "metadata",
            {
                "description": "Send the same key again (within 24 h, with the same body) to get the "
                "job the first request made instead of a second one: 1-255 visible ASCII characters, "
                "e.g. a UUID."
            },
        )
        kwargs["validate"] = validate.Regexp(KEY_RE, error="1 to 255 visible ASCII characters, e.g. a UUID")
        super().__init__(**kwargs)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not part of a job body")


def body_digest(spec: dict) -> str:
    """The digest of a validated job body (equal bodies, equal digests)."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=_plain, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def scope_of(user: str, namespace: str, key: str) -> str:
    """Whose key it is: a digest of the caller's user, the namespace and the key."""
    return hashlib.sha256("\x1f".join((user, namespace, key)).encode()).hexdigest()


def claim_id(scope: str, generation: int) -> str:
    """The ``_id`` of a key's claim: generation 0 first, the next one once it expired."""
    return f"{scope}/{generation}"
