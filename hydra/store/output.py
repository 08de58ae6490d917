"""``OutputStore``: live output of runs, insert-only and ``_id``-addressed (``run_output``).

::

    {_id: "<run_id>/00000000", run_id, seq: 0, stream: "stdout", text: "...", at, cut: false}
    {_id: "<run_id>/eof", run_id, stdout_bytes, stderr_bytes, stdout_cut, stderr_cut, chunks, at}

Readers fetch chunk ``seq``, ``seq + 1``, ... by exact ``_id`` until one is missing: FerretDB
only indexes ``_id`` equality, so the hot path never filters on ``run_id`` or asks for a range.
The writer is ``hydra.execution.live.ChunkWriter``.
"""

from __future__ import annotations

from pymongo.errors import BulkWriteError

from hydra import names
from hydra.model.records import Chunk, OutputEnd, Record
from hydra.store.base import Store


class OutputStore(Store[Chunk]):
    collection_name, record_type, kind = names.RUN_OUTPUT, Chunk, "output"

    def insert(self, records: list[Record]) -> None:
        """Store chunks (and the end record) in order; one already stored (a retry after a
        lost reply) is fine."""
        docs = [record.to_doc() for record in records]
        while docs:
            try:
                self._collection.insert_many(docs, ordered=True)
                return
            except BulkWriteError as exc:
                done = int(exc.details.get("nInserted", 0))
                errors = exc.details.get("writeErrors") or []
                if not errors or errors[0].get("code") != 11000:
                    raise
                docs = docs[done + 1 :]  # the one at `done` was stored by an earlier try

    def chunks(
        self, run_id: str, after: int = -1, *, max_chunks: int = 256, max_chars: int = 1024 * 1024
    ) -> list[Chunk]:
        """The chunks after seq ``after``, in order, each fetched by ``_id``; stops at the first
        missing one, after ``max_chunks`` chunks, or once ``max_chars`` of text were read."""
        chunks: list[Chunk] = []
        size = 0
        seq = after + 1
        while len(chunks) < max_chunks and size < max_chars:
            doc = self._collection.find_one({"_id": names.output_chunk_id(run_id, seq)})
            if doc is None:
                break
            chunks.append(Chunk.from_doc(doc))
            size += len(chunks[-1].text)
            seq += 1
        return chunks

    def end(self, run_id: str) -> OutputEnd | None:
        """The run's end-of-output record (written after its last chunk), or None."""
        doc = self._collection.find_one({"_id": names.output_eof_id(run_id)})
        return OutputEnd.from_doc(doc) if doc is not None else None
