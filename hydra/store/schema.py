"""Hydra's collections and indexes, declared once; ``hydra init-db`` creates them.

The schema works on MongoDB and on FerretDB 1.24 alike: plain single-field and compound
indexes only (no TTL, no partial indexes), and races are decided by unique ``_id`` inserts
(the run fences), never by conditional updates.
"""

from __future__ import annotations

import pymongo
from pymongo.database import Database
from pymongo.errors import OperationFailure

from hydra import names
from hydra.store.mongo import get_database, translated

COLLECTIONS = (
    names.JOB_DEFINITIONS,
    names.JOB_RUNS,
    names.RUN_FENCES,
    names.WORKERS,
    names.RUN_OUTPUT,
    names.API_TOKENS,
    names.AUDIT_EVENTS,
    names.NAMESPACES,
    names.IDEMPOTENCY_KEYS,
)

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
    names.API_TOKENS: [
        [("created_at", pymongo.DESCENDING)],
    ],
    names.AUDIT_EVENTS: [
        [("at", pymongo.DESCENDING)],
        [("namespace", pymongo.ASCENDING), ("at", pymongo.DESCENDING)],
        [("actor", pymongo.ASCENDING), ("at", pymongo.DESCENDING)],
    ],
}


def is_ferretdb(db: Database) -> bool:
    """True when the server is FerretDB (it says so in buildInfo)."""
    return "ferretdbVersion" in db.client.admin.command("buildInfo")


def ensure_schema(db: Database | None = None) -> None:
    """Create Hydra's collections and indexes (idempotent).

    On FerretDB 1.24 the secondary indexes are left out: it pushes only ``_id`` equality
    down to SQLite, so they would never serve a query, while SQLite would still update each
    of them on every write (about 20 % of a write's cost, measured)."""
    with translated():
        db = db if db is not None else get_database()
        existing = set(db.list_collection_names())
        for name in COLLECTIONS:
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
