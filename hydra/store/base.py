"""``Store``: the base of the stores - this process's database unless given one, the Redis
indexes (``hydra.broker.index``), reading records of the store's own collection by
``_id``, the declared queries of ``hydra.store.schema``, and MongoDB's connection errors
raised as ``StoreUnavailable`` (Redis's as ``BrokerUnavailable``) from every public method.

Writes keep the indexes: an entry that lets a sweep find work (a new job, a new run) is
filed *before* the record is written, anything else right *after* it, so a process dying in
between leaves an entry that names a record not (yet) matching it - skipped by readers,
who check every record against their filter - never a record no entry names. When Redis
cannot be reached, the write still happens and the record is noted in ``index_backlog``
(by ``_id``); the leading controller files it once Redis answers (``hydra.store.reindex``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from pymongo.collection import Collection
from pymongo.cursor import Cursor
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from hydra import clock, names
from hydra.broker.index import Index
from hydra.broker.redis import guarded as redis_guarded
from hydra.errors import BrokerUnavailable, NotFound
from hydra.model import cursor as cursors
from hydra.model.records import Record
from hydra.store import group_commit, schema
from hydra.store.mongo import get_database, guarded, is_ferretdb

R = TypeVar("R", bound=Record)

log = logging.getLogger(__name__)

#: Milliseconds a declared query (a listing's or a sweep's, while the Redis indexes are not
#: built) may take before MongoDB abandons it (then StoreUnavailable: HTTP 503, Retry-After).
QUERY_MS = 15_000


class Store(Generic[R]):
    #: The collection whose documents ``find`` and ``get`` read, as records of ``record_type``.
    collection_name: str
    record_type: type[R]
    #: What NotFound calls one.
    kind: str

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if name.startswith("_"):
                continue
            if inspect.isfunction(value):  # a store talks to Redis too (its indexes)
                setattr(cls, name, guarded(redis_guarded(value)))
            elif isinstance(value, (staticmethod, classmethod)):
                setattr(cls, name, type(value)(guarded(redis_guarded(value.__func__))))

    def __init__(self, db: Database | None = None, index: Index | None = None, *, timeout: float | None = None):
        """``db``: default this process's database; ``timeout``: seconds its calls wait at most
        for the server (a client of their own; default the settings' timeouts)."""
        self._db = db
        self._timeout = timeout
        self.index = index if index is not None else Index()
        self._collections: tuple[Database, dict[str, Collection]] | None = None

    @property
    def db(self) -> Database:
        return self._db if self._db is not None else get_database(self._timeout)

    def _named(self, name: str) -> Collection:
        """Collection ``name`` of this store's database (kept: making one costs, per call)."""
        db = self.db
        cached = self._collections
        if cached is None or cached[0] is not db:
            cached = self._collections = (db, {})
        collection = cached[1].get(name)
        if collection is None:
            collection = cached[1][name] = db[name]
        return collection

    @property
    def _collection(self) -> Collection:
        return self._named(self.collection_name)

    def _insert(self, doc: dict, collection: Collection | None = None) -> None:
        """Insert ``doc`` (into ``collection``, default the store's) together with this
        process's concurrent inserts into it (``hydra.store.group_commit``); returns once it
        is acknowledged, raises its own ``DuplicateKeyError`` like ``insert_one``."""
        group_commit.for_collection(self._collection if collection is None else collection).insert(doc)

    @guarded
    def find(self, doc_id: str) -> R | None:
        doc = self._collection.find_one({"_id": doc_id})
        return self.record_type.from_doc(doc) if doc is not None else None

    @guarded
    def flag_unrenderable(self, doc_id: str, reason: str) -> None:
        """Mark a stored record the API could not render, for an operator to find and fix."""
        self._collection.update_one({"_id": doc_id}, {"$set": {"unrenderable": reason}})

    def get(self, doc_id: str) -> R:
        found = self.find(doc_id)
        if found is None:
            raise NotFound(self.kind, doc_id)
        return found

    # -- reading many by _id ------------------------------------------------------------------
    def _docs(self, collection: Collection, ids: Iterable[str]) -> dict[str, dict]:
        """The documents of ``ids`` that exist, by ``_id``: one ``$in`` query on MongoDB (the
        ``_id`` index); on FerretDB one lookup each (it pushes down ``_id`` equality only:
        a ``$in`` would decode the whole collection)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        if is_ferretdb(self.db):
            docs = (collection.find_one({"_id": ident}) for ident in wanted)
            return {doc["_id"]: doc for doc in docs if doc is not None}
        return {doc["_id"]: doc for doc in collection.find({"_id": {"$in": wanted}})}

    # -- the indexes --------------------------------------------------------------------------
    def _indexed(self, write: Callable[[], object], kind: str, ident: str) -> bool:
        """Apply an index change; when Redis cannot be reached, return False (the caller
        notes the record in the backlog once its own write is done: :meth:`_backlog`)."""
        try:
            write()
            return True
        except BrokerUnavailable as exc:
            log.warning("index entry of %s %s not written (%s); noted in the backlog", kind, ident, exc)
            return False

    def _backlog(self, kind: str, ident: str) -> None:
        """Note that the index entries of record ``kind``/``ident`` must be filed again."""
        try:
            self.db[names.INDEX_BACKLOG].insert_one(
                {"_id": f"{kind}:{ident}", "kind": kind, "ref": ident, "at": clock.utcnow()}
            )
        except DuplicateKeyError:
            pass

    def _keep(self, write: Callable[[], object], kind: str, ident: str) -> None:
        """An index change after the record's write: applied, or noted in the backlog."""
        if not self._indexed(write, kind, ident):
            self._backlog(kind, ident)

    #: Which half of the indexes this store's listings read (``hydra.names.INDEX_PARTS``).
    index_part: str = "runs"

    def _index_usable(self) -> bool:
        """True when listings may read the indexes: built completely and Redis answering."""
        try:
            return self.index.built(self.index_part)
        except BrokerUnavailable:
            return False

    @guarded
    def can_sweep(self) -> bool:
        """True when a sweep costs O(work in progress): the indexes are built, or MongoDB has
        the declared indexes. False on FerretDB while they are being rebuilt - its filtered
        scans of a large history would hold a controller's tick for as long as they take
        (up to QUERY_MS each), so failover waits for the rebuild there."""
        return self._index_usable() or not is_ferretdb(self.db)

    # -- declared queries (hydra.store.schema.QUERIES) -----------------------------------------
    def _native(
        self,
        name: str,
        where: dict,
        *,
        limit: int = 0,
        cursor: str | None = None,
    ) -> list[dict]:
        """Run the declared query ``name`` with the values ``where`` (only its declared
        fields), on its index (the ``hint``), newest first from ``cursor`` when it sorts."""
        query = schema.QUERIES[name]
        undeclared = set(where) - query.fields
        if undeclared:
            raise ValueError(f"query {name!r} filters on {sorted(undeclared)}, which it does not declare")
        selector: dict[str, Any] = dict(where)
        if cursor and len(query.sort) == 2:
            (time_field, _), (tie, _) = query.sort
            moment, ident = cursors.decode(cursor)
            after = {"$or": [{time_field: {"$lt": moment}}, {time_field: moment, tie: {"$lt": ident}}]}
            selector = {"$and": [selector, after]}
        return list(self._cursor(name, selector, limit=limit))

    def _cursor(self, name: str, selector: dict, *, limit: int = 0, batch_size: int = 0) -> Cursor:
        """A pymongo cursor of the declared query ``name`` (``_native`` checks the fields).
        A query of a page or a sweep gives up after QUERY_MS (FerretDB filters in Go: at a
        million runs that takes minutes, and it would slow the rebuild that ends the wait);
        the whole-collection walks of a rebuild have no limit."""
        query = schema.QUERIES[name]
        found = self.db[query.collection].find(selector).hint(query.index)
        if query.index != schema.ID_INDEX:
            found = found.max_time_ms(QUERY_MS)
        if query.sort:
            found = found.sort(list(query.sort))
        if limit:
            found = found.limit(limit)
        if batch_size:
            found = found.batch_size(batch_size)
        return found

    def _distinct(self, collection: str, field: str) -> list:
        """Every value of ``field`` (only those declared in ``schema.DISTINCT``: the first key
        of an index, so MongoDB reads one index entry per value)."""
        if (collection, field) not in schema.DISTINCT:
            raise ValueError(f"distinct {collection}.{field} is not declared")
        return sorted(v for v in self.db[collection].distinct(field) if v is not None)

    def _all_namespaces(self, collection: str, where: dict) -> dict:
        """``where`` for every namespace: on MongoDB the namespaces ``distinct`` finds (so the
        query keeps its index's first key); on FerretDB, which has no such index and would
        scan the collection for the ``distinct`` too, no namespace condition at all."""
        if is_ferretdb(self.db):
            return where
        return {"namespace": {"$in": self._distinct(collection, "namespace")}, **where}

    def _native_page(
        self,
        name: str,
        where: dict,
        *,
        limit: int,
        cursor: str | None,
        accept: Callable[[R], bool],
        load: Callable[[list[dict]], list[R]],
    ) -> tuple[list[R], str | None]:
        """A page of a declared sorted query, its records checked with ``accept``; the next
        page's cursor. (Only the fallback while the Redis indexes are not built.)"""
        query = schema.QUERIES[name]
        time_field = query.sort[0][0]
        kept: list[tuple[dict, R]] = []
        while len(kept) <= limit:
            docs = self._native(name, where, limit=limit + 1, cursor=cursor)
            kept += [(doc, record) for doc, record in zip(docs, load(docs), strict=True) if accept(record)]
            if len(docs) <= limit:
                break
            cursor = cursors.encode(docs[-1].get(time_field), docs[-1]["_id"])
        if len(kept) <= limit:
            return [record for _, record in kept], None
        last = kept[limit - 1][0]
        return [record for _, record in kept[:limit]], cursors.encode(last.get(time_field), last["_id"])
