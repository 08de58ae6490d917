"""``/jobs``: submit a job, read it, list its runs; update, delete, pause, resume and
trigger it (the verbs of ``hydra.control.verbs``)."""

from __future__ import annotations

import logging

from flask.views import MethodView

from api.auth import caller
from api.parsing import Blueprint
from api.schemas.common import NEXT_CURSOR_HEADER, REPLAYED, REPLAYED_HEADER, IdempotencyHeaders
from api.schemas.jobs import JobCreatedSchema, JobPatchSchema, JobSchema, TriggerSchema
from api.schemas.runs import RunSchema
from hydra.control import submission, verbs
from hydra.control.access import Reader
from hydra.control.submission import Accepted, accepted
from hydra.model.queries import JobListArgs, RunListArgs
from hydra.model.records import Dispatched
from hydra.model.spec import JobSpecSchema

log = logging.getLogger(__name__)

blp = Blueprint("jobs", __name__, url_prefix="/jobs", description="Submit jobs, control them, follow their runs.")


def created(job_id: str, run: Dispatched | None, starts_at=None) -> Accepted:
    return accepted(job_id, run, starts_at)


def paged(items: list, cursor: str | None):
    return (items, {"X-Next-Cursor": cursor}) if cursor else items


# Schema instances, not classes: webargs would make a new schema for every request.
@blp.route("/", strict_slashes=False)
class Jobs(MethodView):
    @blp.arguments(JobSpecSchema())
    @blp.arguments(IdempotencyHeaders(), location="headers")
    @blp.response(201, JobCreatedSchema, headers=REPLAYED_HEADER)
    @blp.alt_response(
        409,
        description="The `Idempotency-Key` was used with another body in the last 24 h, or its "
        "first request is still being served (send it again).",
    )
    @blp.alt_response(422, description="The body is invalid; `errors.json` names each field.")
    @blp.alt_response(503, description="MongoDB is unavailable; nothing was stored.")
    def post(self, spec, headers):
        """Submit a job.

        The job is stored, then its first run is routed to the least-loaded eligible worker
        (status `queued`) or, when none is online, waits for one (status `pending`). With
        `scheduled_at` in the future the run starts at that time, and with a cron `schedule`
        on every tick (status `scheduled`).

        With an `Idempotency-Key` header, sending the same request again within 24 hours
        makes no second job: the answer is the first one's (same job and run ids), with
        `Idempotent-Replayed: true`. Keys are the caller's own, per namespace.

        The answer of `GET /jobs/{job_id}` is a body this takes back: the read-only fields it
        shows - every field of the answer that is not a field of the body: the job's state,
        such as `id`, `status`, `last_run_id`, `source`, `paused`, `created_at` - are ignored;
        any other unknown field is refused. A write-only value shown as `<redacted>`
        is refused (give the value; `POST /jobs/apply` keeps a stored one).
        """
        answer = submission.submit(spec, actor=caller(), idempotency_key=headers["key"])
        return (answer, {REPLAYED: "true"}) if answer.replayed else answer

    @blp.arguments(JobListArgs(), location="query")
    @blp.response(200, JobSchema(many=True), headers=NEXT_CURSOR_HEADER)
    def get(self, args):
        """List jobs, newest first (filter by status of their latest run, and by user).

        Deleted jobs are left out. When more jobs match than `limit`, the `X-Next-Cursor`
        header holds the `cursor` of the next page. A stored job this version cannot render
        is left out too, flagged and logged; `X-Skipped-Records` then says how many and which.
        """
        jobs, cursor = Reader(caller()).jobs_page(
            status=args["status"] or args["status_filter"],
            user=args["user"],
            namespace=args["namespace"],
            limit=args["limit"],
            cursor=args["cursor"],
        )
        return paged(jobs, cursor)


