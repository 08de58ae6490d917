"""The typed records stores hand out: a job, a run (one attempt), a run's fences, where an
attempt went. Every store reads documents into these and writes them from these; nothing
above the stores sees a raw document.

``from_doc`` ignores keys a record does not know (a document written by a newer version), and
``to_doc`` writes every field, ``id`` as ``_id``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

from hydra import clock
from hydra.model.cron import next_fire
from hydra.model.lifecycle import RetryPolicy
from hydra.model.monitoring import due_tick
from hydra.model.namespaces import DEFAULT_NAMESPACE
from hydra.model.params import Values, shown
from hydra.model.spec import JOB_FIELDS
from hydra.model.status import RunStatus

R = TypeVar("R", bound="Record")


class Record:
    """Mapping between a dataclass record and its MongoDB document."""

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        """The record's field names (asked on every read and write: kept per class)."""
        names = cls.__dict__.get("_field_names")
        if names is None:
            names = tuple(item.name for item in fields(cls))  # type: ignore[arg-type]
            cls._field_names = names  # type: ignore[attr-defined]
        return names

    @classmethod
    def from_doc(cls: type[R], doc: dict) -> R:
        known = cls._names()
        values = {key: value for key, value in doc.items() if key in known}
        values["id"] = doc["_id"]
        for key, value in values.items():
            if isinstance(value, datetime):
                values[key] = clock.aware(value)
        return cls(**values)

    def to_doc(self) -> dict:
        """The document (a shallow copy: nested values are the record's own)."""
        doc = {name: getattr(self, name) for name in self._names()}
        doc["_id"] = doc.pop("id")
        return doc


@dataclass
class Job(Record):
    """A job definition (``job_definitions``): the body a user submitted, and its state."""

    id: str
    # -- the body (hydra.model.spec.JobSpecSchema) -------------------------------------------
    name: str = ""
    user: str = ""
    namespace: str = DEFAULT_NAMESPACE
    affinity: dict = field(default_factory=dict)
    command: str | None = None
    args: list[str] | None = None
    shell: str | None = None
    env: dict = field(default_factory=dict)
    cwd: str | None = None
    retries: int = 0
    timeout: float | None = None
    priority: int | None = None
    schedule: str | None = None
    timezone: str | None = None
    scheduled_at: datetime | None = None
    misfire: str | None = None
    overlap: str | None = None
    backoff: dict | None = None
    max_lost: int | None = None
    executor: str | None = None
    http: dict | None = None
    #: Jobs it starts when a run ends for good (hydra.model.dependencies).
    on_success: list[str] | None = None
    on_failure: list[str] | None = None
    on_completion: list[str] | None = None
    params: list[dict] | None = None
    #: Limits of each run and runs at once (hydra.model.resources).
    resources: dict | None = None
    max_concurrent: int | None = None
    #: Its ended runs are counted per job on /metrics (hydra.model.monitoring).
    monitor: bool = False
    #: Placement: on one worker, or fanned out to every eligible one (hydra.model.fanout).
    placement: dict | None = None
    #: Who hears about its runs (hydra.model.notify); secrets included: answers redact them.
    notify: list[dict] | None = None
    # -- its state -----------------------------------------------------------------------------
    source: str = "api"
    #: The status of its most recently changed run (see RunStore: the job mirrors it).
    status: str | None = None
    last_run_id: str | None = None
    paused: bool = False
    paused_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: Where its cron schedule counts from (creation, or the last change or resume).
    schedule_since: datetime | None = None
    deleted_at: datetime | None = None
    #: Accepted, but its first run was not recorded yet (the controller dispatches it if it never is).
    undispatched: bool = False
    scheduled_run_id: str | None = None
    last_fire_at: datetime | None = None
    last_skipped_at: datetime | None = None
    #: When a run of it last succeeded, and last failed for good (hydra.model.monitoring).
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    #: overlap=queue: a cron tick waiting for the previous run to end.
    queued_tick: datetime | None = None
    #: Why the API could not render it (set when a listing skipped it).
    unrenderable: str | None = None

    @classmethod
    def from_doc(cls, doc: dict) -> Job:
        http = doc.get("http")
        if isinstance(http, dict) and "body_json" in http:  # a structured webhook body (JobStore)
            body = json.loads(http["body_json"])
            doc = {**doc, "http": {**{k: v for k, v in http.items() if k != "body_json"}, "body": body}}
        return super().from_doc(doc)

    def spec(self) -> dict:
        """The job's body as submitted (the fields that are set)."""
        return {name: getattr(self, name) for name in JOB_FIELDS if getattr(self, name) is not None}

    def next_run_at(self, now: datetime | None = None) -> datetime | None:
        """When its cron schedule fires next (None: no schedule, paused or deleted, or a stored
        schedule that never fires, such as ``0 0 31 2 *`` stored before the API refused it)."""
        if not self.schedule or self.paused or self.deleted_at:
            return None
        try:
            return next_fire(self.schedule, self.timezone or "UTC", now or clock.utcnow())
        except (ValueError, KeyError):  # no such date (croniter), or a time zone this machine lacks
            return None

    def due_tick(self) -> datetime | None:
        """The next tick its scheduler has to handle (None: no schedule, paused or deleted);
        in the past while the scheduler misses it (``hydra.model.monitoring.due_tick``)."""
        if not self.schedule or self.paused or self.deleted_at:
            return None
        return due_tick(
            self.schedule, self.timezone, last_fire_at=self.last_fire_at, since=self.schedule_since or self.created_at
        )

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy.of(self.retries, self.backoff, self.max_lost)

    @classmethod
    def from_message(cls, message: dict) -> Job:
        """The job as a task message carries it (a worker has the message, not the document).
        Messages carry no placement: one bound to a worker is a fan-out's run (its job's mode
        is all; its other options are in the fan-out's plan)."""
        values = {key: value for key, value in message.items() if key in JOB_FIELDS}
        if message.get("bound_worker"):
            values["placement"] = {"mode": "all"}
        if message.get("notify_on"):  # the events its targets hear; where they go stays in MongoDB
            values["notify"] = [{"on": list(message["notify_on"])}]
        return cls(id=message.get("job_id") or "", **values)


