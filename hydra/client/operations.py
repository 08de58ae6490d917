"""Which Client method calls which operation of the REST API (``OPERATIONS``; a test checks
that none is missing), and how an id becomes one segment of a path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import requests

F = TypeVar("F", bound=Callable[..., Any])
#: ``"GET /jobs/{job_id}"`` -> the name of the Client method that calls it.
OPERATIONS: dict[str, str] = {}


def operation(*names: str) -> Callable[[F], F]:
    """Mark a Client method as the one that calls these operations (``"POST /jobs/"``)."""

    def mark(method: F) -> F:
        for name in names:
            OPERATIONS[name] = method.__name__
        return method

    return mark


def segment(ident: str) -> str:
    """An id as one URL path segment."""
    return requests.utils.quote(str(ident), safe="")
