"""Every name Hydra shares between processes: collections, queues, Redis keys, task names.

Queue-name scheme (what a worker's ``-Q`` says about it):

* ``os.<name>``   - the worker's operating system: ``os.linux``, ``os.macos``, ``os.windows``.
* ``tag.<name>``  - a capability tag: ``tag.gpu``, ``tag.ssd``, ...
* ``hydra.worker.<nodename>`` - the worker's own queue, added automatically at start-up.
  The affinity router sends every job to exactly one of these.
* ``hydra.pending`` - jobs no online worker can take yet; only the controller reads it.

The ``os.*`` and ``tag.*`` queues are declarations: they are consumed (so Celery's tooling
shows them) but Hydra never publishes to them, because a single shared queue cannot
express "linux AND gpu AND user allowed".
"""

from __future__ import annotations

import hashlib
import re

#: Hydra's version (the package's, and what its webhook calls say in User-Agent).
VERSION = "0.1.0"

# MongoDB collections.
JOB_DEFINITIONS = "job_definitions"
JOB_RUNS = "job_runs"
#: Write-once start/end records per run attempt; see hydra.store.fences for why they exist.
RUN_FENCES = "run_fences"
#: The workers view served by GET /workers/ (written by the controller).
WORKERS = "workers"
#: Drained workers (hydra.store.drains): worker id -> who drained it, when and why. The record
#: of truth of a drain; the router reads its Redis copy (DRAINED_KEY).
WORKER_DRAINS = "worker_drains"
#: Fan-outs (hydra.store.fanouts): one plan per start of a job with placement mode all (its
#: workers and a run id each), and write-once slots ``<fan-out>/<worker>/start|end``.
FANOUTS = "fanouts"
FANOUT_SLOTS = "fanout_slots"
#: API tokens (hashes of their secrets), the audit trail, namespaces' limits.
API_TOKENS = "api_tokens"
AUDIT_EVENTS = "audit_events"
NAMESPACES = "namespaces"
#: The web console's signed-in sessions, by the SHA-256 of the id their cookie carries (hydra.store.sessions).
CONSOLE_SESSIONS = "console_sessions"
#: Idempotency keys of submissions: write-once claims ``<scope digest>/<generation>`` (hydra.store.idempotency).
IDEMPOTENCY_KEYS = "idempotency_keys"
#: Live output: insert-only chunks ``<run_id>/<seq:08d>`` and ``<run_id>/eof`` (hydra.execution.live).
RUN_OUTPUT = "run_output"
#: What follows a run (hydra.store.flows): per run id, the steps a canvas or a job's dependencies
#: start after it, what started it, the attempt that followed it and what its end started.
RUN_FLOWS = "run_flows"
#: Chords of a canvas: ``<group id>`` (its header and body) and ``<group id>/<part>`` (a
#: header part's end, write-once: the last one decides the body).
CHORDS = "chords"
#: Job files' names (hydra.store.job_names): write-once claims ``<generation>:<namespace>/<name>``
#: naming the job that ``hydra job apply`` manages under that name.
JOB_NAMES = "job_names"
#: Which jobs name a job in their on_success / on_failure / on_completion: ``<upstream>><downstream>``.
JOB_EDGES = "job_edges"
#: Notifications of ended runs (hydra.store.notifications): ``<run_id>``, its deliveries and
#: their attempts; and ``notify_state/<job_id>``: the job's last final end, for ``recovered``.
NOTIFICATIONS = "notifications"
NOTIFY_STATE = "notify_state"
#: Records whose Redis index entries could not be written (Redis unreachable); the leading
#: controller re-indexes them from their records (hydra.store.reindex).
INDEX_BACKLOG = "index_backlog"

# Celery names.
TASK_RUN_COMMAND = "hydra.run_command"
PENDING_QUEUE = "hydra.pending"
WORKER_QUEUE_PREFIX = "hydra.worker."
OS_QUEUE_PREFIX = "os."
TAG_QUEUE_PREFIX = "tag."

