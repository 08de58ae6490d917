"""This process's Redis client (the broker's server), and what its errors mean.

A Redis error leaves this package as :class:`hydra.errors.BrokerUnavailable`: every class
built on :class:`RedisBacked` raises it from its public methods, and :func:`translated`
does it for a block.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import threading
from collections.abc import Iterator

import redis
from redis.exceptions import RedisError

from hydra import names
from hydra.errors import BrokerUnavailable
from hydra.settings import get_settings

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}


def get_redis() -> redis.Redis:
    """This process's client for the broker's Redis (str responses)."""
    url = get_settings().broker_url
    key = (os.getpid(), url)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = redis.Redis.from_url(
                    url, decode_responses=True, socket_timeout=5, socket_connect_timeout=3, health_check_interval=15
                )
                _clients[key] = client
    return client


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise BrokerUnavailable for a Redis error."""
    try:
        yield
    except RedisError as exc:
        raise BrokerUnavailable(f"Redis unreachable: {exc.__class__.__name__}: {exc}") from exc


def guarded(fn):
    """Decorator: ``fn`` talks to Redis; its errors become BrokerUnavailable."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with translated():
            return fn(*args, **kwargs)

    return call


class RedisBacked:
    """Base of the classes that keep something in Redis: ``client`` (default this process's),
    and every public method raising BrokerUnavailable for a Redis error."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(value):
                setattr(cls, name, guarded(value))

    def __init__(self, client: redis.Redis | None = None):
        self._client = client

    @property
    def redis(self) -> redis.Redis:
        return self._client if self._client is not None else get_redis()


class BrokerEpoch(RedisBacked):
    """Which Redis server instance the controller last reconciled against."""

    def changed(self) -> bool:
        """True once per Redis server instance: after a restart (its run_id changed) or a flush
        (the marker is gone) - then queued messages may be missing and must be re-published."""
        run_id = self.redis.info("server")["run_id"]
        if self.redis.get(names.BROKER_EPOCH_KEY) == run_id:
            return False
        self.redis.set(names.BROKER_EPOCH_KEY, run_id)
        return True
