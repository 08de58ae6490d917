"""``/runs``: one run (attempt) by id; cancel it, retry it. ``/dead-letter``: runs that
used up their retries (the dead-letter queue)."""

from __future__ import annotations

from flask.views import MethodView

from api.auth import caller
from api.jobs import created, paged
from api.parsing import Blueprint
from api.schemas.common import NEXT_CURSOR_HEADER
from api.schemas.jobs import JobCreatedSchema
from api.schemas.runs import RunSchema
from hydra.control import verbs
from hydra.control.access import Reader
from hydra.model.queries import DeadLetterArgs

blp = Blueprint("runs", __name__, url_prefix="/runs", description="Runs: one attempt at executing a job.")
dead_letter_blp = Blueprint(
    "dead-letter", __name__, url_prefix="/dead-letter", description="Runs that failed after their last retry."
)


@blp.route("/<run_id>")
class Run(MethodView):
    @blp.response(200, RunSchema)
    @blp.alt_response(404, description="No run with that id.")
    def get(self, run_id):
        """Get a run: status, exit code, output, worker, attempt, times, and what its job's
        notification targets were told (each delivery's attempts)."""
        return Reader(caller()).run_shown(run_id)


@blp.route("/<run_id>/cancel")
class CancelRun(MethodView):
    @blp.response(200, RunSchema, description="The run had not started: it is cancelled and never will.")
    @blp.alt_response(
        202,
        schema=RunSchema,
        description="The run is running: its worker kills the "
        "command's process tree within 2 s and records it `cancelled` with its output so far.",
    )
    @blp.alt_response(404, description="No run with that id.")
    @blp.alt_response(409, description="The run already ended.")
    def post(self, run_id):
        """Cancel a run: a queued or pending run never starts; a running one is killed."""
        run, ended = verbs.cancel(run_id, actor=caller())
        return run, 200 if ended else 202


@blp.route("/<run_id>/retry")
class RetryRun(MethodView):
    @blp.response(201, JobCreatedSchema)
    @blp.alt_response(404, description="No run with that id.")
    @blp.alt_response(409, description="The run did not fail, was retried already, or its job was deleted.")
    def post(self, run_id):
        """Start one more attempt after a failed, timed-out, cancelled or dead-lettered run."""
        job_id, placed = verbs.retry(run_id, actor=caller())
        return created(job_id, placed)


@dead_letter_blp.route("/", strict_slashes=False)
class DeadLetters(MethodView):
    @dead_letter_blp.arguments(DeadLetterArgs(), location="query")
    @dead_letter_blp.response(200, RunSchema(many=True), headers=NEXT_CURSOR_HEADER)
    def get(self, args):
        """Dead-lettered runs, newest first (not yet retried, unless `include_retried`).

        `outcome` says how the last attempt ended (failed, timed_out or lost); `POST
        /runs/{id}/retry` starts another attempt. More than `limit`: see `X-Next-Cursor`.
        """
        runs, cursor = Reader(caller()).dead_letters(
            limit=args["limit"], cursor=args["cursor"], job_id=args["job_id"], include_retried=args["include_retried"]
        )
        return paged(runs, cursor)
