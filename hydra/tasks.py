"""The one Celery task: ``hydra.run_command``. Thin by design - checks and claims in
``hydra.worker.admit``, execution in ``hydra.executor``, recording in ``hydra.backend``.

Python users publish it like any Celery task; the router picks the worker::

    from hydra import run_command
    result = run_command.apply_async(kwargs={
        "command": "echo hello", "user": "rich", "affinity": {"os": ["linux"], "tags": ["gpu"]}})
    result.get(timeout=30)   # the run's outcome: status, returncode, stdout, stderr, ...
"""
from __future__ import annotations

import logging

from celery import Task

from hydra import worker
from hydra.celery import app
from hydra.errors import CommandCancelled, CommandError, CommandFailed, CommandTimedOut
from hydra.executor import build_argv, execute, job_environment
from hydra.livelog import ChunkWriter
from hydra.names import TASK_RUN_COMMAND
from hydra.settings import get_settings

log = logging.getLogger(__name__)

_ERRORS = {"failed": CommandFailed, "timed_out": CommandTimedOut, "cancelled": CommandCancelled}


class CommandTask(Task):
    """Runs one attempt of a job; raises a CommandError when the command does not succeed,
    so Celery and Flower show the attempt as FAILURE with the reason."""

    name = TASK_RUN_COMMAND
    acks_late = True
    typing = False
    #: Expected outcomes of a command: logged without a traceback.
    throws = (CommandError,)
    #: Celery logs each result; the run's output is in MongoDB, keep the log line short.
    resultrepr_maxsize = 300

    def before_start(self, task_id, args, kwargs):
        worker.admit(task_id, kwargs)


def describe(outcome: dict) -> str:
    if outcome.get("error"):
        return outcome["error"]
    return f"exit status {outcome.get('returncode')}"


@app.task(base=CommandTask, bind=True, name=TASK_RUN_COMMAND)
def run_command(self, **kwargs):
    """Execute the job's command on this worker and return the run's outcome."""
    profile = worker.PROFILE
    settings = get_settings()
    log.info("run started", extra={"event": "run.started", "run_id": self.request.id,
                                   "job_id": kwargs.get("job_id"), "worker": profile.id})
    # Live output (GET /runs/<id>/output); closing it stores the tail and marks the end,
    # before the result backend records the run's end.
    with ChunkWriter(self.request.id, limit=settings.output_limit) as live:
        try:
            argv = build_argv(command=kwargs.get("command"), args=kwargs.get("args"),
                              shell=kwargs.get("shell"), os_name=profile.os)
        except ValueError as exc:
            raise CommandFailed(str(exc), {"status": "failed", "error": str(exc), "worker_id": profile.id}) from None
        outcome = execute(argv, env=job_environment(kwargs.get("env")), cwd=kwargs.get("cwd"),
                          timeout=kwargs.get("timeout") or settings.default_timeout,
                          output_limit=settings.output_limit, on_output=live.write).as_dict()
    outcome["worker_id"] = profile.id
    if outcome["status"] == "succeeded":
        return outcome
    raise _ERRORS.get(outcome["status"], CommandFailed)(describe(outcome), outcome)