@dataclass(frozen=True)
class Chain:
    """How an attempt follows the earlier attempts of the same run chain.

    ``lost`` counts earlier attempts lost while running, ``failed`` those that failed or
    timed out (see hydra.model.lifecycle). Carried in message headers, read back by workers
    as request attributes, and stored on the run.
    """

    retry_of: str | None = None
    lost: int = 0
    failed: int = 0

    def headers(self) -> dict:
        return {"hydra_retry_of": self.retry_of, "hydra_lost": self.lost, "hydra_failed": self.failed}

    @classmethod
    def from_headers(cls, headers: Any) -> Chain:
        """From message headers (a dict) or a Celery request (its attributes)."""
        if isinstance(headers, dict):
            get = headers.get
        else:

            def get(key: str, default: Any = None) -> Any:
                return getattr(headers, key, default)

        return cls(get("hydra_retry_of"), int(get("hydra_lost", 0) or 0), int(get("hydra_failed", 0) or 0))


@dataclass
class Run(Record):
    """One attempt at a job (``job_runs``). Its id is the Celery task id."""

    id: str
    job_id: str = ""
    job_name: str | None = None
    user: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    attempt: int = 1
    status: str = RunStatus.PENDING.value
    # -- how it follows earlier attempts (Chain) -----------------------------------------------
    retry_of: str | None = None
    lost: int = 0
    failed: int = 0
    # -- what it runs (copied from the job when it was recorded) -------------------------------
    priority: int | None = None
    executor: str = "shell"
    url: str | None = None
    command: str | None = None
    args: list[str] | None = None
    shell: str | None = None
    timeout: float | None = None
    #: Its trigger parameters' values (hydra.model.params), and which of them are secret
    #: (write-only: answers show them redacted, :attr:`shown_params`).
    params: dict[str, str] | None = None
    secret_params: list[str] | None = None
    #: A fan-out's run (hydra.model.fanout): which fan-out, and the worker it is bound to.
    fanout_id: str | None = None
    bound_worker: str | None = None
    # -- where it went -------------------------------------------------------------------------
    queue: str | None = None
    worker_id: str | None = None
    pending_reason: str | None = None
    not_before: datetime | None = None
    queued_at: datetime | None = None
    placed_at: datetime | None = None
    # -- how it went ---------------------------------------------------------------------------
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    pid: int | None = None
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: int | None = None
    stderr_bytes: int | None = None
    stdout_truncated: bool | None = None
    stderr_truncated: bool | None = None
    error: str | None = None
    live_chunks: int | None = None
    #: The attempt's raw outcome when ``status`` says what followed (retrying, dead_letter).
    outcome: str | None = None
    #: Why the end led to ``status`` (retry n of m, failover, dead letter, cancel requested).
    decision: str | None = None
    ended_by: str | None = None
    cancel_requested_at: datetime | None = None
    retried_by: str | None = None
    #: The execution digest of the message its publisher sent (hydra.model.message.execution_digest).
    spec_digest: str | None = None
    #: Whether a flow record (``run_flows/<id>``: what started it, what follows it) was written
    #: for it before it was recorded; None: not said (recorded by an older Hydra, or past the
    #: pipeline), so a worker starting it reads the flow record to find out.
    flow: bool | None = None
    #: Deliveries of a message for this run that a worker or the controller refused: {at, by, reason}.
    refusals: list[dict] = field(default_factory=list)
    #: Times the controller published it again because its message had vanished from the broker.
    revived: int = 0
    #: Why the API could not render it (set when a listing skipped it).
    unrenderable: str | None = None

    @classmethod
    def of_job(cls, job: Job, **fields: Any) -> Run:
        """An attempt of ``job``: what a run copies from its job (who, where, what it runs),
        plus ``fields`` (its id, attempt, placement, ...). The one place a run is made from a job."""
        return cls(
            job_id=job.id,
            job_name=job.name,
            user=job.user,
            namespace=job.namespace,
            priority=job.priority,
            executor=job.executor or "shell",
            url=(job.http or {}).get("url"),
            command=job.command,
            args=job.args,
            shell=job.shell,
            timeout=job.timeout,
            **fields,
        )

    @property
    def run_status(self) -> RunStatus:
        return RunStatus(self.status)

    @property
    def chain(self) -> Chain:
        return Chain(self.retry_of, self.lost, self.failed)

    @property
    def given(self) -> Values | None:
        """Its parameters' values (None: its job declares none)."""
        return Values(self.params, tuple(self.secret_params or ())) if self.params is not None else None

    @property
    def shown_params(self) -> dict[str, str] | None:
        """Its parameters' values as answers show them (secret ones redacted)."""
        return shown(self.params, self.secret_params)


