"""Hydra's collections, their indexes and every query the stores run, declared once;
``hydra init-db`` creates the indexes.

Every store reads a record by ``_id``, or through :data:`QUERIES`: each query names the
index it relies on (``Query.index``, passed to MongoDB as the ``hint``), and
``tests/unit/test_schema.py`` checks that every query's shape - its equality and range
fields, then its sort - is a prefix of that index, and that the stores run no other
filter. The queries serve MongoDB, and FerretDB only while the Redis indexes
(``hydra.broker.index``) are being rebuilt: FerretDB 1.24 pushes only ``_id`` equality down
to its backend, so on FerretDB these indexes are not created (they would cost every write
and serve no read; see :func:`ensure_schema`).

The schema works on MongoDB and on FerretDB 1.24 alike: plain single-field and compound
indexes only (no TTL, no partial indexes), and races are decided by unique ``_id`` inserts
(the run fences), never by conditional updates.
"""

from __future__ import annotations

from dataclasses import dataclass

import pymongo
from pymongo.database import Database
from pymongo.errors import OperationFailure

from hydra import names
from hydra.store.mongo import get_database, is_ferretdb, translated

COLLECTIONS = (
    names.JOB_DEFINITIONS,
    names.JOB_RUNS,
    names.RUN_FENCES,
    names.WORKERS,
    names.RUN_OUTPUT,
    names.INDEX_BACKLOG,
    names.API_TOKENS,
    names.AUDIT_EVENTS,
    names.NAMESPACES,
    names.IDEMPOTENCY_KEYS,
    names.CONSOLE_SESSIONS,
    names.RUN_FLOWS,
    names.CHORDS,
    names.JOB_EDGES,
    names.JOB_NAMES,
    names.WORKER_DRAINS,
    names.FANOUTS,
    names.FANOUT_SLOTS,
    names.NOTIFICATIONS,
    names.NOTIFY_STATE,
)

ASC, DESC = pymongo.ASCENDING, pymongo.DESCENDING


@dataclass(frozen=True)
class IndexSpec:
    name: str
    keys: tuple[tuple[str, int], ...]


#: The index every collection has on ``_id`` (MongoDB's own, and FerretDB's).
ID_INDEX = "_id_"

#: collection -> its secondary indexes (``_id`` is MongoDB's own). Each is used by a query below.
INDEXES: dict[str, tuple[IndexSpec, ...]] = {
    names.JOB_DEFINITIONS: (
        IndexSpec("jobs_live", (("namespace", ASC), ("deleted_at", ASC), ("created_at", DESC), ("_id", DESC))),
        IndexSpec(
            "jobs_status",
            (("namespace", ASC), ("deleted_at", ASC), ("status", ASC), ("created_at", DESC), ("_id", DESC)),
        ),
        IndexSpec(
            "jobs_user",
            (("namespace", ASC), ("deleted_at", ASC), ("user", ASC), ("created_at", DESC), ("_id", DESC)),
        ),
        IndexSpec(
            "jobs_user_status",
            (
                ("namespace", ASC),
                ("deleted_at", ASC),
                ("user", ASC),
                ("status", ASC),
                ("created_at", DESC),
                ("_id", DESC),
            ),
        ),
        IndexSpec("jobs_undispatched", (("undispatched", ASC), ("created_at", ASC))),
        IndexSpec("jobs_scheduled", (("schedule", ASC),)),
    ),
    names.JOB_RUNS: (
        IndexSpec("runs_job", (("job_id", ASC), ("queued_at", DESC), ("_id", DESC))),
        IndexSpec("runs_status", (("namespace", ASC), ("status", ASC), ("queued_at", DESC), ("_id", DESC))),
        IndexSpec("runs_worker", (("worker_id", ASC), ("status", ASC))),
    ),
    names.WORKERS: (),
    names.WORKER_DRAINS: (),
    names.FANOUTS: (),
    names.FANOUT_SLOTS: (),
    names.JOB_EDGES: (IndexSpec("edges_to", (("downstream", ASC),)),),
    names.NOTIFICATIONS: (IndexSpec("notices_open", (("done", ASC),)),),
    names.API_TOKENS: (IndexSpec("tokens_newest", (("created_at", DESC),)),),
    names.AUDIT_EVENTS: (
        IndexSpec("audit_newest", (("at", DESC), ("_id", DESC))),
        IndexSpec("audit_namespace", (("namespace", ASC), ("at", DESC), ("_id", DESC))),
        IndexSpec("audit_actor", (("actor", ASC), ("at", DESC), ("_id", DESC))),
        IndexSpec("audit_target", (("target", ASC), ("at", DESC), ("_id", DESC))),
    ),
}


@dataclass(frozen=True)
class Query:
    """A filter the stores send to MongoDB, and the index that serves it.

    ``equality`` fields are matched exactly, ``ranges`` with ``$in`` or a bound; together
    they are the first keys of the index (in any order), and ``sort`` comes right after
    them. ``residual`` fields are checked on the documents the index yields (few per result:
    say why where it is declared)."""

    name: str
    collection: str
    index: str
    equality: tuple[str, ...] = ()
    ranges: tuple[str, ...] = ()
    sort: tuple[tuple[str, int], ...] = ()
    residual: tuple[str, ...] = ()

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(self.equality) | frozenset(self.ranges) | frozenset(self.residual)


_NEWEST_JOBS = (("created_at", DESC), ("_id", DESC))
_NEWEST_RUNS = (("queued_at", DESC), ("_id", DESC))
_NEWEST_AUDIT = (("at", DESC), ("_id", DESC))