# Redis keys (the live registry; rebuilt by the controller, never the record of truth).
REDIS_PREFIX = "hydra:"
#: hash: worker id -> JSON profile and liveness.
WORKERS_KEY = REDIS_PREFIX + "workers"
#: hash: worker id -> number of runs routed to it and not yet finished.
LOAD_KEY = REDIS_PREFIX + "load"
#: string: a random token the controller changes whenever a worker's profile or liveness
#: changes (not on mere heartbeats): routers decode the registry again only when it moved.
WORKERS_VERSION_KEY = REDIS_PREFIX + "workers:version"
#: hash: online worker id -> its load group (the sorted set below it is in).
LOAD_GROUPS_KEY = REDIS_PREFIX + "loadgroups"
#: sorted sets, one per load group (online workers alike in profile and concurrency): worker
#: id -> its load, so the least-loaded of a group is its first member (hydra.broker.registry).
LOAD_GROUP_PREFIX = REDIS_PREFIX + "loadz:"
#: set: the drained workers' ids, copied from MongoDB (WORKER_DRAINS) by the drain verbs and
#: the leading controller; the router places nothing on them (hydra.broker.registry).
DRAINED_KEY = REDIS_PREFIX + "workers:drained"
#: string with TTL: set by the leading controller on every tick (health check).
CONTROLLER_ALIVE_KEY = REDIS_PREFIX + "controller:alive"
#: counter: ticks the leading controller has completed (health, and tests waiting for "a pass happened").
CONTROLLER_TICKS_KEY = REDIS_PREFIX + "controller:ticks"
#: list: how long the leading controller's latest ticks took (milliseconds, newest first).
CONTROLLER_TICK_MS_KEY = REDIS_PREFIX + "controller:tick_ms"
#: the leader lease (token of the leading controller) and its fencing counter.
LEADER_KEY = REDIS_PREFIX + "controller:leader"
LEADER_EPOCH_KEY = REDIS_PREFIX + "controller:epoch"
#: the run_id of the Redis server instance the controller last reconciled against.
BROKER_EPOCH_KEY = REDIS_PREFIX + "broker:epoch"
#: set: namespaces whose runs hold places on workers (see hydra.broker.quotas).
QUOTA_NAMESPACES_KEY = REDIS_PREFIX + "ns:placed"
#: set: jobs whose runs hold places under their max_concurrent (see hydra.broker.quotas).
QUOTA_JOBS_KEY = REDIS_PREFIX + "jobslots:placed"
#: sorted set: run id -> epoch seconds before which the (delayed) run must not start.
DUE_KEY = REDIS_PREFIX + "due"
#: sorted set: run id -> epoch seconds its notification's next delivery attempt is due (hydra.store.notifications).
NOTIFY_DUE_KEY = REDIS_PREFIX + "notify:due"
#: sorted set: run id -> epoch seconds its message was sent; removed when a worker claims it
#: (what the controller checks for messages that vanished, see hydra.broker.sent).
SENT_KEY = REDIS_PREFIX + "sent"
#: kombu's Redis transport: the hash of messages delivered to a consumer and not acknowledged.
KOMBU_UNACKED_KEY = "unacked"
#: ... and the sorted set of their delivery tags by when they were delivered (due for restore
#: once older than the visibility timeout).
KOMBU_UNACKED_INDEX_KEY = "unacked_index"
#: string with TTL: the token of the scheduler that holds the leader lock.
SCHEDULER_LEADER_KEY = REDIS_PREFIX + "scheduler:leader"
#: counter, and sorted set job id -> counter value: which jobs' schedules changed, in order.
SCHEDULE_SEQ_KEY = REDIS_PREFIX + "schedule:seq"
SCHEDULE_CHANGES_KEY = REDIS_PREFIX + "schedule:changes"
#: The stores' secondary indexes (hydra.broker.index): sorted sets and hashes per namespace
#: under ``hydra:ix:<namespace>:``, rebuilt from MongoDB when Redis lost them.
INDEX_PREFIX = REDIS_PREFIX + "ix:"
#: set: every namespace the indexes have entries for.
INDEX_NAMESPACES_KEY = INDEX_PREFIX + "namespaces"
#: strings: set when the indexes of jobs / of runs / of the audit trail were completely built from MongoDB (gone
#: after a flush); see INDEX_PARTS.
INDEX_BUILT_PREFIX = INDEX_PREFIX + "built:"
#: The parts of the indexes, built in this order by a rebuild (each from its collection).
INDEX_PARTS = ("jobs", "runs", "audit")
#: Where index entries of records that belong to no namespace (audit events about tokens)
#: are filed: ``_`` is no namespace's name.
INDEX_NO_NAMESPACE = "_"
#: hash: progress of the rebuild under way (token, counts), for status and the benchmark.
INDEX_REBUILD_KEY = INDEX_PREFIX + "rebuild"
#: hash: where retention's walk over each namespace's jobs got to.
RETENTION_CURSOR_KEY = INDEX_PREFIX + "retention"
#: Metric counters every process increments and GET /metrics reads (see hydra.broker.metrics).
METRIC_JOBS_SUBMITTED = REDIS_PREFIX + "metrics:jobs_submitted"
METRIC_RUNS_FINISHED = REDIS_PREFIX + "metrics:runs_finished"
METRIC_RUN_DURATION = REDIS_PREFIX + "metrics:run_duration"
#: hash status -> n per job marked ``monitor`` (hydra.model.monitoring): "<prefix><job id>".
METRIC_JOB_RUNS_PREFIX = REDIS_PREFIX + "metrics:job_runs:"


