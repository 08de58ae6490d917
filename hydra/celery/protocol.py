"""What a task message must look like before Celery's worker handles it (protocol 2).

Celery's consumer reads a task message's headers and body in the worker's main process,
before any task code runs and outside its own error handling for most fields: a task name
that is a JSON object (``strategies[name]``: unhashable), an ``expires`` or ``eta`` of ``{}``
or ``0`` (read as "none", then used as a date), a ``timelimit`` that is not a pair, a body
that is not ``[args, kwargs, embed]``. Each stopped the worker ("Unrecoverable error"), and
the message, restored at shutdown, stopped it again when it came back.

:func:`header_problem` and :func:`body_problem` say what is wrong with such a message, so
that ``hydra.celery.consumer`` hands it to Celery's own hook for an invalid task (which
records and rejects it) instead. The rules are those of the messages Celery and Hydra
publish (see ``Pipeline.send``): each field has the JSON type Celery writes, or is absent.
Headers these rules do not name pass unchecked; what a message asks to run is checked by
its signature (``hydra.celery.worker.admit``), not here.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from celery.utils.time import maybe_iso8601

#: Headers that are a string when present.
TEXT = ("shadow", "root_id", "parent_id", "group", "origin", "argsrepr", "kwargsrepr", "lang", "hydra_retry_of")
#: Headers that are a whole number, zero or more, when present.
COUNTS = ("retries", "group_index", "replaced_task_nesting", "hydra_lost", "hydra_failed")
#: Headers that are a date (ISO 8601) when present.
DATES = ("eta", "expires")
#: The longest time limit a message may ask for (seconds; Celery's timers add it to the clock).
LONGEST_LIMIT = 10**9
#: The embed (a body's third item): the canvas steps of a message.
EMBED_LISTS = ("callbacks", "errbacks", "chain")


def header_problem(headers: dict) -> str | None:
    """Why Celery's worker cannot take a message with these headers, or None."""
    if not isinstance(headers.get("task"), str) or not headers["task"]:
        return "its task name (headers.task) is not a string"
    if not isinstance(headers.get("id"), str) or not headers["id"]:
        return "its task id (headers.id) is not a string"
    for key in TEXT:
        if headers.get(key) is not None and not isinstance(headers[key], str):
            return f"headers.{key} is not a string"
    for key in COUNTS:
        value = headers.get(key)
        if value is not None and not (_is_int(value) and value >= 0):
            return f"headers.{key} is not a whole number"
    for key in DATES:
        if headers.get(key) is not None and not _is_date(headers[key]):
            return f"headers.{key} is not an ISO 8601 date"
    limits = headers.get("timelimit")
    if limits is not None and not (
        isinstance(limits, (list, tuple))
        and len(limits) == 2
        and all(limit is None or (_is_number(limit) and 0 <= limit <= LONGEST_LIMIT) for limit in limits)
    ):
        return "headers.timelimit is not a pair of seconds (soft, hard)"
    if headers.get("ignore_result") is not None and not isinstance(headers["ignore_result"], bool):
        return "headers.ignore_result is not a boolean"
    stamped = headers.get("stamped_headers")
    if stamped is not None and not (isinstance(stamped, list) and all(isinstance(name, str) for name in stamped)):
        return "headers.stamped_headers is not a list of names"
    if headers.get("stamps") is not None and not isinstance(headers["stamps"], dict):
        return "headers.stamps is not an object"
    return None


def body_problem(body: Any) -> str | None:
    """Why a decoded task body is not protocol 2's ``[args, kwargs, embed]``, or None."""
    if not isinstance(body, (list, tuple)) or len(body) != 3:
        return "its body is not [args, kwargs, embed]"
    args, kwargs, embed = body
    if not isinstance(args, (list, tuple)):
        return "its args are not a list"
    if not isinstance(kwargs, dict):
        return "its kwargs are not an object"
    if embed is None:
        return None
    if not isinstance(embed, dict):
        return "its embed is not an object"
    for key in EMBED_LISTS:
        if embed.get(key) is not None and not isinstance(embed[key], list):
            return f"its embed's {key} is not a list"
    if embed.get("chord") is not None and not isinstance(embed["chord"], dict):
        return "its embed's chord is not an object"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _is_date(value: Any) -> bool:
    if isinstance(value, datetime):  # kombu's JSON decodes its own date encoding
        return True
    if not isinstance(value, str) or not value:
        return False
    try:
        maybe_iso8601(value)
    except (ValueError, TypeError, OverflowError):
        return False
    return True