@blp.route("/<job_id>")
class Job(MethodView):
    @blp.response(200, JobSchema)
    @blp.alt_response(404, description="No job with that id.")
    @blp.alt_response(409, description="The stored job cannot be rendered by this version (it is flagged).")
    def get(self, job_id):
        """Get a job's definition and the status of its latest run (a deleted job shows `deleted_at`)."""
        return Reader(caller()).job(job_id)

    @blp.arguments(JobSpecSchema)
    @blp.response(200, JobSchema)
    @blp.alt_response(404, description="No job with that id.")
    @blp.alt_response(409, description="The job was deleted.")
    @blp.alt_response(422, description="The body is invalid; `errors.json` names each field.")
    def put(self, spec, job_id):
        """Replace a job's body. Future runs use it; runs already queued or running are not changed."""
        return verbs.update(job_id, actor=caller(), spec=spec)

    @blp.arguments(JobPatchSchema(partial=True))
    @blp.response(200, JobSchema)
    @blp.alt_response(404, description="No job with that id.")
    @blp.alt_response(409, description="The job was deleted.")
    @blp.alt_response(422, description="The merged body is invalid; `errors.json` names each field.")
    def patch(self, patch, job_id):
        """Change some fields of a job (top-level fields replace the stored ones). Affects future runs."""
        return verbs.update(job_id, actor=caller(), patch=patch)

    @blp.response(204)
    @blp.alt_response(404, description="No job with that id.")
    def delete(self, job_id):
        """Delete a job: its schedule stops and its runs not started yet are cancelled; its history is kept."""
        verbs.delete(job_id, actor=caller())


@blp.route("/<job_id>/runs")
class JobRuns(MethodView):
    @blp.arguments(RunListArgs(), location="query")
    @blp.response(200, RunSchema(many=True), headers=NEXT_CURSOR_HEADER)
    @blp.alt_response(404, description="No job with that id.")
    def get(self, args, job_id):
        """A job's runs, newest first: status, exit code, output, worker, attempt, times.

        When there are more than `limit`, the `X-Next-Cursor` header holds the next page's `cursor`.
        """
        runs, cursor = Reader(caller()).runs_of(job_id, limit=args["limit"], cursor=args["cursor"])
        return paged(runs, cursor)


@blp.route("/<job_id>/pause")
class PauseJob(MethodView):
    @blp.response(200, JobSchema)
    @blp.alt_response(404, description="No job with that id.")
    @blp.alt_response(409, description="The job has no schedule and no job starts it, or was deleted.")
    def post(self, job_id):
        """Pause a job: its cron schedule does not fire, and the jobs that name it in their
        `on_success`, `on_failure` or `on_completion` do not start it (their runs note why),
        until it is resumed. Manual triggers still work."""
        return verbs.pause(job_id, actor=caller())


@blp.route("/<job_id>/resume")
class ResumeJob(MethodView):
    @blp.response(200, JobSchema)
    @blp.alt_response(404, description="No job with that id.")
    @blp.alt_response(409, description="The job has no schedule, or was deleted.")
    def post(self, job_id):
        """Resume a paused job from now (ticks and starts during the pause do not run later)."""
        return verbs.resume(job_id, actor=caller())


@blp.route("/<job_id>/trigger")
class TriggerJob(MethodView):
    @blp.arguments(TriggerSchema(), required=False)
    @blp.response(201, JobCreatedSchema)
    @blp.alt_response(404, description="No job with that id.")
    @blp.alt_response(409, description="The job was deleted.")
    @blp.alt_response(
        422,
        description="The body is invalid, or a parameter's value: `errors.json.params.<NAME>` names each bad one.",
    )
    def post(self, body, job_id):
        """Run the job once now, whatever its schedule.

        The body is optional: `{"params": {"TARGET": "prod"}}` gives values for the job's
        parameters (`params` of the job); the others take their defaults. Each value is checked
        against the declaration (required, allowed values or pattern). A parameter reaches the
        command as the environment variable `HYDRA_PARAM_<NAME>`, or as an argument when it is
        declared with `"as": "arg"`. The run records the values (secret ones write-only), and so
        does the audit trail.
        """
        return created(job_id, verbs.trigger(job_id, actor=caller(), params=(body or {}).get("params")))
