"""``Store``: the base of the stores - this process's database unless given one, reading a
record of the store's own collection by ``_id``, and MongoDB's connection errors raised as
``StoreUnavailable`` from every public method."""

from __future__ import annotations

import inspect
from typing import Generic, TypeVar

from pymongo.collection import Collection
from pymongo.database import Database

from hydra.errors import NotFound
from hydra.model.records import Record
from hydra.store.mongo import get_database, guarded

R = TypeVar("R", bound=Record)


class Store(Generic[R]):
    #: The collection whose documents ``find`` and ``get`` read, as records of ``record_type``.
    collection_name: str
    record_type: type[R]
    #: What NotFound calls one.
    kind: str

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(value):
                setattr(cls, name, guarded(value))

    def __init__(self, db: Database | None = None):
        self._db = db

    @property
    def db(self) -> Database:
        return self._db if self._db is not None else get_database()

    @property
    def _collection(self) -> Collection:
        return self.db[self.collection_name]

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
