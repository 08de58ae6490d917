"""What ``hydra.client`` returns: dataclasses built from the API's JSON answers, known
fields typed, the whole answer in ``raw``."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime

from hydra.clock import parse as _time
from hydra.model.status import TERMINAL, RunStatus


class _Record:
    """Built from a JSON object: known fields typed, the whole object in ``raw``."""

    _TIMES: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict):
        known = {f.name for f in fields(cls)} - {"raw"}
        values = {key: (_time(data.get(key)) if key in cls._TIMES else data.get(key)) for key in known}
        return cls(**values, raw=data)


@dataclass
class Submitted(_Record):
    """What a submission (or a trigger, or a retry) answers: the job, its run, where it went."""

    _TIMES = ("scheduled_at",)
    job_id: str
    run_id: str | None
    status: str
    worker_id: str | None = None
    pending_reason: str | None = None
    scheduled_at: datetime | None = None
    #: The answer to an earlier request with the same idempotency key: no job was made now.
    replayed: bool = False
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_answer(cls, data: dict, headers) -> Submitted:
        made = cls.from_json(data)
        made.replayed = (headers.get("Idempotent-Replayed") or "").lower() == "true"
        return made


class Page(list):
    """One page of a listing (a list), with the cursor of the next page (None on the last)."""

    def __init__(self, items=(), next_cursor: str | None = None):
        super().__init__(items)
        self.next_cursor = next_cursor


@dataclass
class Task(_Record):
    """A one-off task of ``/schedule``: its id is its job's."""

    _TIMES = ("scheduled_at", "created_at", "picked_at", "started_at", "completed_at", "failed_at")
    id: str
    status: str
    job_id: str | None = None
    run_id: str | None = None
    command: str | None = None
    scheduled_at: datetime | None = None
    worker_id: str | None = None
    created_at: datetime | None = None
    picked_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    returncode: int | None = None
    stdout: str | None = None
    stderr: str | None = None
    error: str | None = None
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class Job(_Record):
    _TIMES = (
        "created_at",
        "updated_at",
        "scheduled_at",
        "paused_at",
        "next_run_at",
        "deleted_at",
        "last_success_at",
        "last_failure_at",
    )
    id: str
    name: str
    user: str
    namespace: str | None = None
    command: str | None = None
    args: list[str] | None = None
    shell: str | None = None
    affinity: dict | None = None
    status: str | None = None
    last_run_id: str | None = None
    source: str | None = None
    retries: int | None = None
    timeout: float | None = None
    priority: int | None = None
    schedule: str | None = None
    timezone: str | None = None
    scheduled_at: datetime | None = None
    executor: str | None = None
    http: dict | None = None
    env: dict | None = None
    #: The parameters a trigger may give values for (``trigger_job(id, params={...})``).
    params: list[dict] | None = None
    #: ``{"mode": "one" | "all", "max_parallel", "stop_on_failure"}`` (``job_fanout(id)`` for mode all).
    placement: dict | None = None
    paused: bool | None = None
    paused_at: datetime | None = None
    next_run_at: datetime | None = None
    #: Ids of the jobs it starts after a success, a failure for good, or either.
    on_success: list[str] | None = None
    on_failure: list[str] | None = None
    on_completion: list[str] | None = None
    #: Limits of each run ({memory_mb, cpu}) and runs of it at once, at most.
    resources: dict | None = None
    max_concurrent: int | None = None
    #: Its ended runs are counted per job on /metrics; when one last succeeded, last failed for good.
    monitor: bool | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    #: Who hears about its runs: [{"on": [...], "webhook": {"url", "secret"}} | {"on", "slack": {"url"}}]
    #: (secrets read "<redacted>"; None: its namespace's default targets).
    notify: list[dict] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class Run(_Record):
    _TIMES = ("queued_at", "placed_at", "started_at", "finished_at", "not_before")
    id: str
    job_id: str
    status: str
    job_name: str | None = None
    user: str | None = None
    namespace: str | None = None
    attempt: int | None = None
    retry_of: str | None = None
    worker_id: str | None = None
    command: str | None = None
    #: The values of its job's parameters it got (secret ones read "<redacted>").
    params: dict | None = None
    returncode: int | None = None
    stdout: str | None = None
    stderr: str | None = None
    error: str | None = None
    outcome: str | None = None
    decision: str | None = None
    pending_reason: str | None = None
    queued_at: datetime | None = None
    placed_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    not_before: datetime | None = None
    duration: float | None = None
    #: A fan-out's run: which fan-out, and the worker it is bound to.
    fanout_id: str | None = None
    bound_worker: str | None = None
    #: What its job's notification targets were told: {"events", "done", "deliveries": [{"kind",
    #: "event", "url", "state", "attempts": [{"at", "status_code", "error"}]}]} (``run(id)`` only).
    notifications: dict | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def ended(self) -> bool:
        """This attempt will not change again (a retry, if any, is another run)."""
        return RunStatus(self.status) in TERMINAL

    @property
    def exit_code(self) -> int:
        """What a shell would make of it: 0 when it succeeded; 124 when it timed out and 130
        when it was cancelled (as ``timeout`` and Ctrl-C do); else the command's own exit
        code, 128+N when it was killed by signal N, and 1 when it never ran."""
        if self.status == RunStatus.SUCCEEDED.value:
            return 0
        outcome = self.outcome or self.status
        if outcome == RunStatus.TIMED_OUT.value:
            return 124
        if outcome == RunStatus.CANCELLED.value:
            return 130
        code = self.returncode
        if code is not None and code > 0:
            return min(code, 255)
        if code is not None and code < 0:
            return 128 + min(-code, 127)
        return 1