QUERIES: dict[str, Query] = {
    q.name: q
    for q in (
        # -- job listings (GET /jobs/): namespace $in, never deleted ones, newest first
        Query("jobs", names.JOB_DEFINITIONS, "jobs_live", ("deleted_at",), ("namespace",), _NEWEST_JOBS),
        Query(
            "jobs_by_status",
            names.JOB_DEFINITIONS,
            "jobs_status",
            ("deleted_at",),
            ("namespace", "status"),
            _NEWEST_JOBS,
        ),
        Query("jobs_by_user", names.JOB_DEFINITIONS, "jobs_user", ("deleted_at", "user"), ("namespace",), _NEWEST_JOBS),
        Query(
            "jobs_by_user_status",
            names.JOB_DEFINITIONS,
            "jobs_user_status",
            ("deleted_at", "user"),
            ("namespace", "status"),
            _NEWEST_JOBS,
        ),
        # -- the controller's sweeps
        Query("jobs_undispatched", names.JOB_DEFINITIONS, "jobs_undispatched", ("undispatched",)),
        Query("jobs_scheduled", names.JOB_DEFINITIONS, "jobs_scheduled", (), ("schedule",)),
        # -- runs of a job (GET /jobs/{id}/runs), newest first; its dead letters and its runs
        #    not started: the job's runs filtered on status (a job has few runs beside them)
        Query("runs_of_job", names.JOB_RUNS, "runs_job", ("job_id",), (), _NEWEST_RUNS),
        Query("runs_of_jobs", names.JOB_RUNS, "runs_job", (), ("job_id",)),
        Query(
            "dead_letters_of_job",
            names.JOB_RUNS,
            "runs_job",
            ("job_id",),
            (),
            _NEWEST_RUNS,
            residual=("status", "retried_by", "namespace"),
        ),
        Query("runs_not_started", names.JOB_RUNS, "runs_job", ("job_id",), (), residual=("status",)),
        # -- dead letters (GET /dead-letter/): retried ones are skipped (a few: retried by hand)
        Query(
            "dead_letters", names.JOB_RUNS, "runs_status", ("status",), ("namespace",), _NEWEST_RUNS, ("retried_by",)
        ),
        # -- whole collections, walked on the _id index (no sort: FerretDB would sort them in
        #    memory): the rebuild of the Redis indexes after Redis lost them (O(history), once)
        #    and the backlog of records to file again (as many as Redis missed)
        Query("all_jobs", names.JOB_DEFINITIONS, ID_INDEX),
        Query("all_runs", names.JOB_RUNS, ID_INDEX),
        Query("all_audit", names.AUDIT_EVENTS, ID_INDEX),
        Query("backlog", names.INDEX_BACKLOG, ID_INDEX),
        # -- the jobs that name a job in their dependencies (its page; configuration, not
        #    history: one document per dependency)
        Query("edges_to", names.JOB_EDGES, "edges_to", ("downstream",)),
        # -- notifications not done: filed again in the due index after Redis lost it
        Query("notices_open", names.NOTIFICATIONS, "notices_open", ("done",)),
        # -- GET /workers/: the fleet, by id (offline workers are forgotten after a day)
        Query("workers", names.WORKERS, ID_INDEX, sort=(("_id", ASC),)),
        # -- drained workers (the controller's every few ticks, GET /workers/: one document
        #    per drained worker, configuration, not history)
        Query("drains", names.WORKER_DRAINS, ID_INDEX, sort=(("_id", ASC),)),
        # -- runs in progress (sweeps, failover, reconciliation)
        Query("runs_with_status", names.JOB_RUNS, "runs_status", (), ("namespace", "status")),
        Query("runs_active_on", names.JOB_RUNS, "runs_worker", ("worker_id",), ("status",)),
        # -- access: tokens (few: people and services), namespaces' limits (few), and the audit
        #    trail newest first - all, of some namespaces, or one actor's or target's events
        #    (the other filters checked on those: an actor's or a target's events are few)
        Query("tokens", names.API_TOKENS, "tokens_newest", sort=(("created_at", DESC),)),
        Query("namespaces", names.NAMESPACES, ID_INDEX, sort=(("_id", ASC),)),
        Query("audit", names.AUDIT_EVENTS, "audit_newest", sort=_NEWEST_AUDIT),
        Query("audit_of_namespaces", names.AUDIT_EVENTS, "audit_namespace", (), ("namespace",), _NEWEST_AUDIT),
        Query(
            "audit_of_actor",
            names.AUDIT_EVENTS,
            "audit_actor",
            ("actor",),
            (),
            _NEWEST_AUDIT,
            residual=("namespace", "target"),
        ),
        Query(
            "audit_of_target",
            names.AUDIT_EVENTS,
            "audit_target",
            ("target",),
            (),
            _NEWEST_AUDIT,
            residual=("namespace", "actor"),
        ),
    )
}

#: Fields the stores ask ``distinct`` for, and the index whose first key each is.
DISTINCT = {
    (names.JOB_DEFINITIONS, "namespace"): "jobs_live",
    (names.JOB_RUNS, "namespace"): "runs_status",
}


def index_spec(collection: str, name: str) -> IndexSpec:
    """The declared index ``name`` of ``collection`` (``_id_``: the one every collection has)."""
    if name == ID_INDEX:
        return IndexSpec(ID_INDEX, (("_id", ASC),))
    return next(spec for spec in INDEXES.get(collection, ()) if spec.name == name)


def ensure_schema(db: Database | None = None) -> None:
    """Create Hydra's collections and indexes (idempotent).

    On FerretDB 1.24 the secondary indexes are left out: it pushes only ``_id`` equality
    down to SQLite, so they would never serve a query, while SQLite would still update each
    of them on every write (about 20 % of a write's cost, measured). Listings and sweeps
    are served there by the Redis indexes."""
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
            for spec in specs:
                db[collection].create_index(list(spec.keys), name=spec.name)
