"""Reading a run's live output, page by page, for a caller: what ``GET /runs/<id>/output``
answers and what gRPC's ``WatchRun`` streams.

A page holds the chunks after ``after`` (``-1``: from the start), the run's status, ``next``
(pass it as ``after`` to get what follows) and ``ended`` (the run has ended and every chunk
was returned). With ``wait`` the read is held until new output arrives or the run ends (at
most :data:`MAX_WAIT` seconds, so one follower never holds a server thread for long).

:func:`read_output` (REST) is gated: one process serves at most ``HYDRA_MAX_FOLLOWERS``
reads at once, and a read beyond that is answered at once - the run's status, no chunks,
``ended: false`` and ``retry_after`` (1-2 s) - so followers take turns and an API's other
requests keep their threads. :func:`read_page` is the read itself.

:func:`follow_output` follows a run until its output ended, through this process's one feed
per followed run (``hydra.control.follow``): ``GET /runs/<id>/output/events`` (server-sent
events, which ``hydra logs -f``, the client and the console use) and gRPC's WatchRun.

:func:`download` is the run's output as one text (``GET /runs/<id>/output.txt``): the full
output when ``HYDRA_OUTPUT_DIR`` keeps it (``hydra.store.output_dir``), else every stored chunk in
order (head, notices, tail).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import IO

from hydra import clock
from hydra.control.access import Reader, require
from hydra.control.follow import KEEPALIVE, Hub, follow
from hydra.execution.live import STREAMS
from hydra.model.queries import MAX_WAIT
from hydra.model.records import Chunk, OutputEnd, Run
from hydra.settings import get_settings
from hydra.store.output import OutputStore
from hydra.store.output_dir import OutputDir
from hydra.store.runs import RunStore

#: How often a waiting read looks for new output (a chunk is stored <= 0.4 s after it is written).
POLL_INTERVAL = 0.2
#: A run that ended this long ago without an ``eof`` record (its worker died, say) is complete.
EOF_GRACE = timedelta(seconds=5)


def _writer_gone(run: Run, now: datetime) -> bool:
    """For an ended run without an end-of-output record: will no more output come? True when
    it never started, or ended more than :data:`EOF_GRACE` ago (its worker died, say)."""
    if run.started_at is None:
        return True
    return run.finished_at is None or now - run.finished_at > EOF_GRACE


def record_chunks(run: Run, after: int) -> list[Chunk]:
    """A short run's output as chunks (stdout as chunk 0, stderr as chunk 1, when not empty),
    from the run record: its worker stored no live chunks (hydra.execution.live)."""
    chunks: list[Chunk] = []
    for stream in STREAMS:
        text = getattr(run, stream) or ""
        if text:
            chunks.append(
                Chunk(
                    id=f"{run.id}/record-{stream}",
                    run_id=run.id,
                    seq=len(chunks),
                    stream=stream,
                    text=text,
                    at=run.finished_at,
                )
            )
    return [chunk for chunk in chunks if chunk.seq > after]


#: Seconds a follower that found no room is told to wait before asking again.
RETRY_AFTER = 1.0
_gate_lock = threading.Lock()
_gate: threading.BoundedSemaphore | None = None


def _followers() -> threading.BoundedSemaphore:
    global _gate
    with _gate_lock:
        if _gate is None:
            _gate = threading.BoundedSemaphore(max(1, get_settings().max_followers))
        return _gate


#: Seconds a run's status, read for a follower that must wait its turn, is reused for others.
STATUS_TTL = 1.0
_statuses: dict[str, tuple[float, str, str]] = {}


def _known_status(reader: Reader, run_id: str) -> str:
    """The run's status, read at most once per STATUS_TTL for followers told to wait (so that
    their answers cost no query); NotFound (404) for an unknown run or one the caller may not
    read, as always (the namespace is kept with the status and checked every time)."""
    now = time.monotonic()
    with _gate_lock:
        known = _statuses.get(run_id)
    if known is None or now - known[0] >= STATUS_TTL:
        run = reader.runs.get(run_id)
        known = (now, run.status, run.namespace)
        with _gate_lock:
            if len(_statuses) > 10_000:
                _statuses.clear()
            _statuses[run_id] = known
    require(reader.actor, "read", known[2], kind="run", ident=run_id)
    return known[1]


def read_output(reader: Reader, run_id: str, after: int, wait: float, limit: int) -> dict:
    """One page (:func:`read_page`) - when this process serves fewer than
    ``HYDRA_MAX_FOLLOWERS`` reads. Otherwise the answer comes at once, with the run's status,
    no chunks and ``retry_after``: followers take turns."""
    gate = _followers()
    if not gate.acquire(blocking=False):
        return {
            "run_id": run_id,
            "status": _known_status(reader, run_id),
            "chunks": [],
            "next": after,
            "ended": False,
            "stdout_bytes": None,
            "stderr_bytes": None,
            "retry_after": round(RETRY_AFTER * (1 + random.random()), 2),
        }
    try:
        return read_page(reader, run_id, after, wait, limit)
    finally:
        gate.release()


def read_page(reader: Reader, run_id: str, after: int, wait: float, limit: int) -> dict:
    """One page of the run's output for ``reader``'s caller (held up to ``wait`` s for
    something new); NotFound for a run it may not see."""
    output = OutputStore()
    deadline = time.monotonic() + min(wait, MAX_WAIT)
    while True:
        page = page_of(reader.run(run_id), output, after, limit)  # NotFound -> 404
        if page["chunks"] or page["ended"] or time.monotonic() >= deadline:
            return page
        time.sleep(POLL_INTERVAL)


def page_of(run: Run, output: OutputStore, after: int, limit: int) -> dict:
    """The page after chunk ``after`` of ``run``'s output, read once: ``run`` must have been
    read before the chunks are (see below). The followers' feeds (``hydra.control.follow``)
    read the same pages."""
    run_id = run.id
    chunks = output.chunks(run_id, after, max_chunks=limit)
    eof: OutputEnd | None = None
    ended = False
    if run.run_status.is_terminal and run.live_chunks == 0:
        # A short run stored no chunks: its whole output is in the run record.
        chunks, ended = record_chunks(run, after), True
    elif run.run_status.is_terminal:
        # The run's end is recorded after its writer closed, so with the status read
        # first, the chunks read now are all there are once the end record exists.
        eof = output.end(run_id)
        last = chunks[-1].seq if chunks else after
        if eof is not None:  # complete once the reader has every chunk the writer stored
            ended = last + 1 >= eof.chunks
        else:  # no writer ran, or it died: complete after a grace, once nothing more is read
            ended = not chunks and _writer_gone(run, clock.utcnow())
    return {
        "run_id": run_id,
        "status": run.status,
        "chunks": chunks,
        "next": chunks[-1].seq if chunks else after,
        "ended": ended,
        "stdout_bytes": eof.stdout_bytes if eof else run.stdout_bytes if ended else None,
        "stderr_bytes": eof.stderr_bytes if eof else run.stderr_bytes if ended else None,
    }


_hub_lock = threading.Lock()
_hub: Hub | None = None


def process_hub() -> Hub:
    """This process's feeds of followed runs (``hydra.control.follow``), started on first use."""
    global _hub
    with _hub_lock:
        if _hub is None:
            runs, output = RunStore(), OutputStore()
            _hub = Hub(lambda run_id, after, limit: page_of(runs.get(run_id), output, after, limit))
        return _hub


