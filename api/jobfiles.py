"""``POST /jobs/apply``: apply a job file (``hydra.control.apply``), on the jobs' blueprint."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import RAISE, Schema, fields, validate

from api import jobs
from api.auth import caller
from hydra.control import apply
from hydra.model.jobfile import SECRET


class ApplySchema(Schema):
    class Meta:
        unknown = RAISE

    jobs = fields.List(
        fields.Raw(metadata={"type": "object"}),
        required=True,
        validate=validate.Length(1, apply.MAX_JOBS),
        metadata={
            "description": "The file's jobs: job bodies as `POST /jobs/` takes them, each with its `name`. A "
            f"write-only value (an `env` value, an `http` header's value, `http.body`) may be `{SECRET}` "
            "(or `<redacted>`): the value the job stored is kept."
        },
    )
    dry_run = fields.Boolean(load_default=False, metadata={"description": "Say what would change, and change nothing."})


class AppliedSchema(Schema):
    name = fields.String()
    namespace = fields.String()
    action = fields.String(metadata={"description": "created, updated or unchanged."})
    id = fields.String(allow_none=True, metadata={"description": "The job (none: a dry run would create it)."})
    changes = fields.List(fields.String(), metadata={"description": "The fields an update changes."})
    run_id = fields.String(allow_none=True, metadata={"description": "A created job's first run, if it has one."})


@jobs.blp.route("/apply")
class ApplyJobs(MethodView):
    @jobs.blp.arguments(ApplySchema())
    @jobs.blp.response(200, AppliedSchema(many=True))
    @jobs.blp.alt_response(403, description="You may not submit in a job's namespace, or not update its job.")
    @jobs.blp.alt_response(
        409, description="Several jobs have a file's name in its namespace, or another apply is creating it."
    )
    @jobs.blp.alt_response(
        422, description="A job is invalid: `errors.json.jobs.<index>` names each field. Nothing was changed."
    )
    @jobs.blp.alt_response(503, description="MongoDB is unavailable.")
    def post(self, body):
        """Apply a job file: create, update or leave each job, found by namespace and name.

        Idempotent: a job the file names that does not exist is created (and submitted: a job
        without a schedule runs once now), one whose settable fields differ is replaced as by
        `PUT /jobs/{job_id}` (`changes` names the fields), and an equal one is left
        `unchanged`. Every job is checked before anything changes; one refusal refuses the
        file. Needs the operator role to create in a namespace, and admin to update.
        Concurrent applies of one new name create one job.
        """
        return apply.apply(body["jobs"], actor=caller(), dry_run=body["dry_run"])
