"""Live output: a run's stdout and stderr, visible while the command runs.

The worker's task passes :meth:`ChunkWriter.write` to the executor as its ``on_output``;
the writer buffers what the executor hands it and the process's flusher thread (one for all
its runs, :class:`_Flusher`) stores it at most every ``interval`` seconds (sooner once ``flush_bytes`` are waiting) as numbered
:class:`~hydra.model.records.Chunk` records, then an :class:`~hydra.model.records.OutputEnd`
saying the output is complete, through the ``insert`` it was given (the worker gives
``OutputStore.insert``; readers use ``OutputStore.chunks``).

Each stream stores at most ``limit`` bytes (``HYDRA_OUTPUT_LIMIT``, as for the run record)
while the command runs: the first ``limit`` bytes, then a chunk with ``cut: true`` saying the
rest is counted and its end kept. The writer keeps the last ``limit // 2`` bytes of a cut
stream in memory, and when the command ends stores a notice (``cut: true``, "[... hydra: N
bytes omitted ...]", when bytes fell between the head and the tail) and that tail: so every
reader of live output - ``hydra logs``, the console, gRPC's WatchRun - shows how a long output
ended, where the errors usually are. All bytes are counted (``eof.stdout_bytes``).

Chunks are numbered across both streams in the order the writer receives the command's
writes (on Linux both streams are read by one thread, in the order the kernel reports them;
elsewhere each by its own, so two writes closer together than those threads wake may come in
either order): readers show stdout and stderr interleaved as written.

A MongoDB outage never disturbs the command: failed inserts are kept (bounded by the cap)
and retried at the next flush.
"""

from __future__ import annotations

import codecs
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hydra import clock, names
from hydra.model.records import Chunk, OutputEnd, Record

log = logging.getLogger(__name__)

STREAMS = ("stdout", "stderr")
#: Longest text in one chunk document (big flushes are split).
MAX_CHUNK_TEXT = 1024 * 1024


def cut_notice(stream: str, limit: int) -> str:
    """The notice stored when ``stream`` passes ``limit`` bytes."""
    return f"\n[... hydra: {stream} passed {limit} bytes; the rest is counted, its end is kept ...]\n"


def omitted_notice(stream: str, omitted: int) -> str:
    """The marker between the head and the tail of a cut stream (as in the run record)."""
    return f"[... hydra: {omitted} bytes of {stream} omitted ...]\n"


def tee(*sinks: Callable[[str, bytes], None]) -> Callable[[str, bytes], None]:
    """One ``on_output`` that hands each write to every sink, in the same order for all."""
    lock = threading.Lock()

    def write(stream: str, data: bytes) -> None:
        with lock:
            for sink in sinks:
                sink(stream, data)

    return write


@dataclass
class _Stream:
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )
    total: int = 0  # bytes written by the command
    stored: int = 0  # bytes kept
    cut: bool = False
    tail: bytearray = field(default_factory=bytearray)  # the last bytes after the cut


