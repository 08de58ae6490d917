"""``/runs/<id>/output``: a run's live stdout/stderr, page by page, with a long-poll follow mode.

A client reads ``GET /runs/<id>/output`` (``after=-1``: from the start), prints the chunks,
and asks again with ``after=<next>``; with ``wait=<seconds>`` the request is held until new
output arrives or the run ends (at most ``hydra.model.queries.MAX_WAIT`` seconds, so one follower never
holds one of the API's threads for long). ``ended: true`` means no more output will come.
The reading itself is ``hydra.control.output`` (gRPC's WatchRun streams the same pages).

Followers cannot starve the API: one API process serves at most ``HYDRA_MAX_FOLLOWERS``
output requests at once (default 2; gunicorn runs 2 processes of 4 threads). A request
beyond that is answered at once - the run's status, no chunks, ``ended: false`` and
``retry_after`` (1-2 s) - which the client and the CLI honour before asking again; so
followers take turns and the other threads stay free for every other request
(``bench/follow.py`` measures ``/health`` with 64 followers).
"""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields

from api.auth import caller
from api.parsing import Blueprint
from hydra.control.access import Reader
from hydra.control.output import read_output
from hydra.model.queries import OutputArgs

blp = Blueprint("output", __name__, url_prefix="/runs", description="Live output of runs.")


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
