"""This process's Redis client (the broker's server), and what its errors mean.

One factory for every Redis client of Hydra's own (registry, leases, due index, sent index,
stop flags, metrics, the stores' indexes): :func:`get_redis`. ``HYDRA_BROKER_URL`` is either
``redis://`` / ``rediss://`` (one server) or Redis Sentinel's ``sentinel://`` list, the same
URL Celery's own Sentinel transport reads (``sentinel://[user:password@]host:26379;
sentinel://...[/db]``, the master's name in ``HYDRA_BROKER_MASTER_NAME``). With Sentinel the
client is redis-py's ``Sentinel.master_for``: every new connection asks the sentinels which
server is the master now, and a connection to a demoted master is dropped at its first
refused write, so after a failover Hydra's calls reach the master Celery's transport found.

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
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit

import redis
from redis.exceptions import AuthenticationError, RedisError
from redis.sentinel import Sentinel

from hydra import names
from hydra.errors import BrokerCredentialsRefused, BrokerUnavailable
from hydra.settings import get_settings

_lock = threading.Lock()
_clients: dict[tuple[int, str, float | None], redis.Redis] = {}


#: How Hydra's own connections behave (the same for one server and for Sentinel's master).
CLIENT_OPTIONS = {
    "decode_responses": True,
    # What is not UTF-8 reads as U+FFFD instead of raising: queues hold what anyone with the
    # broker password pushed, and reading one (SentIndex.holds) must not stop the controller.
    "encoding_errors": "replace",
    "socket_timeout": 5,
    "socket_connect_timeout": 3,
    "health_check_interval": 15,
}
SENTINEL_PORT = 26379


def get_redis(timeout: float | None = None) -> redis.Redis:
    """This process's client for the broker's Redis (str responses). ``timeout``: a client of
    its own whose connects and calls give up after that many seconds instead of
    ``CLIENT_OPTIONS``' (the watchdog's: a link that drops packets must not hold its reads)."""
    url = get_settings().broker_url
    key = (os.getpid(), url, timeout)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = client_for(url, timeout=timeout)
    return client


def is_sentinel(url: str) -> bool:
    return url.startswith("sentinel://")


def sentinel_addresses(url: str) -> tuple[list[tuple[str, int]], dict]:
    """The sentinels of a ``sentinel://`` URL list, and the master's connection options
    (user, password and database, from the first URL, as kombu reads them)."""
    sentinels: list[tuple[str, int]] = []
    options: dict = {}
    for part in url.split(";"):
        parsed = urlsplit(part.strip())
        if parsed.scheme != "sentinel" or not parsed.hostname:
            raise ValueError(f"HYDRA_BROKER_URL: {part!r} is not a sentinel://host:port URL")
        sentinels.append((parsed.hostname, parsed.port or SENTINEL_PORT))
        if not options:
            options = {
                "username": unquote(parsed.username) if parsed.username else None,
                "password": unquote(parsed.password) if parsed.password else None,
                "db": int(parsed.path.strip("/") or 0),
            }
    return sentinels, options


def client_for(url: str, timeout: float | None = None) -> redis.Redis:
    """A client for ``url``: one server, or the master Redis Sentinel names; ``timeout``: the
    seconds its connects and calls wait at most (default ``CLIENT_OPTIONS``')."""
    options: dict[str, Any] = dict(CLIENT_OPTIONS)
    if timeout is not None:
        options.update(socket_timeout=timeout, socket_connect_timeout=timeout)
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    settings = get_settings()
    if not settings.broker_master_name:
        raise ValueError("HYDRA_BROKER_URL is a sentinel:// URL: set HYDRA_BROKER_MASTER_NAME to the master's name")
    sentinels, master = sentinel_addresses(url)
    timeouts = {k: v for k, v in options.items() if k.startswith("socket_")}
    sentinel_kwargs = dict(timeouts, password=settings.broker_sentinel_password)
    sentinel = Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs, **options)
    return sentinel.master_for(settings.broker_master_name, redis_class=redis.Redis, **master)


def _translate(exc: RedisError) -> NoReturn:
    """Raise BrokerUnavailable for a Redis error, and BrokerCredentialsRefused (one line
    naming HYDRA_BROKER_URL, without the driver's traceback) when Redis refused this
    process's credentials."""
    if isinstance(exc, AuthenticationError):
        anonymous = not (urlsplit(get_settings().broker_url).password or "")
        raise BrokerCredentialsRefused.because("Redis", str(exc).rstrip("."), anonymous=anonymous) from None
    raise BrokerUnavailable(f"Redis unreachable: {exc.__class__.__name__}: {exc}") from exc


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """:func:`_translate` for the errors of a block."""
    try:
        yield
    except RedisError as exc:
        _translate(exc)


def guarded(fn):
    """Decorator: ``fn`` talks to Redis; its errors become BrokerUnavailable (a generator's
    too, raised while it is read). A plain try, not :func:`translated`: every public store
    and index method is wrapped (a generator context manager cost a pool process about 1 % of
    its CPU per job)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def walk(*args, **kwargs):
            with translated():
                yield from fn(*args, **kwargs)

        return walk

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RedisError as exc:
            _translate(exc)

    return call


class RedisBacked:
    """Base of the classes that keep something in Redis: ``client`` (default this process's),
    and every public method raising BrokerUnavailable for a Redis error."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if name.startswith("_"):
                continue
            if inspect.isfunction(value):
                setattr(cls, name, guarded(value))
            elif isinstance(value, (staticmethod, classmethod)):
                setattr(cls, name, type(value)(guarded(value.__func__)))

    def __init__(self, client: redis.Redis | None = None):
        self._client = client

    @property
    def redis(self) -> redis.Redis:
        return self._client if self._client is not None else get_redis()

    def _script(self, source: str) -> Any:
        """The Lua script ``source`` (redis-py's ``Script``), made once per instance: after its
        first call it is sent by its digest (EVALSHA), not its whole text."""
        scripts: dict[str, Any] = self.__dict__.setdefault("_scripts", {})
        script = scripts.get(source)
        if script is None:
            script = scripts[source] = self.redis.register_script(source)
        return script


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
