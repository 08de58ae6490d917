"""What an answer shows of a secret: a job's write-only values.

A job's write-only values are the values of its ``env``, for a webhook the values of its
``http.headers`` (``Authorization: Bearer ...``) and its ``http.body``, and its notification
targets' secrets (a webhook's ``secret``, a Slack URL: ``hydra.model.notify.redacted_targets``). Every interface that
shows a job (REST's ``JobSchema``, so the CLI and the Python client too; gRPC's ``Job``; the
console's pages) shows the names - of the variables, of the headers - each with the value
:data:`REDACTED`, and a body that is set as :data:`REDACTED`.

An update that leaves them out keeps them (:func:`patched`): a PATCH replaces the top-level
fields it names, and merges an ``http`` it names into the stored request field by field, so a
change of the URL keeps the headers and the body. To change one, send it; to remove headers,
send ``{}``; to remove the body, ``null``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: What an answer shows for a write-only value.
REDACTED = "<redacted>"
#: The write-only parts of a webhook's request.
HTTP_SECRETS = ("headers", "body")


def redacted(env: Mapping[str, Any] | None) -> dict[str, str] | None:
    """``env`` (or a webhook's headers) with every value replaced by :data:`REDACTED` (None stays None)."""
    if env is None:
        return None
    return {str(name): REDACTED for name in env}


def redacted_http(http: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A webhook's request as answers show it: its headers' names, and :data:`REDACTED` for a body."""
    if http is None:
        return None
    shown = dict(http)
    if shown.get("headers") is not None:
        shown["headers"] = redacted(shown["headers"])
    if shown.get("body") is not None:
        shown["body"] = REDACTED
    return shown


def without_secrets(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A job body with its write-only values left out (what an edit form shows: sent back as a
    PATCH, it keeps them)."""
    shown = {name: value for name, value in spec.items() if name not in ("env", "notify")}
    if isinstance(shown.get("http"), Mapping):
        shown["http"] = {name: value for name, value in shown["http"].items() if name not in HTTP_SECRETS}
    return shown


def patched(stored: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """The job body ``stored`` with a PATCH's fields: each top-level field it names replaces the
    stored one, and an ``http`` it names is merged into the stored request field by field (so the
    write-only values it leaves out are kept)."""
    merged = {**stored, **patch}
    if isinstance(patch.get("http"), Mapping) and isinstance(stored.get("http"), Mapping):
        merged["http"] = {**stored["http"], **patch["http"]}
    return merged