@dataclass
class Worker(_Record):
    _TIMES = ("last_heartbeat", "first_seen", "drained_at")
    id: str
    status: str
    os: str | None = None
    tags: list[str] = field(default_factory=list)
    allowed_users: list[str] | None = None
    max_concurrency: int | None = None
    current_running: int | None = None
    load: int | None = None
    queue: str | None = None
    hostname: str | None = None
    last_heartbeat: datetime | None = None
    first_seen: datetime | None = None
    #: Taken out of placement by an operator (``hydra worker drain``): by whom, when, why.
    drained: bool = False
    drained_by: str | None = None
    drained_at: datetime | None = None
    drain_reason: str | None = None
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class Token(_Record):
    _TIMES = ("created_at", "expires_at", "revoked_at")
    id: str
    name: str
    user: str
    roles: dict
    act_as: list
    created_at: datetime | None = None
    created_by: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    #: The token it was made with (None: made by a person or an operator); it works only while that one does.
    parent: str | None = None
    #: The secret (``hydra_<id>_<secret>``): only in the answer that made the token.
    token: str | None = None
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class AuditEvent(_Record):
    _TIMES = ("at",)
    id: str
    at: datetime | None
    actor: str
    via: str
    action: str
    namespace: str | None = None
    target: str | None = None
    details: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class Chunk(_Record):
    seq: int
    stream: str
    text: str
    cut: bool = False
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class OutputPage:
    run_id: str
    status: str
    chunks: list[Chunk]
    next: int
    ended: bool
    stdout_bytes: int | None = None
    stderr_bytes: int | None = None
    #: The server had no room to hold this request: ask again after this many seconds.
    retry_after: float | None = None

    @classmethod
    def from_json(cls, data: dict) -> OutputPage:
        return cls(
            run_id=data["run_id"],
            status=data["status"],
            chunks=[Chunk.from_json(c) for c in data.get("chunks") or []],
            next=data["next"],
            ended=data["ended"],
            stdout_bytes=data.get("stdout_bytes"),
            stderr_bytes=data.get("stderr_bytes"),
            retry_after=data.get("retry_after"),
        )


@dataclass
class Fanout(_Record):
    """One fan-out of a job (``placement.mode: all``): worker by worker (``workers``: each
    ``{"worker", "run_id", "state", "status", "reason"}``), and the workers grouped."""

    _TIMES = ("created_at",)
    id: str
    job_id: str
    done: bool
    ok: bool
    workers: list[dict] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    not_reached: list[str] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)
    max_parallel: int | None = None
    stop_on_failure: bool = False
    created_at: datetime | None = None
    raw: dict = field(default_factory=dict, repr=False)
