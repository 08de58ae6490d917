"""``EdgeStore``: which jobs name which in their ``on_success`` / ``on_failure`` /
``on_completion`` (``job_edges``), for the reverse view - a job's upstream jobs.

A job's own fields say whom it starts (its downstream jobs); this collection says who starts
it. One document per named pair, ``<upstream>><downstream>``, with the fields that name it:
written by ``_id`` when the upstream job is stored, changed or deleted (:meth:`EdgeStore.keep`;
nothing for a job that names none). It grows with the jobs' configuration, not with their
history, so its one declared query (by downstream, for a job's page) stays small on FerretDB too. An edge is only a pointer: readers
check it against the upstream job as stored (:meth:`EdgeStore.upstream_of` returns ids, and
the caller reads those jobs), so a stale edge is never shown as a dependency.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra import clock, names
from hydra.model.dependencies import FIELDS
from hydra.model.records import Record
from hydra.store.base import Store


@dataclass
class Edge(Record):
    id: str
    upstream: str = ""
    downstream: str = ""
    via: list[str] = field(default_factory=list)


def _named(spec: dict) -> dict[str, list[str]]:
    """downstream job id -> the fields of ``spec`` that name it."""
    found: dict[str, list[str]] = {}
    for name in FIELDS:
        for downstream in spec.get(name) or ():
            found.setdefault(downstream, []).append(name)
    return found


def edge_id(upstream: str, downstream: str) -> str:
    return f"{upstream}>{downstream}"


class EdgeStore(Store[Edge]):
    collection_name, record_type, kind = names.JOB_EDGES, Edge, "job edge"

    def keep(self, upstream: str, spec: dict, before: dict | None = None) -> None:
        """The edges of job ``upstream`` as its body ``spec`` names them now ({} once it is
        deleted), ``before`` what it named until now: new ones written, gone ones removed, each
        by ``_id`` (nothing at all for a job that names none, before or now)."""
        wanted = _named(spec)
        gone = set(_named(before or {})) - set(wanted)
        now = clock.utcnow()
        for downstream, via in wanted.items():  # a job names a few at most: one write each, by _id
            self._collection.replace_one(
                {"_id": edge_id(upstream, downstream)},
                {"upstream": upstream, "downstream": downstream, "via": via, "at": now},
                upsert=True,
            )
        for downstream in sorted(gone):
            self._collection.delete_one({"_id": edge_id(upstream, downstream)})

    def upstream_of(self, downstream: str) -> dict[str, list[str]]:
        """Jobs whose fields named ``downstream`` when they were stored: id -> the fields."""
        edges = [Edge.from_doc(doc) for doc in self._native("edges_to", {"downstream": downstream})]
        return {edge.upstream: edge.via for edge in edges}
