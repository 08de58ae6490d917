"""Waiting for a condition on real processes: the one poller of the tests and the bench.

Both already put ``deploy/local`` on their path for the stack, so it lives beside it rather
than in the runtime package (Hydra itself never polls a predicate like this) or in one of
the two (the bench importing from ``tests``, or the tests from ``bench``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TimedOut(AssertionError):
    """A wait ran out of time. An AssertionError, so that in a test it is the test's failure."""


def wait_until(
    predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.1, message: str = "condition"
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy, and
    return that; after ``timeout`` seconds (the bound for a loaded machine: the wait ends as
    soon as the condition holds), raise :class:`TimedOut` naming ``message``. The predicate
    is always tried once more after the deadline, so a slow last call is not a failure."""
    deadline = time.monotonic() + timeout
    while True:
        expired = time.monotonic() > deadline
        value = predicate()
        if value:
            return value
        if expired:
            raise TimedOut(f"timed out after {timeout:g}s waiting for {message}")
        time.sleep(interval)