class ChunkWriter:
    """Stores one run's output as numbered chunks; thread-safe; use as a context manager.

    ``insert(records)`` stores a list of records in order; it may raise, and is then called
    again later with the same records (one stored already must be accepted silently).
    """

    def __init__(
        self,
        run_id: str,
        *,
        limit: int,
        insert: Callable[[list[Record]], None],
        interval: float = 0.4,
        flush_bytes: int = 64 * 1024,
        skip_if_unflushed: bool = False,
    ):
        self.run_id = run_id
        #: With ``skip_if_unflushed``, a command that ended before anything was stored (a short
        #: run: under ``interval`` seconds and ``flush_bytes``) and wrote to one stream only
        #: stores nothing at all - its whole output is in the run record, which readers then use
        #: (api/output.py). Output on both streams is stored, for the order they were written in.
        self.skip_if_unflushed = skip_if_unflushed
        #: Chunks stored, in order from 0, once closed (what the run record's ``live_chunks`` says).
        self.stored = 0
        self.limit = limit
        #: Bytes of a cut stream's end stored when the command ends (as the run record keeps).
        self.tail_limit = limit - limit // 2
        self.interval = interval
        self.flush_bytes = flush_bytes
        self._insert = insert
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._streams = {name: _Stream() for name in STREAMS}
        self._pieces: list[list] = []  # [stream, text, cut] not yet numbered
        self._pending_bytes = 0
        self._unsent: list[Record] = []  # numbered records an insert did not take yet
        self._seq = 0
        self._closed = False
        self._scheduled = False

    # -- writing (the executor) ---------------------------------------------------------------
    def write(self, stream: str, data: bytes) -> None:
        """Take ``data`` the command wrote to ``stream`` ("stdout" or "stderr")."""
        with self._lock:
            if self._closed:
                return
            state = self._streams[stream]
            state.total += len(data)
            if state.cut:
                self._keep_tail(state, data)
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
                self._keep_tail(state, data[len(part) :])
            if not self._scheduled:  # stored every ``interval`` seconds from now on
                self._scheduled = True
                _FLUSHER.add(self, self.interval)
            if self._pending_bytes >= self.flush_bytes:
                _FLUSHER.add(self, 0.0)

    def _keep_tail(self, state: _Stream, data: bytes) -> None:
        if self.tail_limit:
            state.tail += data[-self.tail_limit :]
            del state.tail[: -self.tail_limit]

    def _add(self, stream: str, text: str, cut: bool) -> None:
        last = self._pieces[-1] if self._pieces else None
        if (
            last is not None
            and last[0] == stream
            and not last[2]
            and not cut
            and len(last[1]) + len(text) <= MAX_CHUNK_TEXT
        ):
            last[1] += text
        else:
            self._pieces.append([stream, text, cut])
        self._pending_bytes += len(text)

    # -- storing (the process's flusher thread, _Flusher) ------------------------------------------
    def flush(self) -> bool:
        """Store what is waiting; True when nothing is left unsent."""
        with self._flush_lock:
            with self._lock:
                for stream, text, cut in self._pieces:
                    for start in range(0, max(len(text), 1), MAX_CHUNK_TEXT):
                        self._unsent.append(self._chunk(stream, text[start : start + MAX_CHUNK_TEXT], cut))
                self._pieces, self._pending_bytes = [], 0
                docs = list(self._unsent)
            if not docs:
                return True
            try:
                self._insert(docs)
            except Exception as exc:  # noqa: BLE001 - never disturb the command; retry later
                log.warning(
                    "live output not stored yet (%s: %s); will retry",
                    type(exc).__name__,
                    exc,
                    extra={"event": "output.store_failed", "run_id": self.run_id},
                )
                return False
            with self._lock:
                del self._unsent[: len(docs)]
            return True

    def _chunk(self, stream: str, text: str, cut: bool) -> Chunk:
        seq, self._seq = self._seq, self._seq + 1
        return Chunk(
            id=names.output_chunk_id(self.run_id, seq),
            run_id=self.run_id,
            seq=seq,
            stream=stream,
            text=text,
            cut=cut,
            at=clock.utcnow(),
        )

    # -- the end ----------------------------------------------------------------------------------
    def close(self, retry_for: float = 10.0) -> None:
        """Store the rest and the ``eof`` record (retrying up to ``retry_for`` seconds).
        Never raises."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            one_stream = len({piece[0] for piece in self._pieces}) <= 1
            if self.skip_if_unflushed and self._seq == 0 and one_stream:
                self._pieces, self._pending_bytes = [], 0
                return
            for name, state in self._streams.items():
                tail = state.decoder.decode(b"", final=True)
                if tail and not state.cut:
                    self._add(name, tail, False)
                if state.cut:
                    self._add_tail(name, state)
        _FLUSHER.remove(self)  # a flush under way finishes first: flush() holds _flush_lock
        deadline = time.monotonic() + retry_for
        while not self.flush():
            if time.monotonic() >= deadline:
                self.stored = min(chunk.seq for chunk in self._unsent if isinstance(chunk, Chunk))
                log.error(
                    "live output of run %s incomplete: %d chunk(s) not stored",
                    self.run_id,
                    len(self._unsent),
                    extra={"event": "output.lost", "run_id": self.run_id},
                )
                return
            time.sleep(0.5)
        self.stored = self._seq
        streams = self._streams
        eof = OutputEnd(
            id=names.output_eof_id(self.run_id),
            run_id=self.run_id,
            chunks=self._seq,
            stdout_bytes=streams["stdout"].total,
            stderr_bytes=streams["stderr"].total,
            stdout_cut=streams["stdout"].cut,
            stderr_cut=streams["stderr"].cut,
            at=clock.utcnow(),
        )
        try:
            self._insert([eof])
        except Exception as exc:  # noqa: BLE001 - readers fall back to the run's end time
            log.warning(
                "live output eof not stored: %s", exc, extra={"event": "output.store_failed", "run_id": self.run_id}
            )

    def _add_tail(self, stream: str, state: _Stream) -> None:
        """A cut stream's end: the omission marker (when bytes fell between head and tail),
        then the tail (decoded alone: a character cut at its start becomes U+FFFD)."""
        omitted = state.total - state.stored - len(state.tail)
        if omitted > 0:
            self._add(stream, omitted_notice(stream, omitted), True)
        if state.tail:
            self._add(stream, bytes(state.tail).decode("utf-8", errors="replace"), False)

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Flusher:
    """Stores the output of every running command of this process from one thread that lives
    as long as the process (rather than one thread per run): each writer is flushed
    ``interval`` seconds after its last flush, or at once when it holds ``flush_bytes``."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._due: dict[ChunkWriter, float] = {}
        self._pid: int | None = None

    def add(self, writer: ChunkWriter, delay: float) -> None:
        """Flush ``writer`` in ``delay`` seconds (sooner if it was due sooner)."""
        with self._changed:
            if self._pid != os.getpid():  # (again) after a fork: threads are not inherited
                self._pid = os.getpid()
                self._due.clear()
                threading.Thread(target=self._run, name="hydra-livelog", daemon=True).start()
            at = time.monotonic() + delay
            self._due[writer] = min(at, self._due.get(writer, at))
            self._changed.notify()

    def remove(self, writer: ChunkWriter) -> None:
        with self._changed:
            self._due.pop(writer, None)

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [writer for writer, at in self._due.items() if at <= now]
                if not due:
                    soonest = min(self._due.values(), default=None)
                    self._changed.wait(None if soonest is None else soonest - now)
                    continue
                for writer in due:  # the next one: ``interval`` from now, unless a write wakes it
                    self._due[writer] = now + writer.interval
            for writer in due:
                if not writer._closed:
                    writer.flush()


_FLUSHER = _Flusher()
