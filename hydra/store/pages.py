"""Keyset pages of a listing from the Redis indexes, newest first (the cursor format is
``hydra.model.cursor``; the native MongoDB pages are ``Store._native_page``).

A page walks the sorted sets that name the listing's records (one per namespace, say),
merged newest first on (score, id) from the cursor on, fetches the candidates by ``_id``
and keeps those whose record matches the listing's filter: an entry the index still has
for a record that changed is skipped, so a page never shows a record that does not
belong, and costs O(page) whatever the history.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import TypeVar

from hydra import clock
from hydra.broker.index import Index
from hydra.model import cursor as cursors

R = TypeVar("R")


def after(cursor: str | None) -> tuple[int, str] | None:
    """The (score, id) a cursor names (its time as epoch milliseconds)."""
    if not cursor:
        return None
    moment, ident = cursors.decode(cursor)
    return (clock.millis(moment) if moment is not None else 0, ident)


def indexed_page(
    index: Index,
    keys: list[str],
    *,
    limit: int,
    cursor: str | None,
    fetch: Callable[[list[str]], dict[str, R]],
    accept: Callable[[R], bool],
) -> tuple[list[R], str | None]:
    """One page: up to ``limit`` records, and the next page's cursor (None on the last)."""
    stream = index.newest(keys, after(cursor))
    kept: list[tuple[int, str, R]] = []
    while len(kept) <= limit:
        batch = list(islice(stream, limit + 1 - len(kept)))
        if not batch:
            break
        records = fetch([ident for _, ident in batch])
        for score, ident in batch:
            record = records.get(ident)
            if record is not None and accept(record):
                kept.append((score, ident, record))
    if len(kept) <= limit:
        return [record for _, _, record in kept], None
    score, ident, _ = kept[limit - 1]
    return [record for _, _, record in kept[:limit]], cursors.encode(clock.from_millis(score), ident)
