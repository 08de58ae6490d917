"""api/green.py: under gevent, redis-py's zero-timeout readiness check uses the operating
system's poll (no trip through the hub), and a poll that may wait still uses gevent's.

The test process is not monkey-patched (that would change every other test), so gevent's poll
is stood in for by a recorder: what matters is which poll each timeout reaches, and that the
answers are the real ones."""

from __future__ import annotations

import select
import socket

import pytest

from api import green


class Recorder:
    """Stands in for gevent's ``select.poll``: records the timeouts it is asked to wait for."""

    timeouts: list = []

    def __init__(self):
        self._poll = select.poll()

    def register(self, fd, eventmask):
        self._poll.register(fd, eventmask)

    def poll(self, timeout=None):
        Recorder.timeouts.append(timeout)
        return self._poll.poll(timeout)


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_a_zero_timeout_poll_uses_the_original_poll_and_sees_what_is_readable(pair):
    a, b = pair
    Recorder.timeouts = []
    poller = green._Poll(select.poll, Recorder)
    poller.register(a, select.POLLIN)
    assert poller.poll(0) == []  # nothing to read yet
    b.sendall(b"+OK\r\n")
    assert poller.poll(0) == [(a.fileno(), select.POLLIN)]
    assert Recorder.timeouts == []  # never went to the (stand-in) gevent poll


def test_a_poll_that_may_wait_goes_to_gevents_poll(pair):
    a, b = pair
    Recorder.timeouts = []
    poller = green._Poll(select.poll, Recorder)
    poller.register(a, select.POLLIN)
    b.sendall(b"x")
    assert poller.poll(50) == [(a.fileno(), select.POLLIN)]
    assert Recorder.timeouts == [50]


def test_nothing_changes_without_gevents_select():
    from redis._parsers import hiredis

    before = hiredis.select
    assert green.redis_checks_without_the_hub() is False  # this process's select is not gevent's
    assert hiredis.select is before


def test_with_gevents_select_redis_py_gets_the_shim(monkeypatch):
    from gevent import monkey
    from redis._parsers import hiredis

    monkeypatch.setattr(monkey, "is_object_patched", lambda module, name: (module, name) == ("select", "poll"))
    monkeypatch.setattr(monkey, "get_original", lambda module, name: select.poll)
    monkeypatch.setattr(hiredis, "select", hiredis.select)  # restored after the test
    assert green.redis_checks_without_the_hub() is True
    assert isinstance(hiredis.select.poll(), green._Poll)
    assert hiredis.select.POLLIN == select.POLLIN  # everything else is the select module's
    a, b = socket.socketpair()
    try:
        assert hiredis._socket_can_read(a, 0) is False
        b.sendall(b"+OK\r\n")
        assert hiredis._socket_can_read(a, 0) is True
    finally:
        a.close()
        b.close()
