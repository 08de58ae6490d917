"""``/runs/<id>/output``: a run's live stdout/stderr, page by page, with a long-poll follow mode.

A client reads ``GET /runs/<id>/output`` (``after=-1``: from the start), prints the chunks,
and asks again with ``after=<next>``; with ``wait=<seconds>`` the request is held until new
output arrives or the run ends (at most :data:`MAX_WAIT` seconds, so one follower never
holds one of the API's threads for long). ``ended: true`` means no more output will come.

Followers cannot starve the API: one API process serves at most ``HYDRA_MAX_FOLLOWERS``
output requests at once (default 2; gunicorn runs 2 processes of 4 threads). A request
beyond that is answered at once - the run's status, no chunks, ``ended: false`` and
``retry_after`` (1-2 s) - which the client and the CLI honour before asking again; so
followers take turns and the other threads stay free for every other request
(``bench/follow.py`` measures ``/health`` with 64 followers).
"""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timedelta

from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, fields, validate

from api.auth import caller
from api.parsing import Blueprint
from hydra import clock
from hydra.control.access import Reader, require
from hydra.execution.live import STREAMS
from hydra.model.records import Chunk, OutputEnd, Run
from hydra.settings import get_settings
from hydra.store.output import OutputStore

blp = Blueprint("output", __name__, url_prefix="/runs", description="Live output of runs.")

#: Longest a request may wait for new output (seconds).
MAX_WAIT = 10.0
#: How often a waiting request looks for new output (a chunk is stored <= 0.4 s after it is written).
POLL_INTERVAL = 0.2
#: A run that ended this long ago without an ``eof`` record (its worker died, say) is complete.
EOF_GRACE = timedelta(seconds=5)


class OutputArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    after = fields.Integer(
        load_default=-1,
        validate=validate.Range(-1, 10**8),
        metadata={
            "description": "Return the chunks after this sequence number (-1: from the start); "
            "pass the previous answer's `next`."
        },
    )
    wait = fields.Float(
        load_default=0.0,
        validate=validate.Range(0, MAX_WAIT),
        metadata={
            "description": f"Seconds (at most {MAX_WAIT:g}) to wait for new output when there is none yet "
            "and the run has not ended (long-poll follow mode)."
        },
    )
    limit = fields.Integer(
        load_default=256,
        validate=validate.Range(1, 1000),
        metadata={"description": "At most this many chunks (an answer also stops after about 1 MiB of text)."},
    )


class ChunkSchema(Schema):
    seq = fields.Integer(metadata={"description": "Position of the chunk in the run's output (0, 1, ...)."})
    stream = fields.String(metadata={"description": "stdout or stderr."})
    text = fields.String(metadata={"description": "The output, decoded as UTF-8 (invalid bytes become U+FFFD)."})
    cut = fields.Boolean(
        metadata={
            "description": "True for the notice that the stream passed the output limit; what followed "
            "is counted (`stdout_bytes`, `stderr_bytes`) but not stored."
        }
    )
    at = fields.DateTime(metadata={"description": "When the worker stored the chunk."})


class OutputSchema(Schema):
    run_id = fields.String(metadata={"description": "The run."})
    status = fields.String(metadata={"description": "The run's status when this answer was made."})
    chunks = fields.List(fields.Nested(ChunkSchema), metadata={"description": "New chunks, in order."})
    next = fields.Integer(metadata={"description": "Pass as `after` to get what follows."})
    ended = fields.Boolean(metadata={"description": "The run has ended and all of its output was returned."})
    stdout_bytes = fields.Integer(
        allow_none=True, metadata={"description": "Bytes the command wrote to stdout (once the output is complete)."}
    )
    stderr_bytes = fields.Integer(
        allow_none=True, metadata={"description": "Bytes the command wrote to stderr (once the output is complete)."}
    )
    retry_after = fields.Float(
        allow_none=True,
        metadata={
            "description": "Set when the server already serves as many output requests as it allows "
            "(HYDRA_MAX_FOLLOWERS per API process): no chunks were read; ask again after this many seconds."
        },
    )


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
_statuses: dict[str, tuple[float, str]] = {}


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
    """One answer of the output endpoint (held up to ``wait`` s for something new) - when this
    process serves fewer than ``HYDRA_MAX_FOLLOWERS`` output requests. Otherwise the answer
    comes at once, with the run's status, no chunks and ``retry_after``: followers take
    turns, and the API's other requests keep their threads."""
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
        return _read_output(reader, run_id, after, wait, limit)
    finally:
        gate.release()


def _read_output(reader: Reader, run_id: str, after: int, wait: float, limit: int) -> dict:
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


@blp.route("/<run_id>/output")
class RunOutput(MethodView):
    @blp.arguments(OutputArgs, location="query")
    @blp.response(200, OutputSchema)
    @blp.alt_response(404, description="No run with that id.")
    def get(self, args, run_id):
        """Read a run's output while it runs (and after).

        Chunks of stdout and stderr in the order the worker stored them, at most 0.4 s after
        the command wrote them. Follow a run by asking again with `after=<next>` and
        `wait=10` until `ended` is true (that is what `hydra logs -f` does).
        """
        return read_output(Reader(caller()), run_id, args["after"], args["wait"], args["limit"])
