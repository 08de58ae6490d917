"""The MongoDB connection: one ``MongoClient`` per process, and what its errors mean.

The client is created lazily and again after ``fork`` (pymongo clients are not fork-safe;
Celery's prefork pool forks after import). A driver error that means "the server is not
reachable" leaves a store as :class:`hydra.errors.StoreUnavailable` (:func:`translated`), so
nothing above the stores knows pymongo's errors.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

import pymongo
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, ExecutionTimeout, OperationFailure

from hydra.errors import StoreCredentialsRefused, StoreUnavailable
from hydra.settings import get_settings

P = ParamSpec("P")
T = TypeVar("T")

_lock = threading.Lock()
#: This process's clients, by their timeout (None: the settings'), and the process they are of.
_clients: dict[float | None, pymongo.MongoClient] = {}
_clients_pid: int | None = None
_databases: dict[float | None, tuple[pymongo.MongoClient, Database]] = {}


def get_client(timeout: float | None = None) -> pymongo.MongoClient:
    """This process's client (a new one after fork). ``timeout``: a client of its own whose
    server selection, connects and reads give up after that many seconds (the watchdog's: a
    link that drops packets must not hold its fence read for the usual 20 s)."""
    global _clients_pid
    pid = os.getpid()
    client = _clients.get(timeout) if _clients_pid == pid else None
    if client is None:
        with _lock:
            if _clients_pid != pid:
                _clients.clear()
                _databases.clear()
                _clients_pid = pid
            client = _clients.get(timeout)
            if client is None:
                settings = get_settings()
                timeouts: dict[str, Any]
                if timeout is None:
                    timeout_ms = int(settings.mongo_timeout * 1000)
                    timeouts = {"connectTimeoutMS": timeout_ms, "socketTimeoutMS": max(timeout_ms * 4, 20000)}
                else:
                    timeout_ms = int(timeout * 1000)
                    timeouts = {"connectTimeoutMS": timeout_ms, "socketTimeoutMS": timeout_ms}
                client = _clients[timeout] = pymongo.MongoClient(
                    settings.mongo_url,
                    serverSelectionTimeoutMS=timeout_ms,
                    tz_aware=True,
                    appname=f"hydra-{pid}",
                    **timeouts,
                )
    return client


def get_database(timeout: float | None = None) -> Database:
    """This process's database (the same object until the client changes: after fork), through
    ``get_client(timeout)``."""
    client = get_client(timeout)
    cached = _databases.get(timeout)
    if cached is None or cached[0] is not client:
        cached = _databases[timeout] = (client, client[get_settings().mongo_db])
    return cached[1]


#: pymongo errors that mean "the server is not reachable right now" (network errors, timeouts,
#: no server selectable are all ConnectionFailure), or cannot answer in time (a query past
#: its maxTimeMS: FerretDB filtering a large collection while the Redis indexes are rebuilt).
UNAVAILABLE_ERRORS = (ConnectionFailure, ExecutionTimeout)
#: MongoDB's codes for "who are you?" (Unauthorized: no credentials, or too few rights) and
#: "wrong user or password" (AuthenticationFailed).
CREDENTIAL_CODES = frozenset({13, 18})


def _translate(exc: Exception) -> None:
    """Raise StoreUnavailable for a driver error that means MongoDB cannot be reached, and
    StoreCredentialsRefused (one line naming HYDRA_MONGO_URL, without the driver's
    traceback) when it refused this process's credentials; return for any other error (the
    caller raises it as it is)."""
    if isinstance(exc, UNAVAILABLE_ERRORS):
        what = "did not answer in time" if isinstance(exc, ExecutionTimeout) else "unreachable"
        raise StoreUnavailable(f"MongoDB {what}: {exc}") from exc
    if isinstance(exc, OperationFailure) and exc.code in CREDENTIAL_CODES:
        detail = str((exc.details or {}).get("errmsg") or exc).rstrip(".")
        anonymous = exc.code == 13 and not pymongo.uri_parser.parse_uri(get_settings().mongo_url).get("username")
        raise StoreCredentialsRefused.because("MongoDB", detail, anonymous=anonymous) from None


#: The driver errors :func:`_translate` looks at.
_DRIVER_ERRORS = (*UNAVAILABLE_ERRORS, OperationFailure)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """:func:`_translate` for the errors of a block."""
    try:
        yield
    except _DRIVER_ERRORS as exc:
        _translate(exc)
        raise


def guarded(fn: Callable[P, T]) -> Callable[P, T]:
    """Decorator: ``fn`` talks to MongoDB; its connection errors become StoreUnavailable
    (a generator's too, raised while it is read). A plain try, not :func:`translated`: every
    public store method is wrapped, and a generator context manager cost a pool process about
    1 % of its CPU per job."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def walk(*args: P.args, **kwargs: P.kwargs) -> Any:
            with translated():
                yield from fn(*args, **kwargs)

        return walk

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except _DRIVER_ERRORS as exc:
            _translate(exc)
            raise

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
