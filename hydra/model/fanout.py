"""Fan-out: a job that runs on every eligible online worker (pure: the body's ``placement``,
the plan of one fan-out, and its per-worker summary; no I/O).

``placement: {"mode": "all", "max_parallel": 2, "stop_on_failure": true}``:

* **mode** ``one`` (the default) runs each start of the job on one worker, the router's
  choice. ``all`` runs it on every eligible online worker that is not drained, chosen when
  the job starts (a submission, a trigger, a cron tick) and recorded with that start (a
  *fan-out*). Each worker gets its own run, bound to it: its own fences, output and
  retries; a run whose worker is lost ends ``lost`` for that worker and is never moved to
  another (the other has its own run). Like Rundeck's node dispatch and Nomad's
  ``sysbatch`` jobs.
* **max_parallel** N: at most N of a fan-out's runs in flight at once (Rundeck's
  ``threadcount``); the others wait for one to end. None: all at once.
* **stop_on_failure**: once a worker's run fails (or is lost), the workers not yet started
  are not reached (Rundeck's ``keepgoing: false``). Default false: keep going.

A fan-out's workers each end in one state (:class:`WorkerState`); the summary groups them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from hydra.model.status import RunStatus

ONE, ALL = "one", "all"
#: Workers one fan-out may name at most (a plan is one document).
MAX_WORKERS = 10_000


class PlacementSchema(Schema):
    """How a job's starts are placed: on one worker, or fanned out to every eligible one."""

    class Meta:
        unknown = RAISE
        ordered = True

    mode = fields.String(
        load_default=ONE,
        validate=validate.OneOf((ONE, ALL)),
        metadata={
            "description": "one: each start runs on one worker (the least loaded eligible one). all: on every "
            "eligible online worker that is not drained, chosen when the job starts and recorded; each "
            "worker gets its own run, bound to it (a run whose worker is lost ends `lost`, never moved)."
        },
    )
    max_parallel = fields.Integer(
        load_default=None,
        allow_none=True,
        strict=True,
        validate=validate.Range(1, MAX_WORKERS),
        metadata={"description": "mode all: runs of one fan-out in flight at most; the others wait. null: all."},
    )
    stop_on_failure = fields.Boolean(
        load_default=False,
        metadata={
            "description": "mode all: after a worker's run fails or is lost, the workers not started are skipped."
        },
    )


def fans_out(placement: dict | None) -> bool:
    """Whether a job with this ``placement`` runs on every eligible worker."""
    return placement is not None and placement.get("mode") == ALL


def placement_problem(placement: dict | None) -> dict[str, list[str]] | None:
    """The rules across fields: max_parallel and stop_on_failure mean something in mode all only."""
    if not placement or placement.get("mode") == ALL:
        return None
    errors = {}
    if placement.get("max_parallel") is not None:
        errors["max_parallel"] = ["only with mode all"]
    if placement.get("stop_on_failure"):
        errors["stop_on_failure"] = ["only with mode all"]
    return errors or None


@dataclass(frozen=True)
class Binding:
    """Which fan-out a run belongs to, and the worker it is bound to (carried in its signed
    message and recorded on the run)."""

    fanout_id: str
    worker: str  # "": the run of a start that found no worker (it ends at once)

    def fields(self) -> dict[str, Any]:
        """As a run records it."""
        return {"fanout_id": self.fanout_id, "bound_worker": self.worker or None}


@dataclass
class Plan:
    """One fan-out: the workers chosen when the job started, a run id for each (planned: the
    run is recorded when it starts), and the options it was made with."""

    id: str
    job_id: str
    workers: list[str]
    runs: dict[str, str]
    max_parallel: int | None = None
    stop_on_failure: bool = False
    created_at: datetime | None = None
    params: dict[str, Any] | None = None

    @property
    def first_wave(self) -> list[str]:
        """The workers started at once (the others wait for a run to end)."""
        return self.workers if self.max_parallel is None else self.workers[: self.max_parallel]


class WorkerState(StrEnum):
    WAITING = "waiting"  # not started yet (max_parallel)
    RUNNING = "running"  # started, not ended (queued, pending, running, retrying)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # failed, timed out, dead-lettered or cancelled
    LOST = "lost"  # its worker was lost with the run
    SKIPPED = "skipped"  # not reached: stop_on_failure, or its worker was offline at its turn


#: A worker's slot: started or skipped (write-once), and its run's final end (write-once).
STARTED, SKIPPED = "started", "skipped"


def end_state(status: RunStatus) -> WorkerState:
    """A worker's state from its run's final status."""
    if status == RunStatus.SUCCEEDED:
        return WorkerState.SUCCEEDED
    if status == RunStatus.LOST:
        return WorkerState.LOST
    return WorkerState.FAILED


def failed(state: WorkerState) -> bool:
    return state in (WorkerState.FAILED, WorkerState.LOST)


@dataclass
class WorkerResult:
    worker: str
    run_id: str
    state: WorkerState
    status: str | None = None  # the run's final status
    reason: str | None = None  # why it was skipped


@dataclass
class Summary:
    """Worker by worker, how a fan-out went, and the workers grouped by outcome."""

    id: str
    job_id: str
    workers: list[WorkerResult]
    max_parallel: int | None
    stop_on_failure: bool
    created_at: datetime | None
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    not_reached: list[str] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return not self.in_progress

    @property
    def ok(self) -> bool:
        """Every worker's run succeeded (and there was at least one)."""
        return bool(self.workers) and len(self.succeeded) == len(self.workers)


def summarize(plan: Plan, starts: dict[str, dict], ends: dict[str, dict]) -> Summary:
    """The summary of ``plan`` from its workers' slots (``starts``/``ends``: worker -> record)."""
    results = []
    for worker in plan.workers:
        start, end = starts.get(worker), ends.get(worker)
        run_id = (end or {}).get("run_id") or plan.runs[worker]
        if end is not None:
            status = RunStatus(end["status"])
            results.append(WorkerResult(worker, run_id, end_state(status), status.value))
        elif start is None:
            results.append(WorkerResult(worker, run_id, WorkerState.WAITING))
        elif start.get("state") == SKIPPED:
            results.append(WorkerResult(worker, run_id, WorkerState.SKIPPED, reason=start.get("reason")))
        else:
            results.append(WorkerResult(worker, run_id, WorkerState.RUNNING))
    summary = Summary(plan.id, plan.job_id, results, plan.max_parallel, plan.stop_on_failure, plan.created_at)
    groups = {
        WorkerState.SUCCEEDED: summary.succeeded,
        WorkerState.FAILED: summary.failed,
        WorkerState.LOST: summary.lost,
        WorkerState.SKIPPED: summary.not_reached,
        WorkerState.WAITING: summary.in_progress,
        WorkerState.RUNNING: summary.in_progress,
    }
    for result in results:
        groups[result.state].append(result.worker)
    return summary
