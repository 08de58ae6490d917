"""The one Celery task: ``hydra.run_command``. Thin by design - the worker's checks and the
claim in ``hydra.celery.worker.admit``, execution by the job's executor
(``hydra.execution.executors``), cancellation through ``hydra.celery.watchdog``, recording
in ``hydra.celery.backend``. ``hydra.celery.app`` registers it.

Python users publish it like any Celery task; the dispatch pipeline picks the worker::

    from hydra import run_command
    result = run_command.apply_async(kwargs={
        "command": "echo hello", "user": "rich", "affinity": {"os": ["linux"], "tags": ["gpu"]}})
    result.get(timeout=30)   # the run's outcome: status, returncode, stdout, stderr, ...
"""

from __future__ import annotations

import contextlib
import logging

from celery import Task

from hydra import names
from hydra.celery import orphans, worker
from hydra.celery.watchdog import AttemptWatch
from hydra.errors import CommandError, command_error_for
from hydra.execution import executors, isolation
from hydra.execution.limits import Limits
from hydra.execution.live import ChunkWriter, tee
from hydra.model.outcome import Outcome
from hydra.model.status import RunStatus
from hydra.settings import get_settings
from hydra.store.flows import FlowStore
from hydra.store.output import OutputStore
from hydra.store.output_dir import OutputDir

log = logging.getLogger(__name__)


class CommandTask(Task):
    """Runs one attempt of a job; raises a CommandError when the command does not succeed,
    so Celery and Flower show the attempt as FAILURE with the reason."""

    name = names.TASK_RUN_COMMAND
    acks_late = True
    typing = False
    #: Expected outcomes of a command: logged without a traceback.
    throws = (CommandError,)
    #: Celery logs each result; the run's output is in MongoDB, keep the log line short.
    resultrepr_maxsize = 300

    def before_start(self, task_id, args, kwargs):
        worker.admit(task_id, kwargs, self.request)


def run_environment(run_id: str, kwargs: dict, worker_id: str, slot: str) -> dict[str, str]:
    """Variables telling a command which run it is (set last: a job's env cannot fake them).
    ``HYDRA_WORKER_SLOT`` is how a restarted worker finds what its previous process left running."""
    return {
        "HYDRA_RUN_ID": run_id,
        "HYDRA_JOB_ID": str(kwargs.get("job_id") or ""),
        "HYDRA_ATTEMPT": str(kwargs.get("attempt") or 1),
        "HYDRA_WORKER": worker_id,
        "HYDRA_WORKER_SLOT": slot,
    }


def upstream_environment(run_id: str, recorded: bool | None = None) -> dict[str, str]:
    """``HYDRA_UPSTREAM_*``: the run(s) that started this one (a canvas step, a chord body, a
    job's dependant) and how they ended; nothing for a run nothing started
    (``hydra.model.flow.Upstream.environment``). ``recorded``: whether its run record says it
    has a flow record (``Run.flow``); one that says it has none costs no read."""
    flow = worker.wait_for_store(lambda: FlowStore().read_at_start(run_id, recorded=recorded))
    started_by = flow.started_by if flow is not None else None
    return started_by.environment() if started_by is not None else {}


def describe(outcome: Outcome) -> str:
    return outcome.error or f"exit status {outcome.returncode}"


def run_command(self, **kwargs):
    """Execute the job's command on this worker and return the run's outcome."""
    profile = worker.PROFILE
    assert profile is not None  # admit() refused the message otherwise
    settings = get_settings()
    run_id = self.request.id
    slot = worker.slot(profile.id)
    kwargs = worker.admitted_message(run_id, self.request)  # validated once, by admit()
    log.info(
        "run started",
        extra={"event": "run.started", "run_id": run_id, "job_id": kwargs.get("job_id"), "worker": profile.id},
    )
    # Live output (GET /runs/<id>/output): closing the writer stores the tail and marks the end
    # before the result backend records the run's end. The watchdog stops the command when its
    # attempt is ended elsewhere or a cancel is asked.
    shell = (kwargs.get("executor") or "shell") == "shell"
    files = OutputDir.configured(settings)  # HYDRA_OUTPUT_DIR: the full output too
    with (
        AttemptWatch(run_id) as watch,
        orphans.command_pidfile(run_id, slot) as note_pid,
        ChunkWriter(run_id, limit=settings.output_limit, insert=OutputStore().insert, skip_if_unflushed=True) as live,
        files.writer(run_id) if files else contextlib.nullcontext() as full,
        isolation.Confinement(
            worker.get_policy(),
            worker_id=slot,
            run_id=run_id,
            hydra_user=kwargs.get("user"),
            cwd=kwargs.get("cwd"),
            limits=Limits.of(kwargs.get("resources")),
        )
        if shell
        else contextlib.nullcontext() as confinement,
    ):
        outcome = executors.run(
            kwargs,
            executors.Context(
                os_name=profile.os,
                output_limit=settings.output_limit,
                default_timeout=settings.default_timeout,
                cancel=watch.cancel,
                env={
                    **upstream_environment(run_id, worker.recorded_flow(run_id, self.request)),
                    **run_environment(run_id, kwargs, profile.id, slot),
                },
                on_start=note_pid,
                on_output=live.write if full is None else tee(live.write, full.write),
                confinement=confinement,
                egress=worker.get_egress(),
            ),
        )
    outcome.worker_id = profile.id
    outcome.live_chunks = live.stored  # 0: a short run; readers use the record's output
    if watch.reason:
        outcome.error = watch.reason
    if outcome.status == RunStatus.SUCCEEDED:
        return outcome.as_dict()
    raise command_error_for(outcome.status)(describe(outcome), outcome.as_dict())
