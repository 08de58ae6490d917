"""Keyset pages of a listing, newest first (the cursor format is ``hydra.model.cursor``)."""

from __future__ import annotations

import pymongo
from pymongo.collection import Collection

from hydra.model import cursor as cursors


def page(
    collection: Collection, query: dict, *, time_field: str, limit: int, cursor: str | None
) -> tuple[list[dict], str | None]:
    """One page of ``collection`` matching ``query``, newest first on (``time_field``, ``_id``),
    and the next page's cursor (None on the last page)."""
    if cursor:
        moment, ident = cursors.decode(cursor)
        query = {"$and": [query, {"$or": [{time_field: {"$lt": moment}}, {time_field: moment, "_id": {"$lt": ident}}]}]}
    docs = list(
        collection.find(query).sort([(time_field, pymongo.DESCENDING), ("_id", pymongo.DESCENDING)]).limit(limit + 1)
    )
    if len(docs) <= limit:
        return docs, None
    last = docs[limit - 1]
    return docs[:limit], cursors.encode(last.get(time_field), last["_id"])
