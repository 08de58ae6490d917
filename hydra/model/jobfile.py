"""Job files: a job as a file its owner keeps (``hydra job export``) and applies
(``hydra job apply``), like ``nomad job run`` and ``kubectl apply``.

A job file holds one job body, or a list of them: every field a user can set. Which fields
those are is never listed by hand: they are the fields of ``hydra.model.spec.JobSpecSchema``
that a body may load (:data:`SETTABLE`), so a field added to the schema is exported and
applied with no change here. What an answer shows beyond them (``READ_ONLY_FIELDS``: the
job's state) is left out.

Write-only values (``hydra.model.redaction``: the values of ``env``, of a webhook's
``http.headers`` and its ``http.body``) are never exported: each is written as the reference
:data:`SECRET` (``{"secret": true}``). Applying a file resolves a reference:

1. with a value the caller supplies (``hydra job apply --env-from-shell`` / ``--secrets FILE``:
   :func:`supply`, on the caller's machine), else
2. with the value the job stored (:func:`resolve`, on the server), else
3. it is refused (422 naming the field): a new job needs its values.

``"<redacted>"``, what answers show, is taken as a reference too, so the answer of
``GET /jobs/{job_id}`` is a job file.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hydra.model.redaction import REDACTED
from hydra.model.spec import JobSpecSchema

#: How a job file references a write-only value instead of holding it.
SECRET: dict[str, bool] = {"secret": True}


def settable_fields(schema: type = JobSpecSchema) -> tuple[str, ...]:
    """The fields of a job body a user can set: every field the schema loads (not ``dump_only``)."""
    return tuple(name for name, field in schema().fields.items() if not field.dump_only)


#: The fields of a job file, in the schema's order.
SETTABLE = settable_fields()


def is_reference(value: Any) -> bool:
    """A reference to a write-only value (:data:`SECRET`, or what answers show: ``<redacted>``)."""
    return value in (SECRET, REDACTED)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def exported(job: Mapping[str, Any]) -> dict[str, Any]:
    """The job file of a job (an answer about it, ``GET /jobs/{job_id}``): its settable fields
    that are set, each write-only value as :data:`SECRET` - those of ``env`` and ``http``, and
    any value the answer shows as ``<redacted>`` (so a write-only field added to jobs, redacted
    in answers as every one is, is referenced too)."""
    shown: dict[str, Any] = {}
    for name in SETTABLE:
        value = job.get(name)
        if value is None:
            continue
        if name == "env":
            value = {key: dict(SECRET) for key in value}
        elif name == "http" and isinstance(value, Mapping):
            value = dict(value)
            if value.get("headers"):
                value["headers"] = {key: dict(SECRET) for key in value["headers"]}
            if value.get("body") is not None:
                value["body"] = dict(SECRET)
        shown[name] = _referenced(_plain(value))
    return shown


def _referenced(value: Any) -> Any:
    """``value`` with every ``<redacted>`` in it as :data:`SECRET`."""
    if value == REDACTED:
        return dict(SECRET)
    if isinstance(value, Mapping):
        return {key: _referenced(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_referenced(item) for item in value]
    return value


def secret_slots(body: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """Where ``body`` references write-only values: ``("env", NAME)``, ``("headers", NAME)``,
    ``("body", None)``."""
    slots: list[tuple[str, str | None]] = []
    env = body.get("env")
    if isinstance(env, Mapping):
        slots += [("env", key) for key, value in env.items() if is_reference(value)]
    http = body.get("http")
    if isinstance(http, Mapping):
        headers = http.get("headers")
        if isinstance(headers, Mapping):
            slots += [("headers", key) for key, value in headers.items() if is_reference(value)]
        if "body" in http and is_reference(http["body"]):
            slots.append(("body", None))
    return slots


def _filled(body: Mapping[str, Any], values: Mapping[tuple[str, str | None], Any]) -> dict[str, Any]:
    """``body`` with the referenced values of ``values`` (by slot) put in."""
    out = dict(body)
    for (kind, key), value in values.items():
        if kind == "env":
            out["env"] = {**out["env"], key: value}
        else:
            http = dict(out["http"])
            if kind == "headers":
                http["headers"] = {**http["headers"], key: value}
            else:
                http["body"] = value
            out["http"] = http
    return out


def supply(body: Mapping[str, Any], secrets: Mapping[str, Any], shell: Mapping[str, str] | None = None) -> dict:
    """``body`` with the references the caller has values for filled in: from ``secrets``
    (``{"env": {NAME: value}, "headers": {NAME: value}, "body": value}``), then, for ``env``,
    from ``shell`` (the caller's environment, with ``--env-from-shell``). Others stay."""
    values: dict[tuple[str, str | None], Any] = {}
    for kind, key in secret_slots(body):
        given = secrets.get(kind)
        if kind == "body":
            if "body" in secrets:
                values[(kind, key)] = given
        elif isinstance(given, Mapping) and key in given:
            values[(kind, key)] = given[key]
        elif kind == "env" and shell is not None and key is not None and key in shell:
            values[(kind, key)] = shell[key]
    return _filled(body, values)


def references(value: Any, path: tuple = ()) -> list[tuple]:
    """The paths (keys and list indices) of the references in a job body; a webhook's body is
    a reference as a whole or not at all (its JSON is the user's own)."""
    if is_reference(value):
        return [path]
    if path == ("http", "body"):
        return []
    if isinstance(value, Mapping):
        return [found for key, item in value.items() for found in references(item, (*path, key))]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in references(item, (*path, index))]
    return []


def _at(doc: Any, path: tuple) -> Any:
    """The value at ``path`` in ``doc`` (None when there is none)."""
    for step in path:
        if isinstance(doc, Mapping):
            present = step in doc
        else:
            present = isinstance(doc, list) and isinstance(step, int) and 0 <= step < len(doc)
        if not present:
            return None
        doc = doc[step]
    return doc


def _put(doc: Any, path: tuple, value: Any) -> None:
    for step in path[:-1]:
        doc = doc[step]
    doc[path[-1]] = value


def resolve(body: Mapping[str, Any], stored: Mapping[str, Any] | None) -> tuple[dict, dict[str, Any]]:
    """``body`` with each reference replaced by the value ``stored`` (the job's stored body)
    holds at the same place, and the errors of those it has none for (nested by field, as a
    422 names them)."""
    filled = copy.deepcopy(dict(body))
    errors: dict[str, Any] = {}
    for path in references(body):
        value = _at(stored, path)
        if value is not None and not is_reference(value):
            _put(filled, path, copy.deepcopy(value))
            continue
        where = errors
        for step in path[:-1]:
            where = where.setdefault(str(step), {})
        where[str(path[-1])] = [
            "references a write-only value the job does not have: supply it (--secrets, --env-from-shell)"
        ]
    return filled, errors


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_instant)


def _instant(value: Any) -> str:
    if isinstance(value, datetime):  # MongoDB keeps milliseconds, and may hand back naive UTC
        moment = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.isoformat(timespec="milliseconds")
    raise TypeError(type(value).__name__)


def changed_fields(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[str]:
    """The settable fields whose values differ between two validated job bodies."""
    return [name for name in SETTABLE if _canonical(new.get(name)) != _canonical(old.get(name))]