@dataclass
class Fence(Record):
    """A write-once decision about an attempt (``run_fences``): its start, end or retry."""

    id: str
    run_id: str = ""
    at: datetime | None = None
    by: str | None = None
    #: start: who holds the attempt (None when a cancel took the fence so that nobody runs it).
    worker_id: str | None = None
    worker_incarnation: str | None = None
    pid: int | None = None
    #: end: the recorded status, and every field of the end as the run record got it.
    status: str | None = None
    record: dict = field(default_factory=dict)
    #: retry: the run that retried this one.
    retried_by: str | None = None

    @classmethod
    def from_doc(cls, doc: dict) -> Fence:
        fence = super().from_doc(doc)
        fence.record = {key: value for key, value in doc.items() if key in RUN_END_FIELDS}
        return fence


#: Fields of a run that its end sets (kept in the end fence too, so the end can be re-applied).
RUN_END_FIELDS = (
    "status",
    "returncode",
    "stdout",
    "stderr",
    "stdout_bytes",
    "stderr_bytes",
    "stdout_truncated",
    "stderr_truncated",
    "started_at",
    "finished_at",
    "duration",
    "error",
    "pid",
    "outcome",
    "decision",
    "live_chunks",
)


@dataclass
class Chunk(Record):
    """A piece of a run's live output (``run_output/<run_id>/<seq>``)."""

    id: str
    run_id: str = ""
    seq: int = 0
    stream: str = "stdout"
    text: str = ""
    #: The notice that the stream passed the output limit (what followed is counted, not stored).
    cut: bool = False
    at: datetime | None = None


@dataclass
class OutputEnd(Record):
    """The record that a run's live output is complete (``run_output/<run_id>/eof``)."""

    id: str
    run_id: str = ""
    chunks: int = 0
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    stdout_cut: bool = False
    stderr_cut: bool = False
    at: datetime | None = None


@dataclass(frozen=True)
class Dispatched:
    """Where an attempt went: queued on a worker's queue, or pending with the reason."""

    run_id: str
    status: RunStatus
    worker_id: str | None = None
    reason: str | None = None
    queue: str | None = None
