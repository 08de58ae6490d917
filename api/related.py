"""``GET /jobs/{id}/dependencies`` (a job's upstream and downstream jobs) and
``GET /runs/{id}/flow`` (the run that started a run, and what its end started): the reads of
``hydra.control.related``, on the jobs' and runs' blueprints."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields

from api import jobs, runs
from api.auth import caller
from hydra.control import related


class RelatedJobSchema(Schema):
    id = fields.String(metadata={"description": "The job's id."})
    via = fields.List(
        fields.String(),
        metadata={"description": "The fields that name it: on_success, on_failure, on_completion."},
    )
    state = fields.String(
        metadata={
            "description": "active; paused (it is not started by the jobs that name it); deleted (likewise, "
            "and their runs note it); missing (no such job); hidden (in a namespace you may not read)."
        }
    )
    name = fields.String(allow_none=True, metadata={"description": "Its name (none when hidden or missing)."})
    namespace = fields.String(allow_none=True, metadata={"description": "Its namespace."})
    status = fields.String(allow_none=True, metadata={"description": "Status of its latest run."})


class DependenciesSchema(Schema):
    job_id = fields.String(metadata={"description": "The job asked about."})
    upstream = fields.List(
        fields.Nested(RelatedJobSchema), metadata={"description": "Jobs that start it when one of their runs ends."}
    )
    downstream = fields.List(
        fields.Nested(RelatedJobSchema),
        metadata={"description": "Jobs it starts (its on_success, on_failure and on_completion)."},
    )


class UpstreamSchema(Schema):
    runs = fields.List(
        fields.String(), metadata={"description": "The run(s) that started it (a chord body: its header's)."}
    )
    statuses = fields.List(fields.String(), metadata={"description": "How each of those runs ended."})
    via = fields.String(
        metadata={
            "description": "How: on_success or on_failure (a Celery link, chain or errback), chord, or a job's "
            "on_success, on_failure or on_completion."
        }
    )
    job_id = fields.String(allow_none=True, metadata={"description": "The job of the run that started it."})
    job_name = fields.String(allow_none=True, metadata={"description": "That job's name."})
    group = fields.String(allow_none=True, metadata={"description": "A chord body's: the chord's group id."})


class StartedSchema(Schema):
    run_id = fields.String(allow_none=True, metadata={"description": "The run started (none when it was not)."})
    job_id = fields.String(metadata={"description": "Its job."})
    job_name = fields.String(allow_none=True, metadata={"description": "Its job's name."})
    via = fields.String(metadata={"description": "How it followed this run (as in `started_by.via`)."})
    note = fields.String(
        allow_none=True,
        metadata={"description": "Why it did not run: not started (and why), refused, or its job paused or deleted."},
    )


class FlowSchema(Schema):
    run_id = fields.String(metadata={"description": "The run asked about."})
    started_by = fields.Nested(
        UpstreamSchema, allow_none=True, metadata={"description": "What started it (none: a submission)."}
    )
    started = fields.List(
        fields.Nested(StartedSchema),
        metadata={"description": "What its end started, or recorded as not run (none while it runs, or retries)."},
    )
    next = fields.String(
        allow_none=True, metadata={"description": "The attempt that followed it (a retry or failover)."}
    )
    first = fields.String(
        allow_none=True, metadata={"description": "The first attempt, when this is a later one of the same flow."}
    )


@jobs.blp.route("/<job_id>/dependencies")
class JobDependencies(MethodView):
    @jobs.blp.response(200, DependenciesSchema)
    @jobs.blp.alt_response(404, description="No job with that id.")
    def get(self, job_id):
        """A job's upstream jobs (those that start it when one of their runs ends) and its
        downstream jobs (those it starts: its `on_success`, `on_failure`, `on_completion`)."""
        return related.dependencies(caller(), job_id)


@runs.blp.route("/<run_id>/flow")
class RunFlow(MethodView):
    @runs.blp.response(200, FlowSchema)
    @runs.blp.alt_response(404, description="No run with that id.")
    def get(self, run_id):
        """What started a run (a Celery canvas step, a chord's header, an upstream job's run) and
        what its end started or left not run, with the attempt that followed it."""
        return related.flow(caller(), run_id)
