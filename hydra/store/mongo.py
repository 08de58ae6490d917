"""The MongoDB connection: one ``MongoClient`` per process, and what its errors mean.

The client is created lazily and again after ``fork`` (pymongo clients are not fork-safe;
Celery's prefork pool forks after import). A driver error that means "the server is not
reachable" leaves a store as :class:`hydra.errors.StoreUnavailable` (:func:`translated`), so
nothing above the stores knows pymongo's errors.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

import pymongo
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, ExecutionTimeout

from hydra.errors import StoreUnavailable
from hydra.settings import get_settings

P = ParamSpec("P")
T = TypeVar("T")

_lock = threading.Lock()
_client: pymongo.MongoClient | None = None
_client_pid: int | None = None

#: pymongo errors that mean "the server is not reachable right now" (network errors, timeouts,
#: no server selectable are all ConnectionFailure), or cannot answer in time (a query past
#: its maxTimeMS: FerretDB filtering a large collection while the Redis indexes are rebuilt).
UNAVAILABLE_ERRORS = (ConnectionFailure, ExecutionTimeout)


def get_client() -> pymongo.MongoClient:
    """This process's client (a new one after fork)."""
    global _client, _client_pid
    pid = os.getpid()
    if _client is None or _client_pid != pid:
        with _lock:
            if _client is None or _client_pid != pid:
                settings = get_settings()
                timeout_ms = int(settings.mongo_timeout * 1000)
                _client = pymongo.MongoClient(
                    settings.mongo_url,
                    serverSelectionTimeoutMS=timeout_ms,
                    connectTimeoutMS=timeout_ms,
                    socketTimeoutMS=max(timeout_ms * 4, 20000),
                    tz_aware=True,
                    appname=f"hydra-{pid}",
                )
                _client_pid = pid
    return _client


_database: tuple[pymongo.MongoClient, Database] | None = None


def get_database() -> Database:
    """This process's database (the same object until the client changes: after fork)."""
    global _database
    client = get_client()
    cached = _database
    if cached is None or cached[0] is not client:
        cached = _database = (client, client[get_settings().mongo_db])
    return cached[1]


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise StoreUnavailable for a driver error that means MongoDB cannot be reached."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        what = "did not answer in time" if isinstance(exc, ExecutionTimeout) else "unreachable"
        raise StoreUnavailable(f"MongoDB {what}: {exc}") from exc


def guarded(fn: Callable[P, T]) -> Callable[P, T]:
    """Decorator: ``fn`` talks to MongoDB; its connection errors become StoreUnavailable."""

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        with translated():
            return fn(*args, **kwargs)

    return call


_server_kinds: dict[int, bool] = {}


def is_ferretdb(db: Database) -> bool:
    """True when the server is FerretDB (it says so in buildInfo); asked once per client."""
    key = id(db.client)
    known = _server_kinds.get(key)
    if known is None:
        try:
            info = db.client.admin.command("buildInfo")
        except NotImplementedError:  # mongomock (unit tests) answers like MongoDB
            info = {}
        known = _server_kinds[key] = "ferretdbVersion" in info
    return known


def ping(db: Database | None = None) -> None:
    """Raise StoreUnavailable unless the server answers."""
    with translated():
        (db if db is not None else get_database()).command("ping")
