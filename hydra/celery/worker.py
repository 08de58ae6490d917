"""The worker side: a worker's profile, and the check it makes before running anything.

``celery -A hydra worker -Q os.linux,tag.gpu [--allowed-users rich,ana]`` is the whole
instruction to add a machine. At start-up the :class:`HydraProfile` bootstep

* builds the profile: OS and tags from the ``-Q`` queue names, max concurrency from the
  pool size, allowed users from ``--allowed-users`` or ``HYDRA_ALLOWED_USERS`` (comma
  separated; unset or ``*`` = any user), shells found on the machine;
* ends commands a previous process of this worker left running (``hydra.celery.orphans``);
* adds the worker's own queue ``hydra.worker.<nodename>`` to the queues it consumes.

The controller asks each worker for its profile with the ``hydra_profile`` remote-control
command (``celery -A hydra inspect hydra_profile`` shows it too).

Before a task runs, :func:`admit` checks the job against this profile again - a message
published straight to a worker's queue, or routed on a stale registry, is refused and
recorded, never executed - and then claims the attempt (``hydra.store.runs``).
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time

import click
from celery import bootsteps
from celery.exceptions import Ignore
from celery.signals import worker_process_init
from celery.worker.control import inspect_command

from hydra import clock
from hydra.broker.quotas import NamespaceSlots
from hydra.broker.registry import Registry
from hydra.celery import orphans
from hydra.errors import Refused, RunEnded, StoreUnavailable, Unavailable
from hydra.execution.command import available_shells
from hydra.execution.process import enable_subreaper
from hydra.model.affinity import Requirements, WorkerProfile, mismatch, profile_from_queues
from hydra.model.spec import DEFAULT_NAMESPACE
from hydra.settings import get_settings
from hydra.store.runs import RunStore

log = logging.getLogger(__name__)

#: This worker's profile, set at start-up (inherited by forked pool processes).
PROFILE: WorkerProfile | None = None
#: A random token naming this process of the worker (its "incarnation"), likewise inherited. A
#: restarted worker keeps its name - and in a container often its pid - but not this.
INCARNATION: str | None = None

ALLOWED_USERS_OPTION = click.Option(
    ["--allowed-users"],
    default=None,
    help="Comma-separated users whose jobs this worker runs (default: $HYDRA_ALLOWED_USERS, or any user).",
)
NAMESPACES_OPTION = click.Option(
    ["--namespaces"],
    default=None,
    help="Comma-separated namespaces whose jobs this worker runs (default: $HYDRA_NAMESPACES, or all).",
)
#: The ``celery worker`` options Hydra adds.
OPTIONS = (ALLOWED_USERS_OPTION, NAMESPACES_OPTION)


def platform_os() -> str:
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return "linux"


def parse_names(value: str | None) -> frozenset[str] | None:
    """``"rich, ana"`` -> {"rich", "ana"}; None, "" or "*" -> None (any)."""
    if value is None or value.strip() in ("", "*"):
        return None
    return frozenset(u.strip() for u in value.split(",") if u.strip())


class HydraProfile(bootsteps.Step):
    """Worker bootstep: derive the profile and subscribe to the worker's own queue."""

    def __init__(self, worker, allowed_users=None, namespaces=None, **options):
        global PROFILE, INCARNATION
        super().__init__(worker, **options)
        queues = list(worker.app.amqp.queues.consume_from)
        settings = get_settings()
        users = allowed_users if allowed_users is not None else settings.allowed_users
        served = namespaces if namespaces is not None else settings.namespaces
        os_name = platform_os()
        try:
            profile = profile_from_queues(
                worker.hostname,
                queues,
                concurrency=int(worker.concurrency or 1),
                platform_os=os_name,
                allowed_users=parse_names(users),
                namespaces=parse_names(served),
                shells=frozenset(available_shells(os_name)),
            )
        except ValueError as exc:
            raise SystemExit(f"hydra: {exc}") from None
        worker.app.amqp.queues.select_add(profile.queue)
        PROFILE, INCARNATION = profile, secrets.token_hex(8)
        orphans.end_leftovers(profile.id)
        log.info(
            "hydra worker profile",
            extra={"event": "worker.profile", "worker": profile.id, "profile": profile.to_dict()},
        )


@worker_process_init.connect
def _pool_process_init(**_):
    # Orphans of a command (double-forked daemons) reparent to this pool process, so a
    # timeout or cancel can still find and kill them. Not inherited across fork, hence here.
    enable_subreaper()


@inspect_command()
def hydra_profile(state):
    """Hydra profile of this worker (OS, tags, allowed users, max concurrency, shells, queue)."""
    return {"profile": PROFILE.to_dict() if PROFILE else None, "pid": os.getpid(), "incarnation": INCARNATION}


def wait_for_store(fn, *, patience: float = 300.0):
    """Call ``fn``; while MongoDB is unreachable, retry with backoff for up to ``patience`` s
    (a message that arrives during a store outage waits for it instead of failing)."""
    deadline = time.monotonic() + patience
    delay = 0.25
    while True:
        try:
            return fn()
        except StoreUnavailable:
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
        raise Refused(
            "refused: this worker has no Hydra profile (is hydra.worker loaded?)",
            {"status": "failed", "error": "worker has no Hydra profile"},
        )
    reason = mismatch(Requirements.from_message(kwargs), profile)
    if reason:
        error = f"refused by {profile.id}: {reason}"
        raise Refused(
            error,
            {"status": "failed", "error": error, "finished_at": clock.utcnow().isoformat(), "worker_id": profile.id},
        )
    runs = runs or RunStore()
    try:
        wait_for_store(
            lambda: runs.claim(run_id, message=kwargs, worker_id=profile.id, pid=os.getpid(), incarnation=INCARNATION)
        )
    except RunEnded as exc:
        try:
            Registry().add_load(profile.id, -1)
        except Unavailable:
            pass
        log.info(
            "superseded message ignored",
            extra={"event": "run.superseded", "run_id": run_id, "worker": profile.id, "reason": str(exc)},
        )
        raise Ignore(str(exc)) from None
    try:  # its namespace's quota: from queued to running
        NamespaceSlots().started(kwargs.get("namespace") or DEFAULT_NAMESPACE, run_id)
    except Unavailable:  # the controller corrects the quotas from MongoDB
        pass
