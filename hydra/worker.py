"""The worker side: a worker's profile, and the check it makes before running anything.

``celery -A hydra worker -Q os.linux,tag.gpu [--allowed-users rich,ana]`` is the whole
instruction to add a machine. At start-up the :class:`HydraProfile` bootstep

* builds the profile: OS and tags from the ``-Q`` queue names, max concurrency from the
  pool size, allowed users from ``--allowed-users`` or ``HYDRA_ALLOWED_USERS`` (comma
  separated; unset or ``*`` = any user), shells found on the machine;
* adds the worker's own queue ``hydra.worker.<nodename>`` to the queues it consumes.

The controller asks each worker for its profile with the ``hydra_profile`` remote-control
command (``celery -A hydra inspect hydra_profile`` shows it too).

Before a task runs, :func:`admit` checks the job against this profile again - a message
published straight to a worker's queue, or routed on a stale registry, is refused and
recorded, never executed - and then claims the attempt (``hydra.runs``).
"""
from __future__ import annotations

import contextlib
import getpass
import logging
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import click
import psutil
from celery import bootsteps
from celery.exceptions import Ignore
from celery.signals import worker_process_init
from celery.worker.control import inspect_command

from hydra.affinity import Requirements, WorkerProfile, mismatch, profile_from_queues
from redis.exceptions import RedisError

from hydra.db import UNAVAILABLE_ERRORS
from hydra.errors import Refused, RunEnded
from hydra.executor import available_shells, enable_subreaper, end_processes_with_env, end_session
from hydra.registry import Registry
from hydra.runs import RunStore, utcnow

log = logging.getLogger(__name__)

#: This worker's profile, set at start-up (inherited by forked pool processes).
PROFILE: WorkerProfile | None = None
#: A random token naming this process of the worker (its "incarnation"), likewise inherited. A
#: restarted worker keeps its name - and in a container often its pid - but not this.
INCARNATION: str | None = None

ALLOWED_USERS_OPTION = click.Option(
    ["--allowed-users"], default=None,
    help="Comma-separated users whose jobs this worker runs (default: $HYDRA_ALLOWED_USERS, or any user).")


def platform_os() -> str:
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return "linux"


def parse_allowed_users(value: str | None) -> frozenset[str] | None:
    """``"rich, ana"`` -> {"rich", "ana"}; None, "" or "*" -> None (any user)."""
    if value is None or value.strip() in ("", "*"):
        return None
    return frozenset(u.strip() for u in value.split(",") if u.strip())


class HydraProfile(bootsteps.Step):
    """Worker bootstep: derive the profile and subscribe to the worker's own queue."""

    def __init__(self, worker, allowed_users=None, **options):
        global PROFILE, INCARNATION
        super().__init__(worker, **options)
        queues = list(worker.app.amqp.queues.consume_from)
        raw = allowed_users if allowed_users is not None else os.environ.get("HYDRA_ALLOWED_USERS")
        os_name = platform_os()
        try:
            profile = profile_from_queues(
                worker.hostname, queues, concurrency=int(worker.concurrency or 1), platform_os=os_name,
                allowed_users=parse_allowed_users(raw), shells=frozenset(available_shells(os_name)))
        except ValueError as exc:
            raise SystemExit(f"hydra: {exc}") from None
        worker.app.amqp.queues.select_add(profile.queue)
        PROFILE, INCARNATION = profile, secrets.token_hex(8)
        end_leftovers(profile.id)
        log.info("hydra worker profile", extra={"event": "worker.profile", "worker": profile.id,
                                                  "profile": profile.to_dict()})


@worker_process_init.connect
def _pool_process_init(**_):
    # Orphans of a command (double-forked daemons) reparent to this pool process, so a
    # timeout or cancel can still find and kill them. Not inherited across fork, hence here.
    enable_subreaper()


@inspect_command()
def hydra_profile(state):
    """Hydra profile of this worker (OS, tags, allowed users, max concurrency, shells, queue)."""
    return {"profile": PROFILE.to_dict() if PROFILE else None, "pid": os.getpid(), "incarnation": INCARNATION}


