import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Affinity(_message.Message):
    __slots__ = ("os", "tags", "allowed_users")
    OS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_USERS_FIELD_NUMBER: _ClassVar[int]
    os: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    allowed_users: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, os: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., allowed_users: _Optional[_Iterable[str]] = ...) -> None: ...

class Placement(_message.Message):
    __slots__ = ("mode", "max_parallel", "stop_on_failure")
    MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_PARALLEL_FIELD_NUMBER: _ClassVar[int]
    STOP_ON_FAILURE_FIELD_NUMBER: _ClassVar[int]
    mode: str
    max_parallel: int
    stop_on_failure: bool
    def __init__(self, mode: _Optional[str] = ..., max_parallel: _Optional[int] = ..., stop_on_failure: _Optional[bool] = ...) -> None: ...

class FanoutWorker(_message.Message):
    __slots__ = ("worker", "run_id", "state", "status", "reason")
    WORKER_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    worker: str
    run_id: str
    state: str
    status: str
    reason: str
    def __init__(self, worker: _Optional[str] = ..., run_id: _Optional[str] = ..., state: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Fanout(_message.Message):
    __slots__ = ("id", "job_id", "created_at", "max_parallel", "stop_on_failure", "done", "ok", "workers", "succeeded", "failed", "lost", "not_reached", "in_progress")
    ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_PARALLEL_FIELD_NUMBER: _ClassVar[int]
    STOP_ON_FAILURE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    NOT_REACHED_FIELD_NUMBER: _ClassVar[int]
    IN_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    id: str
    job_id: str
    created_at: _timestamp_pb2.Timestamp
    max_parallel: int
    stop_on_failure: bool
    done: bool
    ok: bool
    workers: _containers.RepeatedCompositeFieldContainer[FanoutWorker]
    succeeded: _containers.RepeatedScalarFieldContainer[str]
    failed: _containers.RepeatedScalarFieldContainer[str]
    lost: _containers.RepeatedScalarFieldContainer[str]
    not_reached: _containers.RepeatedScalarFieldContainer[str]
    in_progress: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., job_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_parallel: _Optional[int] = ..., stop_on_failure: _Optional[bool] = ..., done: _Optional[bool] = ..., ok: _Optional[bool] = ..., workers: _Optional[_Iterable[_Union[FanoutWorker, _Mapping]]] = ..., succeeded: _Optional[_Iterable[str]] = ..., failed: _Optional[_Iterable[str]] = ..., lost: _Optional[_Iterable[str]] = ..., not_reached: _Optional[_Iterable[str]] = ..., in_progress: _Optional[_Iterable[str]] = ...) -> None: ...

class GetJobFanoutRequest(_message.Message):
    __slots__ = ("job_id", "fanout_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FANOUT_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    fanout_id: str
    def __init__(self, job_id: _Optional[str] = ..., fanout_id: _Optional[str] = ...) -> None: ...

class Backoff(_message.Message):
    __slots__ = ("base", "factor", "cap", "jitter")
    BASE_FIELD_NUMBER: _ClassVar[int]
    FACTOR_FIELD_NUMBER: _ClassVar[int]
    CAP_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    base: float
    factor: float
    cap: float
    jitter: float
    def __init__(self, base: _Optional[float] = ..., factor: _Optional[float] = ..., cap: _Optional[float] = ..., jitter: _Optional[float] = ...) -> None: ...

class HttpRequest(_message.Message):
    __slots__ = ("url", "method", "headers", "body", "timeout")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    URL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    url: str
    method: str
    headers: _containers.ScalarMap[str, str]
    body: _struct_pb2.Value
    timeout: float
    def __init__(self, url: _Optional[str] = ..., method: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., body: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., timeout: _Optional[float] = ...) -> None: ...

class Param(_message.Message):
    __slots__ = ("name", "description", "required", "default", "allowed", "pattern", "secret")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    AS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    required: bool
    default: str
    allowed: _containers.RepeatedScalarFieldContainer[str]
    pattern: str
    secret: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., required: _Optional[bool] = ..., default: _Optional[str] = ..., allowed: _Optional[_Iterable[str]] = ..., pattern: _Optional[str] = ..., secret: _Optional[bool] = ..., **kwargs) -> None: ...

