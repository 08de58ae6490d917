"""Reading a run's live output, page by page, for a caller: what ``GET /runs/<id>/output``
answers and what gRPC's ``WatchRun`` streams.

A page holds the chunks after ``after`` (``-1``: from the start), the run's status, ``next``
(pass it as ``after`` to get what follows) and ``ended`` (the run has ended and every chunk
was returned). With ``wait`` the read is held until new output arrives or the run ends (at
most :data:`MAX_WAIT` seconds, so one follower never holds a server thread for long).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from hydra import clock
from hydra.control.access import Reader
from hydra.execution.live import STREAMS
from hydra.model.queries import MAX_WAIT
from hydra.model.records import Chunk, OutputEnd, Run
from hydra.store.output import OutputStore

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


def read_output(reader: Reader, run_id: str, after: int, wait: float, limit: int) -> dict:
    """One page of the run's output for ``reader``'s caller (held up to ``wait`` s for
    something new); NotFound for a run it may not see."""
    output = OutputStore()
    deadline = time.monotonic() + min(wait, MAX_WAIT)
    while True:
        run = reader.run(run_id)  # NotFound -> 404; read before the chunks, see below
        chunks = output.chunks(run_id, after, max_chunks=limit)
        eof: OutputEnd | None = None
        ended = False
        if run.run_status.is_terminal and run.live_chunks == 0:
            # A short run stored no chunks: its whole output is in the run record.
            chunks, ended = record_chunks(run, after), True
            break
        if run.run_status.is_terminal:
            # The run's end is recorded after its writer closed, so with the status read
            # first, the chunks read now are all there are once the end record exists.
            eof = output.end(run_id)
            last = chunks[-1].seq if chunks else after
            if eof is not None:  # complete once the reader has every chunk the writer stored
                ended = last + 1 >= eof.chunks
            else:  # no writer ran, or it died: complete after a grace, once nothing more is read
                ended = not chunks and _writer_gone(run, clock.utcnow())
        if chunks or ended or time.monotonic() >= deadline:
            break
        time.sleep(POLL_INTERVAL)
    return {
        "run_id": run_id,
        "status": run.status,
        "chunks": chunks,
        "next": chunks[-1].seq if chunks else after,
        "ended": ended,
        "stdout_bytes": eof.stdout_bytes if eof else run.stdout_bytes if ended else None,
        "stderr_bytes": eof.stderr_bytes if eof else run.stderr_bytes if ended else None,
    }