def runtime_dir() -> Path:
    """Where this worker notes the pids of the commands it runs (one file per run)."""
    worker_id = PROFILE.id if PROFILE else "unknown"
    path = Path(tempfile.gettempdir()) / f"hydra-{getpass.getuser()}" / worker_id.replace(os.sep, "_")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def command_pidfile(run_id: str):
    """Yields a callback noting the command's pid in a file removed when the command ended.

    If the pool process running the command dies (a command that kills its own worker, an
    out-of-memory kill), the worker's main process finds the pid here and ends the command's
    session (:func:`end_orphaned_command`), so no orphan outlives the attempt."""
    path = runtime_dir() / f"{run_id}.pid"
    try:
        yield lambda pid: path.write_text(str(pid))
    finally:
        path.unlink(missing_ok=True)


def end_orphaned_command(run_id: str) -> int:
    """Kill what is left of ``run_id``'s command after its pool process died: its session
    (from the pid file, when the pool process lived long enough to write it) and every
    process carrying ``HYDRA_RUN_ID=<run_id>`` in its environment (always)."""
    path = runtime_dir() / f"{run_id}.pid"
    ended = 0
    try:
        pid = int(path.read_text())
    except (OSError, ValueError):
        pid = None
    if pid is not None and _is_command_session(pid, path):
        end_session(pid)
        ended += 1
    path.unlink(missing_ok=True)
    ended += end_processes_with_env("HYDRA_RUN_ID", run_id)
    if ended:
        log.warning("ended the orphaned command of a dead pool process", extra={
            "event": "run.orphan_killed", "run_id": run_id, "pid": pid})
    return ended


def _is_command_session(pid: int, pidfile: Path) -> bool:
    """Guard against pid reuse: the process must lead its own session and have started
    just before its pid file was written."""
    try:
        proc = psutil.Process(pid)
        return os.getsid(pid) == pid and abs(proc.create_time() - pidfile.stat().st_mtime) < 5
    except (psutil.NoSuchProcess, ProcessLookupError, OSError):
        return False


def end_leftovers(worker_id: str) -> int:
    """At start-up: end commands that a previous process of this worker left running when it
    was killed (the controller has failed those runs over; they must not run twice)."""
    ended = end_processes_with_env("HYDRA_WORKER", worker_id)
    directory = runtime_dir()
    for stale in directory.glob("*.pid"):
        stale.unlink(missing_ok=True)
    if ended:
        log.warning("ended commands left running by this worker's previous process", extra={
            "event": "worker.leftovers_killed", "worker": worker_id, "count": ended})
    return ended


def wait_for_store(fn, *, patience: float = 300.0):
    """Call ``fn``; while MongoDB is unreachable, retry with backoff for up to ``patience`` s
    (a message that arrives during a store outage waits for it instead of failing)."""
    deadline = time.monotonic() + patience
    delay = 0.25
    while True:
        try:
            return fn()
        except UNAVAILABLE_ERRORS:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("MongoDB unreachable; retrying in %.1fs", delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def admit(run_id: str, kwargs: dict, *, runs: RunStore | None = None) -> None:
    """Check that this worker may run the message, then claim the attempt.

    Raises Refused (recorded as failed by the result backend) when the job's affinity
    excludes this worker, and Celery's Ignore when the attempt already ended or is held
    by another delivery - nothing is executed in either case.
    """
    profile = PROFILE
    if profile is None:
        raise Refused("refused: this worker has no Hydra profile (is hydra.worker loaded?)",
                      {"status": "failed", "error": "worker has no Hydra profile"})
    reason = mismatch(Requirements.from_message(kwargs), profile)
    if reason:
        error = f"refused by {profile.id}: {reason}"
        raise Refused(error, {"status": "failed", "error": error, "finished_at": utcnow().isoformat(),
                              "worker_id": profile.id})
    runs = runs or RunStore()
    try:
        wait_for_store(lambda: runs.claim(run_id, message=kwargs, worker_id=profile.id, pid=os.getpid(),
                                          incarnation=INCARNATION))
    except RunEnded as exc:
        try:
            Registry().add_load(profile.id, -1)
        except RedisError:
            pass
        log.info("superseded message ignored", extra={"event": "run.superseded", "run_id": run_id,
                                                       "worker": profile.id, "reason": str(exc)})
        raise Ignore(str(exc)) from None
