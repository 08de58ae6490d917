"""``/tasks``: Celery-style submissions - ``run_command.apply_async`` and Celery's canvas from a
Python process that talks to the API (``hydra.control.tasks``)."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import RAISE, Schema, fields, validate

from api.auth import caller
from api.parsing import Blueprint
from hydra.control import tasks

blp = Blueprint(
    "tasks",
    __name__,
    url_prefix="/tasks",
    description="Celery-style task submissions: what `run_command.apply_async` sends from a process configured "
    "as an API client (HYDRA_API_URL and HYDRA_TOKEN, no signing key).",
)


class TaskSubmissionSchema(Schema):
    class Meta:
        unknown = RAISE

    kwargs = fields.Dict(
        required=True, metadata={"description": "The task's keyword arguments: a job body (`user` defaults to yours)."}
    )
    options = fields.Dict(
        load_default=dict,
        metadata={
            "description": "Celery's apply_async options: task_id, link, link_error, chain, chord (with group_id), "
            "group_index, root_id, parent_id, countdown, eta, expires, time_limit, soft_time_limit, priority, headers, "
            "shadow. Signatures in their dict form."
        },
    )


class TaskAcceptedSchema(Schema):
    run_id = fields.String(metadata={"description": "The run: also the Celery task id."})
    job_id = fields.String(metadata={"description": "Its job."})
    status = fields.String(metadata={"description": "queued (on a worker) or pending (waiting for one)."})
    worker_id = fields.String(allow_none=True, metadata={"description": "The worker it was sent to."})
    pending_reason = fields.String(allow_none=True, metadata={"description": "Why it waits."})


class ChordSchema(Schema):
    class Meta:
        unknown = RAISE

    group_id = fields.String(
        required=True, validate=validate.Length(1, 64), metadata={"description": "The chord's group id."}
    )
    parts = fields.List(
        fields.String(validate=validate.Length(1, 64)),
        required=True,
        validate=validate.Length(1, 500),
        metadata={"description": "The task ids of its header's parts (a chained part: its last step's)."},
    )
    body = fields.Dict(required=True, metadata={"description": "The body: a hydra.run_command signature (dict form)."})


class ChordAcceptedSchema(Schema):
    group_id = fields.String(metadata={"description": "The chord's group id."})
    body_run_id = fields.String(
        metadata={"description": "The run its body will be (started once every part succeeded)."}
    )


@blp.route("/", strict_slashes=False)
class Tasks(MethodView):
    @blp.arguments(TaskSubmissionSchema())
    @blp.response(201, TaskAcceptedSchema)
    @blp.alt_response(
        422, description="The task, a step of its canvas or an option is invalid; `errors.json` names it."
    )
    @blp.alt_response(503, description="MongoDB is unavailable; nothing was stored.")
    def post(self, body):
        """Submit a `hydra.run_command` task with its canvas (`link`, `link_error`, `chain`, a
        chord's header task), as `apply_async` does from a process holding the signing key: every
        step validated, checked against your roles (403 for a namespace or user you may not
        submit as), pre-signed, recorded and audited."""
        return tasks.submit(body["kwargs"], body["options"], actor=caller())


@blp.route("/chords")
class Chords(MethodView):
    @blp.arguments(ChordSchema())
    @blp.response(201, ChordAcceptedSchema)
    @blp.alt_response(422, description="The body is invalid, or a chord with that group id was published already.")
    @blp.alt_response(503, description="MongoDB is unavailable; nothing was stored.")
    def post(self, body):
        """Publish a chord before its header tasks are sent (Celery's `apply_chord`): its body is
        validated, checked, pre-signed and stored with the ids of its header parts; each header
        task then names it (`chord`, `group_id`), and the body starts once every part succeeded."""
        return tasks.chord(body["group_id"], body["parts"], body["body"], actor=caller())