def follow_output(reader: Reader, run_id: str, after: int, *, keepalive: float = KEEPALIVE) -> Iterator[dict | None]:
    """Follow the output of a run ``reader``'s caller may read (NotFound, before anything is
    yielded, otherwise; checked when the following starts): its pages from chunk ``after`` on
    until the one that says ``ended`` (``hydra.control.follow.follow``); ``None`` now and then
    while nothing happens."""
    reader.run(run_id)
    return follow(process_hub(), run_id, after=after, keepalive=keepalive)


#: Chunks read per store round trip while a download is served.
DOWNLOAD_PAGE = 256


def download(reader: Reader, run_id: str) -> tuple[Run, IO[bytes] | Iterator[bytes], bool]:
    """The output of a run ``reader``'s caller may read (NotFound otherwise), for a download:
    (the run, its bytes, whether that is the full output). The full output is the file
    ``HYDRA_OUTPUT_DIR`` keeps (complete once the command ended); else it is what is stored:
    every live chunk in order - stdout and stderr interleaved as written, a cut stream's head,
    the omission marker and its tail - or, for a short run, its record's output. The first page
    is read before this returns, so a store that is down is an error, not a cut download."""
    run = reader.run(run_id)
    files = OutputDir.configured()
    handle = files.open(run.id) if files is not None else None
    if handle is not None:
        return run, handle, True
    output = OutputStore()
    first = output.chunks(run.id, -1, max_chunks=DOWNLOAD_PAGE)
    if not first and run.run_status.is_terminal and not run.live_chunks:
        first = record_chunks(run, -1)
        return run, iter([chunk.text.encode() for chunk in first]), False

    def rest() -> Iterator[bytes]:
        page = first
        while page:
            yield "".join(chunk.text for chunk in page).encode()
            page = output.chunks(run.id, page[-1].seq, max_chunks=DOWNLOAD_PAGE)

    return run, rest(), False
