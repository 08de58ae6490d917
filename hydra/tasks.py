"""The one Celery task: ``hydra.run_command``. Thin by design - checks and claims in
``hydra.worker.admit``, execution in ``hydra.executor``, recording in ``hydra.backend``.

Python users publish it like any Celery task; the router picks the worker::

    from hydra import run_command
    result = run_command.apply_async(kwargs={
        "command": "echo hello", "user": "rich", "affinity": {"os": ["linux"], "tags": ["gpu"]}})
    result.get(timeout=30)   # the run's outcome: status, returncode, stdout, stderr, ...
"""
from __future__ import annotations

from celery import Task

from hydra import worker
from hydra.celery import app
from hydra.errors import CommandCancelled, CommandError, CommandFailed, CommandTimedOut
from hydra.executor import build_argv, execute, job_environment
from hydra.names import TASK_RUN_COMMAND
from hydra.settings import get_settings
from hydra.watchdog import AttemptWatch

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


def run_environment(run_id: str, kwargs: dict, worker_id: str) -> dict[str, str]:
    """Variables telling a command which run it is (set last: a job's env cannot fake them)."""
    return {"HYDRA_RUN_ID": run_id, "HYDRA_JOB_ID": str(kwargs.get("job_id") or ""),
            "HYDRA_ATTEMPT": str(kwargs.get("attempt") or 1), "HYDRA_WORKER": worker_id}


def describe(outcome: dict) -> str:
    if outcome.get("error"):
        return outcome["error"]
    return f"exit status {outcome.get('returncode')}"


@app.task(base=CommandTask, bind=True, name=TASK_RUN_COMMAND)
def run_command(self, **kwargs):
    """Execute the job's command on this worker and return the run's outcome."""
    profile = worker.PROFILE
    settings = get_settings()
    try:
        argv = build_argv(command=kwargs.get("command"), args=kwargs.get("args"),
                          shell=kwargs.get("shell"), os_name=profile.os)
    except ValueError as exc:
        raise CommandFailed(str(exc), {"status": "failed", "error": str(exc), "worker_id": profile.id}) from None
    env = job_environment(kwargs.get("env"))
    env.update(run_environment(self.request.id, kwargs, profile.id))
    with AttemptWatch(self.request.id) as watch, worker.command_pidfile(self.request.id) as note_pid:
        outcome = execute(argv, env=env, cwd=kwargs.get("cwd"), on_start=note_pid, cancel=watch.cancel,
                          timeout=kwargs.get("timeout") or settings.default_timeout,
                          output_limit=settings.output_limit).as_dict()
    outcome["worker_id"] = profile.id
    if watch.reason:
        outcome["error"] = watch.reason
    if outcome["status"] == "succeeded":
        return outcome
    raise _ERRORS.get(outcome["status"], CommandFailed)(describe(outcome), outcome)
