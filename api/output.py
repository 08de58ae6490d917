"""``/runs/<id>/output``: a run's live stdout/stderr, page by page, and followed as server-sent events.

``GET /runs/<id>/output/events`` follows a run: its stored output, then each new chunk and
status change as it comes, until a last page with ``ended: true`` and the final status
(``hydra.control.output.follow_output``: one feed per followed run and API process,
``hydra.control.follow``). Under gunicorn's gevent worker class a follower waits in a greenlet
and holds no worker thread. ``hydra logs -f``, the client, the console and gRPC's WatchRun
follow this way (``bench/follow.py`` measures ``/health`` and each line's delay with 64
followers).

``GET /runs/<id>/output`` reads one page (``after=-1``: from the start); with
``wait=<seconds>`` the request is held until new output arrives or the run ends (at most
``hydra.model.queries.MAX_WAIT`` seconds). One API process serves at most
``HYDRA_MAX_FOLLOWERS`` such requests at once; one beyond that is answered at once - the
run's status, no chunks, ``ended: false`` and ``retry_after`` (1-2 s).
``GET /runs/<id>/output.txt`` downloads the output as one text file.
"""

from __future__ import annotations

import json

from flask import Response, request, send_file, stream_with_context
from flask.views import MethodView
from marshmallow import Schema, fields

from api.auth import caller
from api.parsing import Blueprint
from hydra.control.access import Reader
from hydra.control.output import download, follow_output, read_output
from hydra.model.queries import FollowArgs, OutputArgs

blp = Blueprint("output", __name__, url_prefix="/runs", description="Live output of runs.")


class ChunkSchema(Schema):
    seq = fields.Integer(metadata={"description": "Position of the chunk in the run's output (0, 1, ...)."})
    stream = fields.String(metadata={"description": "stdout or stderr."})
    text = fields.String(metadata={"description": "The output, decoded as UTF-8 (invalid bytes become U+FFFD)."})
    cut = fields.Boolean(
        metadata={
            "description": "True for Hydra's notices in a stream longer than the output limit: that it "
            "passed the limit (while the command runs), then, once it ended, how many bytes were left "
            "out before the stream's tail, which follows. Everything is counted (`stdout_bytes`, `stderr_bytes`)."
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


@blp.route("/<run_id>/output")
class RunOutput(MethodView):
    @blp.arguments(OutputArgs, location="query")
    @blp.response(200, OutputSchema)
    @blp.alt_response(404, description="No run with that id.")
    def get(self, args, run_id):
        """Read a run's output while it runs (and after).

        Chunks of stdout and stderr in the order the worker stored them, at most 0.4 s after
        the command wrote them. Ask again with `after=<next>` (and `wait` to be held until
        there is something new) until `ended` is true; to follow a run, prefer
        `GET /runs/{run_id}/output/events`.
        """
        return read_output(Reader(caller()), run_id, args["after"], args["wait"], args["limit"])


def last_event_id() -> int:
    """The ``Last-Event-ID`` header as a chunk number (-1 when absent or not a number)."""
    try:
        return max(-1, min(int(request.headers.get("Last-Event-ID", "-1")), 10**8))
    except ValueError:
        return -1


def event_stream(pages) -> Response:
    """Server-sent events from ``hydra.control.output.follow_output``'s pages: one ``page``
    event per page (the JSON of ``GET /runs/<id>/output``, its `next` as the event's id), a
    comment line as keep-alive for ``None``; the stream ends after the page with ``ended``."""
    schema = OutputSchema()

    def events():
        try:
            for page in pages:
                if page is None:
                    yield ": keep-alive\n\n"
                    continue
                data = json.dumps(schema.dump(page), separators=(",", ":"))
                yield f"id: {page['next']}\nevent: page\ndata: {data}\n\n"
        finally:  # the client went away (or the run ended): the follower leaves its feed
            pages.close()

    response = Response(events(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx passes each event on at once
    return response


@blp.route("/<run_id>/output/events")
class RunOutputEvents(MethodView):
    @blp.arguments(FollowArgs, location="query")
    @blp.doc(
        responses={
            "200": {
                "description": "Server-sent events (`text/event-stream`), each `event: page` with `id:` the "
                "page's `next` and `data:` a page as `GET /runs/{run_id}/output` answers it: first the stored "
                "output, then new chunks and status changes as they come. The last page has `ended: true`, the "
                "run's final status and its byte counts; then the stream ends. A `: keep-alive` comment comes "
                "every 15 s while nothing happens.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        }
    )
    @blp.alt_response(404, description="No run with that id.")
    def get(self, args, run_id):
        """Follow a run's output as server-sent events.

        Every chunk once, in order, from `after` on, until the run has ended; then the stream
        ends with the final status. Whoever may read the run may follow it. Each API process
        reads a followed run once for all of its followers, and a follower holds no server
        thread while it waits: this is how `hydra logs -f`, the Python client, the console and
        gRPC's WatchRun follow a run.
        """
        return event_stream(follow_output(Reader(caller()), run_id, max(args["after"], last_event_id())))


def attachment(run_id: str, body, *, full: bool) -> Response:
    """A run's output as a text/plain download named after the run: a file (its full output)
    or the stored chunks, streamed."""
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in run_id)[:100] or "run"
    if hasattr(body, "read"):
        response = send_file(body, mimetype="text/plain")
    else:
        response = Response(stream_with_context(body), mimetype="text/plain")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.txt"'
    response.headers["X-Hydra-Output"] = "full" if full else "stored"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@blp.route("/<run_id>/output.txt")
class RunOutputText(MethodView):
    @blp.doc(
        responses={
            "200": {
                "description": "The run's output as text (UTF-8), stdout and stderr in the order they were "
                "written, as an attachment. `X-Hydra-Output` says `full` (every byte, kept in the "
                "installation's HYDRA_OUTPUT_DIR) or `stored` (what MongoDB keeps: each stream's head, "
                "then the number of bytes omitted, then its tail).",
                "content": {"text/plain": {"schema": {"type": "string"}}},
                "headers": {
                    "Content-Disposition": {
                        "description": '`attachment; filename="<run id>.txt"`.',
                        "schema": {"type": "string"},
                    },
                    "X-Hydra-Output": {
                        "description": "`full` or `stored` (see above).",
                        "schema": {"type": "string", "enum": ["full", "stored"]},
                    },
                },
            }
        }
    )
    @blp.alt_response(404, description="No run with that id.")
    def get(self, run_id):
        """Download a run's output as a text file.

        Whoever may read the run may download it. While the run is going on, the answer holds
        what was stored so far.
        """
        _run, body, full = download(Reader(caller()), run_id)
        return attachment(run_id, body, full=full)
