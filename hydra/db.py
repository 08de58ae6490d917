"""The MongoDB connection and schema.

One ``MongoClient`` per process, created lazily and re-created after ``fork`` (pymongo
clients are not fork-safe; Celery's prefork pool forks after import).

The schema works on MongoDB and on FerretDB 1.24 (SQLite backend) alike: plain
single-field and compound indexes only (no TTL, no partial indexes), and one unique
index per fence so that "insert if absent" is the only primitive that decides races.
"""
from __future__ import annotations

import os
import threading

import pymongo
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, OperationFailure, ServerSelectionTimeoutError

from hydra import names
from hydra.errors import NotFound, StoreUnavailable
from hydra.settings import get_settings

_lock = threading.Lock()
_client: pymongo.MongoClient | None = None
_client_pid: int | None = None

#: pymongo errors that mean "the server is not reachable right now".
UNAVAILABLE_ERRORS = (ConnectionFailure, ServerSelectionTimeoutError)

INDEXES = {
    names.JOB_DEFINITIONS: [
        [("created_at", pymongo.DESCENDING)],
        [("user", pymongo.ASCENDING), ("created_at", pymongo.DESCENDING)],
        [("status", pymongo.ASCENDING), ("created_at", pymongo.DESCENDING)],
    ],
    names.JOB_RUNS: [
        [("job_id", pymongo.ASCENDING), ("queued_at", pymongo.DESCENDING)],
        [("status", pymongo.ASCENDING), ("queued_at", pymongo.DESCENDING)],
        [("worker_id", pymongo.ASCENDING), ("status", pymongo.ASCENDING)],
    ],
    names.WORKERS: [
        [("status", pymongo.ASCENDING)],
    ],
}


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


def get_database() -> Database:
    return get_client()[get_settings().mongo_db]


class Store:
    """Base of the stores (JobStore, RunStore): this process's database unless given one,
    and reading a document of the store's own collection by ``_id``."""

    #: The collection whose documents ``get`` and ``find`` read, and what NotFound calls one.
    collection_name: str
    kind: str

    def __init__(self, db: Database | None = None):
        self._db = db

    @property
    def db(self) -> Database:
        return self._db if self._db is not None else get_database()

    def find(self, doc_id: str) -> dict | None:
        return self.db[self.collection_name].find_one({"_id": doc_id})

    def get(self, doc_id: str) -> dict:
        doc = self.find(doc_id)
        if doc is None:
            raise NotFound(self.kind, doc_id)
        return doc


def reset_client() -> None:
    """Forget the client (tests that change HYDRA_MONGO_URL call this)."""
    global _client, _client_pid
    with _lock:
        if _client is not None and _client_pid == os.getpid():
            _client.close()
        _client, _client_pid = None, None


def ping(db: Database | None = None) -> None:
    """Raise StoreUnavailable unless the server answers."""
    db = db if db is not None else get_database()
    try:
        db.command("ping")
    except UNAVAILABLE_ERRORS as exc:
        raise StoreUnavailable(f"MongoDB unreachable: {exc}") from exc


def is_ferretdb(db: Database) -> bool:
    """True when the server is FerretDB (it says so in buildInfo)."""
    return "ferretdbVersion" in db.client.admin.command("buildInfo")


def ensure_schema(db: Database | None = None) -> None:
    """Create Hydra's collections and indexes (idempotent).

    On FerretDB 1.24 the secondary indexes are left out: it pushes only ``_id`` equality
    down to SQLite, so they would never serve a query, while SQLite would still update each
    of them on every write (about 20 % of a write's cost, measured)."""
    db = db if db is not None else get_database()
    existing = set(db.list_collection_names())
    for name in (names.JOB_DEFINITIONS, names.JOB_RUNS, names.RUN_FENCES, names.WORKERS, names.RUN_OUTPUT):
        if name not in existing:
            try:
                db.create_collection(name)
            except OperationFailure:  # created concurrently by another process
                pass
    if is_ferretdb(db):
        return
    for collection, specs in INDEXES.items():
        for keys in specs:
            db[collection].create_index(keys)