class Resources(_message.Message):
    __slots__ = ("memory_mb", "cpu")
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    memory_mb: int
    cpu: float
    def __init__(self, memory_mb: _Optional[int] = ..., cpu: _Optional[float] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("name", "user", "namespace", "affinity", "command", "args", "shell", "env", "cwd", "retries", "timeout", "priority", "schedule", "timezone", "scheduled_at", "misfire", "overlap", "backoff", "max_lost", "executor", "http", "on_success", "on_failure", "on_completion", "params", "resources", "max_concurrent", "monitor", "placement", "notify")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AFFINITY_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    SHELL_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    MISFIRE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_FIELD_NUMBER: _ClassVar[int]
    MAX_LOST_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    HTTP_FIELD_NUMBER: _ClassVar[int]
    ON_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ON_FAILURE_FIELD_NUMBER: _ClassVar[int]
    ON_COMPLETION_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    MONITOR_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_FIELD_NUMBER: _ClassVar[int]
    name: str
    user: str
    namespace: str
    affinity: Affinity
    command: str
    args: _containers.RepeatedScalarFieldContainer[str]
    shell: str
    env: _containers.ScalarMap[str, str]
    cwd: str
    retries: int
    timeout: float
    priority: int
    schedule: str
    timezone: str
    scheduled_at: _timestamp_pb2.Timestamp
    misfire: str
    overlap: str
    backoff: Backoff
    max_lost: int
    executor: str
    http: HttpRequest
    on_success: _containers.RepeatedScalarFieldContainer[str]
    on_failure: _containers.RepeatedScalarFieldContainer[str]
    on_completion: _containers.RepeatedScalarFieldContainer[str]
    params: _containers.RepeatedCompositeFieldContainer[Param]
    resources: Resources
    max_concurrent: int
    monitor: bool
    placement: Placement
    notify: _containers.RepeatedCompositeFieldContainer[NotifyTarget]
    def __init__(self, name: _Optional[str] = ..., user: _Optional[str] = ..., namespace: _Optional[str] = ..., affinity: _Optional[_Union[Affinity, _Mapping]] = ..., command: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., shell: _Optional[str] = ..., env: _Optional[_Mapping[str, str]] = ..., cwd: _Optional[str] = ..., retries: _Optional[int] = ..., timeout: _Optional[float] = ..., priority: _Optional[int] = ..., schedule: _Optional[str] = ..., timezone: _Optional[str] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., misfire: _Optional[str] = ..., overlap: _Optional[str] = ..., backoff: _Optional[_Union[Backoff, _Mapping]] = ..., max_lost: _Optional[int] = ..., executor: _Optional[str] = ..., http: _Optional[_Union[HttpRequest, _Mapping]] = ..., on_success: _Optional[_Iterable[str]] = ..., on_failure: _Optional[_Iterable[str]] = ..., on_completion: _Optional[_Iterable[str]] = ..., params: _Optional[_Iterable[_Union[Param, _Mapping]]] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., max_concurrent: _Optional[int] = ..., monitor: _Optional[bool] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ..., notify: _Optional[_Iterable[_Union[NotifyTarget, _Mapping]]] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("job", "idempotency_key")
    JOB_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    job: JobSpec
    idempotency_key: str
    def __init__(self, job: _Optional[_Union[JobSpec, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job_id", "run_id", "status", "worker_id", "pending_reason", "scheduled_at", "replayed")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PENDING_REASON_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    run_id: str
    status: str
    worker_id: str
    pending_reason: str
    scheduled_at: _timestamp_pb2.Timestamp
    replayed: bool
    def __init__(self, job_id: _Optional[str] = ..., run_id: _Optional[str] = ..., status: _Optional[str] = ..., worker_id: _Optional[str] = ..., pending_reason: _Optional[str] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "name", "user", "namespace", "affinity", "command", "args", "shell", "env", "cwd", "retries", "timeout", "priority", "schedule", "timezone", "scheduled_at", "misfire", "overlap", "backoff", "max_lost", "executor", "http", "status", "last_run_id", "source", "paused", "paused_at", "next_run_at", "last_fire_at", "last_skipped_at", "created_at", "updated_at", "deleted_at", "on_success", "on_failure", "on_completion", "params", "resources", "max_concurrent", "monitor", "last_success_at", "last_failure_at", "placement", "notify")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AFFINITY_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    SHELL_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    MISFIRE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_FIELD_NUMBER: _ClassVar[int]
    MAX_LOST_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    HTTP_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    PAUSED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_FIRE_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SKIPPED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    DELETED_AT_FIELD_NUMBER: _ClassVar[int]
    ON_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ON_FAILURE_FIELD_NUMBER: _ClassVar[int]
    ON_COMPLETION_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    MONITOR_FIELD_NUMBER: _ClassVar[int]
    LAST_SUCCESS_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILURE_AT_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    user: str
    namespace: str
    affinity: Affinity
    command: str
    args: _containers.RepeatedScalarFieldContainer[str]
    shell: str
    env: _containers.ScalarMap[str, str]
    cwd: str
    retries: int
    timeout: float
    priority: int
    schedule: str
    timezone: str
    scheduled_at: _timestamp_pb2.Timestamp
    misfire: str
    overlap: str
    backoff: Backoff
    max_lost: int
    executor: str
    http: HttpRequest
    status: str
    last_run_id: str
    source: str
    paused: bool
    paused_at: _timestamp_pb2.Timestamp
    next_run_at: _timestamp_pb2.Timestamp
    last_fire_at: _timestamp_pb2.Timestamp
    last_skipped_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    deleted_at: _timestamp_pb2.Timestamp
    on_success: _containers.RepeatedScalarFieldContainer[str]
    on_failure: _containers.RepeatedScalarFieldContainer[str]
    on_completion: _containers.RepeatedScalarFieldContainer[str]
    params: _containers.RepeatedCompositeFieldContainer[Param]
    resources: Resources
    max_concurrent: int
    monitor: bool
    last_success_at: _timestamp_pb2.Timestamp
    last_failure_at: _timestamp_pb2.Timestamp
    placement: Placement
    notify: _containers.RepeatedCompositeFieldContainer[NotifyTarget]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., user: _Optional[str] = ..., namespace: _Optional[str] = ..., affinity: _Optional[_Union[Affinity, _Mapping]] = ..., command: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., shell: _Optional[str] = ..., env: _Optional[_Mapping[str, str]] = ..., cwd: _Optional[str] = ..., retries: _Optional[int] = ..., timeout: _Optional[float] = ..., priority: _Optional[int] = ..., schedule: _Optional[str] = ..., timezone: _Optional[str] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., misfire: _Optional[str] = ..., overlap: _Optional[str] = ..., backoff: _Optional[_Union[Backoff, _Mapping]] = ..., max_lost: _Optional[int] = ..., executor: _Optional[str] = ..., http: _Optional[_Union[HttpRequest, _Mapping]] = ..., status: _Optional[str] = ..., last_run_id: _Optional[str] = ..., source: _Optional[str] = ..., paused: _Optional[bool] = ..., paused_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_fire_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_skipped_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deleted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., on_success: _Optional[_Iterable[str]] = ..., on_failure: _Optional[_Iterable[str]] = ..., on_completion: _Optional[_Iterable[str]] = ..., params: _Optional[_Iterable[_Union[Param, _Mapping]]] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., max_concurrent: _Optional[int] = ..., monitor: _Optional[bool] = ..., last_success_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_failure_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ..., notify: _Optional[_Iterable[_Union[NotifyTarget, _Mapping]]] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("id", "job_id", "job_name", "user", "namespace", "attempt", "retry_of", "lost", "status", "outcome", "decision", "not_before", "worker_id", "queue", "pending_reason", "priority", "command", "args", "shell", "returncode", "stdout", "stderr", "stdout_bytes", "stderr_bytes", "stdout_truncated", "stderr_truncated", "error", "executor", "url", "cancel_requested_at", "retried_by", "queued_at", "placed_at", "started_at", "finished_at", "duration", "ended_by", "params", "fanout_id", "bound_worker", "notifications")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RETRY_OF_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PENDING_REASON_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    SHELL_FIELD_NUMBER: _ClassVar[int]
    RETURNCODE_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    STDOUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    STDERR_BYTES_FIELD_NUMBER: _ClassVar[int]
    STDOUT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    STDERR_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    RETRIED_BY_FIELD_NUMBER: _ClassVar[int]
    QUEUED_AT_FIELD_NUMBER: _ClassVar[int]
    PLACED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    ENDED_BY_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    FANOUT_ID_FIELD_NUMBER: _ClassVar[int]
    BOUND_WORKER_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    id: str
    job_id: str
    job_name: str
    user: str
    namespace: str
    attempt: int
    retry_of: str
    lost: int
    status: str
    outcome: str
    decision: str
    not_before: _timestamp_pb2.Timestamp
    worker_id: str
    queue: str
    pending_reason: str
    priority: int
    command: str
    args: _containers.RepeatedScalarFieldContainer[str]
    shell: str
    returncode: int
    stdout: str
    stderr: str
    stdout_bytes: int
    stderr_bytes: int
    stdout_truncated: bool
    stderr_truncated: bool
    error: str
    executor: str
    url: str
    cancel_requested_at: _timestamp_pb2.Timestamp
    retried_by: str
    queued_at: _timestamp_pb2.Timestamp
    placed_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    duration: float
    ended_by: str
    params: _containers.ScalarMap[str, str]
    fanout_id: str
    bound_worker: str
    notifications: Notifications
    def __init__(self, id: _Optional[str] = ..., job_id: _Optional[str] = ..., job_name: _Optional[str] = ..., user: _Optional[str] = ..., namespace: _Optional[str] = ..., attempt: _Optional[int] = ..., retry_of: _Optional[str] = ..., lost: _Optional[int] = ..., status: _Optional[str] = ..., outcome: _Optional[str] = ..., decision: _Optional[str] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., worker_id: _Optional[str] = ..., queue: _Optional[str] = ..., pending_reason: _Optional[str] = ..., priority: _Optional[int] = ..., command: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., shell: _Optional[str] = ..., returncode: _Optional[int] = ..., stdout: _Optional[str] = ..., stderr: _Optional[str] = ..., stdout_bytes: _Optional[int] = ..., stderr_bytes: _Optional[int] = ..., stdout_truncated: _Optional[bool] = ..., stderr_truncated: _Optional[bool] = ..., error: _Optional[str] = ..., executor: _Optional[str] = ..., url: _Optional[str] = ..., cancel_requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., retried_by: _Optional[str] = ..., queued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., placed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[float] = ..., ended_by: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., fanout_id: _Optional[str] = ..., bound_worker: _Optional[str] = ..., notifications: _Optional[_Union[Notifications, _Mapping]] = ...) -> None: ...

class NotifyTarget(_message.Message):
    __slots__ = ("on", "webhook", "slack")
    ON_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    SLACK_FIELD_NUMBER: _ClassVar[int]
    on: _containers.RepeatedScalarFieldContainer[str]
    webhook: NotifyWebhook
    slack: NotifySlack
    def __init__(self, on: _Optional[_Iterable[str]] = ..., webhook: _Optional[_Union[NotifyWebhook, _Mapping]] = ..., slack: _Optional[_Union[NotifySlack, _Mapping]] = ...) -> None: ...

class NotifyWebhook(_message.Message):
    __slots__ = ("url", "secret")
    URL_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    url: str
    secret: str
    def __init__(self, url: _Optional[str] = ..., secret: _Optional[str] = ...) -> None: ...

class NotifySlack(_message.Message):
    __slots__ = ("url",)
    URL_FIELD_NUMBER: _ClassVar[int]
    url: str
    def __init__(self, url: _Optional[str] = ...) -> None: ...

class Notifications(_message.Message):
    __slots__ = ("events", "done", "deliveries")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedScalarFieldContainer[str]
    done: bool
    deliveries: _containers.RepeatedCompositeFieldContainer[NotifyDelivery]
    def __init__(self, events: _Optional[_Iterable[str]] = ..., done: _Optional[bool] = ..., deliveries: _Optional[_Iterable[_Union[NotifyDelivery, _Mapping]]] = ...) -> None: ...

class NotifyDelivery(_message.Message):
    __slots__ = ("kind", "event", "url", "state", "attempts")
    KIND_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    event: str
    url: str
    state: str
    attempts: _containers.RepeatedCompositeFieldContainer[NotifyAttempt]
    def __init__(self, kind: _Optional[str] = ..., event: _Optional[str] = ..., url: _Optional[str] = ..., state: _Optional[str] = ..., attempts: _Optional[_Iterable[_Union[NotifyAttempt, _Mapping]]] = ...) -> None: ...

class NotifyAttempt(_message.Message):
    __slots__ = ("at", "status_code", "error")
    AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    status_code: int
    error: str
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status_code: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class Worker(_message.Message):
    __slots__ = ("id", "os", "tags", "allowed_users", "namespaces", "max_concurrency", "current_running", "load", "status", "last_heartbeat", "heartbeat_interval", "queue", "shells", "hostname", "pid", "processed", "first_seen", "resource_limits", "drained", "drained_by", "drained_at", "drain_reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_USERS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_RUNNING_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    SHELLS_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    PROCESSED_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    DRAINED_FIELD_NUMBER: _ClassVar[int]
    DRAINED_BY_FIELD_NUMBER: _ClassVar[int]
    DRAINED_AT_FIELD_NUMBER: _ClassVar[int]
    DRAIN_REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    os: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    allowed_users: _containers.RepeatedScalarFieldContainer[str]
    namespaces: _containers.RepeatedScalarFieldContainer[str]
    max_concurrency: int
    current_running: int
    load: int
    status: str
    last_heartbeat: _timestamp_pb2.Timestamp
    heartbeat_interval: float
    queue: str
    shells: _containers.RepeatedScalarFieldContainer[str]
    hostname: str
    pid: int
    processed: int
    first_seen: _timestamp_pb2.Timestamp
    resource_limits: bool
    drained: bool
    drained_by: str
    drained_at: _timestamp_pb2.Timestamp
    drain_reason: str
    def __init__(self, id: _Optional[str] = ..., os: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., allowed_users: _Optional[_Iterable[str]] = ..., namespaces: _Optional[_Iterable[str]] = ..., max_concurrency: _Optional[int] = ..., current_running: _Optional[int] = ..., load: _Optional[int] = ..., status: _Optional[str] = ..., last_heartbeat: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_interval: _Optional[float] = ..., queue: _Optional[str] = ..., shells: _Optional[_Iterable[str]] = ..., hostname: _Optional[str] = ..., pid: _Optional[int] = ..., processed: _Optional[int] = ..., first_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resource_limits: _Optional[bool] = ..., drained: _Optional[bool] = ..., drained_by: _Optional[str] = ..., drained_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., drain_reason: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("status", "user", "namespace", "limit", "cursor")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    status: str
    user: str
    namespace: str
    limit: int
    cursor: str
    def __init__(self, status: _Optional[str] = ..., user: _Optional[str] = ..., namespace: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_cursor")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_cursor: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("job_id", "limit", "cursor")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    limit: int
    cursor: str
    def __init__(self, job_id: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_cursor")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    next_cursor: str
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class WatchRunRequest(_message.Message):
    __slots__ = ("run_id", "after")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    after: int
    def __init__(self, run_id: _Optional[str] = ..., after: _Optional[int] = ...) -> None: ...

class OutputChunk(_message.Message):
    __slots__ = ("seq", "stream", "text", "cut", "at")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CUT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    stream: str
    text: str
    cut: bool
    at: _timestamp_pb2.Timestamp
    def __init__(self, seq: _Optional[int] = ..., stream: _Optional[str] = ..., text: _Optional[str] = ..., cut: _Optional[bool] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("run", "output", "ended")
    RUN_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    run: Run
    output: OutputChunk
    ended: bool
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ..., output: _Optional[_Union[OutputChunk, _Mapping]] = ..., ended: _Optional[bool] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("run", "ended")
    RUN_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    run: Run
    ended: bool
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ..., ended: _Optional[bool] = ...) -> None: ...

class RetryRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class TriggerJobRequest(_message.Message):
    __slots__ = ("job_id", "params")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    params: _containers.ScalarMap[str, str]
    def __init__(self, job_id: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DrainWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "reason")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    reason: str
    def __init__(self, worker_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WorkerDrain(_message.Message):
    __slots__ = ("id", "by", "at", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    by: str
    at: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, id: _Optional[str] = ..., by: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class UndrainWorkerRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class UndrainWorkerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[Worker]
    def __init__(self, workers: _Optional[_Iterable[_Union[Worker, _Mapping]]] = ...) -> None: ...

class RelatedJob(_message.Message):
    __slots__ = ("id", "via", "state", "name", "namespace", "status")
    ID_FIELD_NUMBER: _ClassVar[int]
    VIA_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    via: _containers.RepeatedScalarFieldContainer[str]
    state: str
    name: str
    namespace: str
    status: str
    def __init__(self, id: _Optional[str] = ..., via: _Optional[_Iterable[str]] = ..., state: _Optional[str] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class JobDependencies(_message.Message):
    __slots__ = ("job_id", "upstream", "downstream")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    DOWNSTREAM_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    upstream: _containers.RepeatedCompositeFieldContainer[RelatedJob]
    downstream: _containers.RepeatedCompositeFieldContainer[RelatedJob]
    def __init__(self, job_id: _Optional[str] = ..., upstream: _Optional[_Iterable[_Union[RelatedJob, _Mapping]]] = ..., downstream: _Optional[_Iterable[_Union[RelatedJob, _Mapping]]] = ...) -> None: ...

class Upstream(_message.Message):
    __slots__ = ("runs", "statuses", "via", "job_id", "job_name", "group")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    VIA_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedScalarFieldContainer[str]
    statuses: _containers.RepeatedScalarFieldContainer[str]
    via: str
    job_id: str
    job_name: str
    group: str
    def __init__(self, runs: _Optional[_Iterable[str]] = ..., statuses: _Optional[_Iterable[str]] = ..., via: _Optional[str] = ..., job_id: _Optional[str] = ..., job_name: _Optional[str] = ..., group: _Optional[str] = ...) -> None: ...

class Started(_message.Message):
    __slots__ = ("run_id", "job_id", "job_name", "via", "note")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    VIA_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    job_id: str
    job_name: str
    via: str
    note: str
    def __init__(self, run_id: _Optional[str] = ..., job_id: _Optional[str] = ..., job_name: _Optional[str] = ..., via: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class RunFlow(_message.Message):
    __slots__ = ("run_id", "started_by", "started", "next", "first")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_BY_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    started_by: Upstream
    started: _containers.RepeatedCompositeFieldContainer[Started]
    next: str
    first: str
    def __init__(self, run_id: _Optional[str] = ..., started_by: _Optional[_Union[Upstream, _Mapping]] = ..., started: _Optional[_Iterable[_Union[Started, _Mapping]]] = ..., next: _Optional[str] = ..., first: _Optional[str] = ...) -> None: ...
