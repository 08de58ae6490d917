"""Live output: a run's stdout and stderr, visible while the command runs.

The worker's task passes :meth:`ChunkWriter.write` to ``hydra.executor.execute`` as its
``on_output``; the writer buffers what the reader threads hand it and a flusher thread
stores it at most every ``interval`` seconds (sooner once ``flush_bytes`` are waiting) as
insert-only documents in ``run_output``::

    {_id: "<run_id>/00000000", run_id, seq: 0, stream: "stdout", text: "...", at, cut: false}
    {_id: "<run_id>/00000001", ...}
    {_id: "<run_id>/eof", run_id, stdout_bytes, stderr_bytes, stdout_cut, stderr_cut, chunks, at}

Readers (``GET /runs/<id>/output``) fetch chunk ``seq``, ``seq + 1``, ... by exact ``_id``
until one is missing: FerretDB only indexes ``_id`` equality, so the hot path never filters
on ``run_id`` or asks for a range. The ``eof`` document, written after the last chunk,
says the output is complete.

Each stream stores at most ``limit`` bytes (``HYDRA_OUTPUT_LIMIT``, as for the run record):
the first ``limit`` bytes, then one chunk with ``cut: true`` saying the rest is not stored;
bytes are still counted (``eof.stdout_bytes``). The run record keeps the head *and* tail of
each stream (``hydra.output.CappedBuffer``); live output keeps the head, in order.

A MongoDB outage never disturbs the command: failed inserts are kept (bounded by the cap)
and retried at the next flush.
"""
from __future__ import annotations

import codecs
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pymongo.errors import BulkWriteError, DuplicateKeyError

from hydra import names

log = logging.getLogger(__name__)

STREAMS = ("stdout", "stderr")
#: Longest text in one chunk document (big flushes are split).
MAX_CHUNK_TEXT = 1024 * 1024


def _now() -> datetime:
    return datetime.now(timezone.utc)


def cut_notice(stream: str, limit: int) -> str:
    return f"\n[... hydra: {stream} passed {limit} bytes; the rest is counted, not stored ...]\n"


@dataclass
class _Stream:
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"))
    total: int = 0    # bytes written by the command
    stored: int = 0   # bytes kept
    cut: bool = False


def _collection():
    from hydra.db import get_database

    return get_database()[names.RUN_OUTPUT]


