"""``GET /jobs/{id}/fanout``: how a fan-out of a job (``placement.mode: all``) went, worker by
worker (``hydra.control.fanout``), on the jobs' blueprint."""

from __future__ import annotations

from flask.views import MethodView

from api import jobs
from api.auth import caller
from api.schemas.jobs import FanoutArgs, FanoutSchema
from hydra.control import fanout


@jobs.blp.route("/<job_id>/fanout")
class JobFanout(MethodView):
    @jobs.blp.arguments(FanoutArgs, location="query")
    @jobs.blp.response(200, FanoutSchema)
    @jobs.blp.alt_response(404, description="No job with that id, or it never fanned out (or not that fan-out).")
    def get(self, args, job_id):
        """A fan-out of the job (`placement.mode: all`; default its latest): the workers chosen when it
        started, each one's run and state (waiting, running, succeeded, failed, lost, skipped), and the
        workers grouped: succeeded, failed, lost, not reached, in progress."""
        return fanout.summary(caller(), job_id, args["fanout_id"])
