"""What the API needs under gevent's worker class (``gunicorn.conf.py`` patches the standard
library, then calls :func:`redis_checks_without_the_hub`).

Before each command, redis-py checks that the connection it takes from its pool holds no
unread data (``ConnectionPool.get_connection`` -> ``can_read(timeout=0)``, a ``poll`` with a
zero timeout in ``redis._parsers.hiredis``). gevent's ``select.poll`` makes that check a trip
through the hub: it starts a watcher per descriptor, switches to the event loop and back.
Measured in ``make bench``'s burst (py-spy, 2026-12-07), that check was 7 % of the API's CPU:
a submission makes about ten Redis round trips (Hydra's and kombu's, on the same redis-py).
A poll with a zero timeout returns at once and never waits, so the operating system's own
``poll`` does it without blocking the other greenlets; a poll that may wait (any other
timeout) still goes through gevent's.
"""

from __future__ import annotations

import select
import types
from typing import Any


class _Poll:
    """``select.poll`` for redis-py's parser: the original one for a zero timeout, gevent's
    (whatever ``select.poll`` is) for a poll that may wait."""

    def __init__(self, original: Any, green: Any):
        self._original, self._green = original, green
        self._registered: list[tuple[Any, int]] = []
        self._quick = original()

    def register(self, fd: Any, eventmask: int = select.POLLIN | select.POLLPRI | select.POLLOUT) -> None:
        self._quick.register(fd, eventmask)
        self._registered.append((fd, eventmask))

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        if timeout == 0:
            return self._quick.poll(0)
        waiting = self._green()
        for fd, eventmask in self._registered:
            waiting.register(fd, eventmask)
        return waiting.poll(timeout)


def redis_checks_without_the_hub() -> bool:
    """Give redis-py's reply parser a ``select`` whose zero-timeout polls skip gevent's hub.
    Returns False (and changes nothing) when ``select`` is not gevent's, or redis-py has no
    such parser module."""
    try:
        from gevent import monkey
        from redis._parsers import hiredis
    except ImportError:
        return False
    if not monkey.is_object_patched("select", "poll") or not hasattr(hiredis, "select"):
        return False
    original, green = monkey.get_original("select", "poll"), select.poll
    shim = types.ModuleType("select")
    shim.__dict__.update({name: getattr(select, name) for name in dir(select) if not name.startswith("__")})
    shim.poll = lambda: _Poll(original, green)  # type: ignore[attr-defined]
    hiredis.select = shim  # type: ignore[attr-defined]
    return True