class ChunkWriter:
    """Stores one run's output as numbered chunks; thread-safe; use as a context manager.

    ``insert(docs)`` stores a list of documents (default: ``insert_many`` into
    ``run_output``); it may raise, and is then called again later with the same documents.
    """

    def __init__(self, run_id: str, *, limit: int, interval: float = 0.4, flush_bytes: int = 64 * 1024,
                 insert: Callable[[list[dict]], None] | None = None, skip_if_unflushed: bool = False):
        self.run_id = run_id
        #: With ``skip_if_unflushed``, a command that ended before anything was stored (a short
        #: run: under ``interval`` seconds and ``flush_bytes``) stores nothing at all - its
        #: whole output is in the run record, which readers then use (api/output.py).
        self.skip_if_unflushed = skip_if_unflushed
        #: Chunks stored, in order from 0, once closed (what the run record's ``live_chunks`` says).
        self.stored = 0
        self.limit = limit
        self.interval = interval
        self.flush_bytes = flush_bytes
        self._insert = insert or self._insert_many
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._streams = {name: _Stream() for name in STREAMS}
        self._pieces: list[list] = []   # [stream, text, cut] not yet numbered
        self._pending_bytes = 0
        self._unsent: list[dict] = []   # numbered documents an insert did not take yet
        self._seq = 0
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- writing (reader threads) ------------------------------------------------------------
    def write(self, stream: str, data: bytes) -> None:
        """Take ``data`` the command wrote to ``stream`` ("stdout" or "stderr")."""
        with self._lock:
            if self._closed:
                return
            state = self._streams[stream]
            state.total += len(data)
            if state.cut:
                return
            room = self.limit - state.stored
            part = data if len(data) <= room else data[:room]
            state.stored += len(part)
            text = state.decoder.decode(part, final=len(part) < len(data))
            if text:
                self._add(stream, text, False)
            if len(part) < len(data):
                state.cut = True
                self._add(stream, cut_notice(stream, self.limit), True)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"hydra-livelog-{self.run_id[:8]}",
                                                daemon=True)
                self._thread.start()
            if self._pending_bytes >= self.flush_bytes:
                self._wake.set()

    def _add(self, stream: str, text: str, cut: bool) -> None:
        last = self._pieces[-1] if self._pieces else None
        if last is not None and last[0] == stream and not last[2] and not cut \
                and len(last[1]) + len(text) <= MAX_CHUNK_TEXT:
            last[1] += text
        else:
            self._pieces.append([stream, text, cut])
        self._pending_bytes += len(text)

    # -- storing (flusher thread) ----------------------------------------------------------------
    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._closed:
                return
            self.flush()

    def flush(self) -> bool:
        """Store what is waiting; True when nothing is left unsent."""
        with self._flush_lock:
            with self._lock:
                for stream, text, cut in self._pieces:
                    for start in range(0, max(len(text), 1), MAX_CHUNK_TEXT):
                        self._unsent.append(self._chunk(stream, text[start:start + MAX_CHUNK_TEXT], cut))
                self._pieces, self._pending_bytes = [], 0
                docs = list(self._unsent)
            if not docs:
                return True
            try:
                self._insert(docs)
            except Exception as exc:  # noqa: BLE001 - never disturb the command; retry later
                log.warning("live output not stored yet (%s: %s); will retry", type(exc).__name__, exc,
                            extra={"event": "output.store_failed", "run_id": self.run_id})
                return False
            with self._lock:
                del self._unsent[:len(docs)]
            return True

    def _chunk(self, stream: str, text: str, cut: bool) -> dict:
        seq, self._seq = self._seq, self._seq + 1
        return {"_id": names.output_chunk_id(self.run_id, seq), "run_id": self.run_id, "seq": seq,
                "stream": stream, "text": text, "cut": cut, "at": _now()}

    def _insert_many(self, docs: list[dict]) -> None:
        """insert_many, where a document already stored (a retry after a lost reply) is fine."""
        collection = _collection()
        while docs:
            try:
                collection.insert_many(docs, ordered=True)
                return
            except BulkWriteError as exc:
                done = int(exc.details.get("nInserted", 0))
                errors = exc.details.get("writeErrors") or []
                if not errors or errors[0].get("code") != 11000:
                    raise
                docs = docs[done + 1:]  # the one at `done` was stored by an earlier try

    # -- the end ----------------------------------------------------------------------------------
    def close(self, retry_for: float = 10.0) -> None:
        """Store the rest and the ``eof`` record (retrying up to ``retry_for`` seconds).
        Never raises."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.skip_if_unflushed and self._seq == 0:
                self._pieces, self._pending_bytes = [], 0
                return
            for name, state in self._streams.items():
                tail = state.decoder.decode(b"", final=True)
                if tail and not state.cut:
                    self._add(name, tail, False)
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        deadline = time.monotonic() + retry_for
        while not self.flush():
            if time.monotonic() >= deadline:
                self.stored = min(doc["seq"] for doc in self._unsent)
                log.error("live output of run %s incomplete: %d chunk(s) not stored", self.run_id,
                          len(self._unsent), extra={"event": "output.lost", "run_id": self.run_id})
                return
            time.sleep(0.5)
        self.stored = self._seq
        eof = {"_id": names.output_eof_id(self.run_id), "run_id": self.run_id, "chunks": self._seq,
               "at": _now()}
        for name, state in self._streams.items():
            eof[f"{name}_bytes"] = state.total
            eof[f"{name}_cut"] = state.cut
        try:
            self._insert([eof])
        except DuplicateKeyError:
            pass
        except Exception as exc:  # noqa: BLE001 - readers fall back to the run's end time
            log.warning("live output eof not stored: %s", exc, extra={"event": "output.store_failed",
                                                                        "run_id": self.run_id})

    def __enter__(self) -> "ChunkWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- reading ---------------------------------------------------------------------------------------

def read_chunks(run_id: str, after: int = -1, *, max_chunks: int = 256, max_chars: int = 1024 * 1024,
                collection=None) -> list[dict]:
    """The chunks after seq ``after``, in order, each fetched by ``_id``; stops at the first
    missing one, after ``max_chunks`` chunks, or once ``max_chars`` of text were read."""
    collection = collection if collection is not None else _collection()
    chunks: list[dict] = []
    size = 0
    seq = after + 1
    while len(chunks) < max_chunks and size < max_chars:
        doc = collection.find_one({"_id": names.output_chunk_id(run_id, seq)})
        if doc is None:
            break
        chunks.append(doc)
        size += len(doc.get("text") or "")
        seq += 1
    return chunks


def read_eof(run_id: str, collection=None) -> dict | None:
    """The run's ``eof`` record (written after its last chunk), or None."""
    collection = collection if collection is not None else _collection()
    return collection.find_one({"_id": names.output_eof_id(run_id)})