def index_prefix(namespace: str) -> str:
    """Prefix of every index key of ``namespace`` (a DNS label: no ``:`` in it)."""
    return f"{INDEX_PREFIX}{namespace}:"


def worker_queue(worker_id: str) -> str:
    """The per-worker queue of the worker whose Celery nodename is ``worker_id``."""
    return WORKER_QUEUE_PREFIX + worker_id


def worker_slot(worker_id: str, broker_url: str) -> str:
    """The name of a worker's host-local resources (pid files, run cgroups, work directories,
    its commands' ``HYDRA_WORKER_SLOT``): its id and a digest of the broker it serves, without
    credentials. Two deployments on one host may both have a worker ``cpu1@host`` (a test stack
    beside a developer's); the leftovers one kills at its start must never be the other's."""
    where = _CREDENTIALS.sub("//", broker_url)  # every host of a sentinel:// list loses its userinfo
    return f"{worker_id}.{hashlib.sha256(where.encode()).hexdigest()[:10]}"


_CREDENTIALS = re.compile(r"//[^@/;]*@")


def stop_key(run_id: str) -> str:
    """Redis flag asking the worker that runs ``run_id`` to stop it (see hydra.celery.watchdog)."""
    return f"{REDIS_PREFIX}stop:{run_id}"


def refusals_lock(run_id: str) -> str:
    """Redis lock held while a refusal is noted on ``run_id`` (see hydra.store.fences)."""
    return f"{REDIS_PREFIX}refusals-lock:{run_id}"


def job_slots_key(job_id: str) -> str:
    """Set of the run ids of a job with ``max_concurrent`` placed on workers (queued or running)."""
    return f"{REDIS_PREFIX}jobslots:{job_id}"


def quota_key(namespace: str, state: str) -> str:
    """Set of the run ids of ``namespace`` that are ``queued`` on workers or ``running``."""
    return f"{REDIS_PREFIX}ns:{namespace}:{state}"


def fence_id(run_id: str, phase: str) -> str:
    """Key of a run attempt's write-once ``start`` or ``end`` record."""
    return f"{run_id}/{phase}"


def output_chunk_id(run_id: str, seq: int) -> str:
    """Key of chunk ``seq`` (0, 1, ...) of a run's live output."""
    return f"{run_id}/{seq:08d}"


def output_eof_id(run_id: str) -> str:
    """Key of the record saying a run's live output is complete."""
    return f"{run_id}/eof"
