"""``/schedule``: one-off tasks, as Hydra jobs.

``POST /schedule {"command": "./run_cleanup.sh", "scheduled_at": ""}`` stores a job that runs
the command once at ``scheduled_at`` (ISO 8601 with a zone; empty or absent: now) and
answers with the task's status view; ``GET /schedule/<id>`` returns that view again. Any
other job field may be added (``affinity``, ``shell``, ``timeout``, ``retries`` ...);
``user`` defaults to ``anonymous`` and ``name`` to one made from the command. The task id is
the job id: ``/jobs/<id>`` and ``/jobs/<id>/runs`` show the same task in full.
"""

from __future__ import annotations

import re

from flask.views import MethodView

from api.auth import caller
from api.parsing import Blueprint
from api.schemas.jobs import ScheduleSchema, TaskSchema
from hydra import clock
from hydra.celery.app import current_pipeline
from hydra.control import verbs
from hydra.control.access import Reader
from hydra.model.records import Job
from hydra.model.status import SCHEDULED, RunStatus

blp = Blueprint("schedule", __name__, url_prefix="/schedule", description="One-off tasks, scheduled at a time.")


def task_name(command: str | None) -> str:
    """A valid job name from a command line: ``./run_cleanup.sh`` -> ``task ./run_cleanup.sh``."""
    text = re.sub(r"[^A-Za-z0-9 _.:@/+-]+", "_", (command or "").strip())
    return ("task " + text)[:200].rstrip() or "task"


def task_view(job: Job) -> dict:
    run = current_pipeline().runs.find(job.last_run_id) if job.last_run_id else None
    view = {
        "id": job.id,
        "job_id": job.id,
        "command": job.command or " ".join(job.args or []),
        "scheduled_at": job.scheduled_at,
        "created_at": job.created_at,
        "status": (run.status if run else None) or job.status or RunStatus.PENDING.value,
        "run_id": run.id if run else None,
    }
    if run is None:
        return view
    ended_ok = run.status == RunStatus.SUCCEEDED.value
    ended = run.run_status.is_terminal
    if run.status == RunStatus.PENDING.value and run.not_before is not None and run.not_before > clock.utcnow():
        view["status"] = SCHEDULED
    view.update(
        worker_id=run.worker_id,
        picked_at=run.placed_at,
        started_at=run.started_at,
        completed_at=run.finished_at if ended_ok else None,
        failed_at=run.finished_at if ended and not ended_ok else None,
        returncode=run.returncode,
        stdout=run.stdout,
        stderr=run.stderr,
        error=run.error,
    )
    return view


@blp.route("/", strict_slashes=False)
class Schedule(MethodView):
    @blp.arguments(ScheduleSchema)
    @blp.response(201, TaskSchema)
    @blp.alt_response(422, description="The body is invalid; `errors.json` names each field.")
    def post(self, spec):
        """Schedule a command once at `scheduled_at` (ISO 8601 with zone; empty means now)."""
        if not spec.get("name"):
            spec["name"] = task_name(spec.get("command") or " ".join(spec.get("args") or []))
        job, _run, _at = verbs.submit(spec, actor=caller(), source="schedule")
        return task_view(Reader(caller()).job(job.id))


@blp.route("/<task_id>")
class Task(MethodView):
    @blp.response(200, TaskSchema)
    @blp.alt_response(404, description="No task with that id.")
    def get(self, task_id):
        """A task's status: scheduled, then its run's status, with its times and output."""
        return task_view(Reader(caller()).job(task_id))
