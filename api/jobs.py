"""``/jobs``: submit a job, read it, list its runs (seed 000's contract)."""
from __future__ import annotations

import logging

from flask.views import MethodView
from flask_smorest import Blueprint

from api.schemas import JobCreatedSchema, JobListArgs, JobSchema, RunListArgs, RunSchema
from hydra.jobs import JobStore, dispatch, new_id
from hydra.runs import RunStore
from hydra.spec import JobSpecSchema

log = logging.getLogger(__name__)

blp = Blueprint("jobs", __name__, url_prefix="/jobs", description="Submit jobs and follow their runs.")


@blp.route("/", strict_slashes=False)
class Jobs(MethodView):
    @blp.arguments(JobSpecSchema)
    @blp.response(201, JobCreatedSchema)
    @blp.alt_response(422, description="The body is invalid; `errors.json` names each field.")
    @blp.alt_response(503, description="MongoDB is unavailable; nothing was stored.")
    def post(self, spec):
        """Submit a job.

        The job is stored, then its first run is routed to the least-loaded eligible worker
        (status `queued`) or, when none is online, waits for one (status `pending`).
        """
        run_id = new_id()
        job = JobStore().create(spec, first_run_id=run_id)
        placed = dispatch(job, run_id=run_id)
        return {"id": job["_id"], "job_id": job["_id"], "run_id": placed.run_id,
                "status": placed.status.value, "worker_id": placed.worker_id,
                "pending_reason": placed.reason}

    @blp.arguments(JobListArgs, location="query")
    @blp.response(200, JobSchema(many=True))
    def get(self, args):
        """List jobs, newest first (filter by status of their latest run, and by user)."""
        return JobStore().list(status=args["status"] or args["status_filter"], user=args["user"],
                               limit=args["limit"])


@blp.route("/<job_id>")
class Job(MethodView):
    @blp.response(200, JobSchema)
    @blp.alt_response(404, description="No job with that id.")
    def get(self, job_id):
        """Get a job's definition and the status of its latest run."""
        return JobStore().get(job_id)


@blp.route("/<job_id>/runs")
class JobRuns(MethodView):
    @blp.arguments(RunListArgs, location="query")
    @blp.response(200, RunSchema(many=True))
    @blp.alt_response(404, description="No job with that id.")
    def get(self, args, job_id):
        """A job's runs, newest first: status, exit code, output, worker, attempt, times."""
        JobStore().get(job_id)
        return RunStore().for_job(job_id, limit=args["limit"])
