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

Only ``hydra.run_command`` runs here (the consumer refuses Celery's built-in tasks and any
other name, ``hydra.celery.consumer``). Before it runs, :func:`admit` checks the message: its
signature over the whole message - embed and headers included - that it carries no canvas
(what follows a run is started from its record, ``hydra.dispatch.continuation``), its schema, this profile (a message published straight to a worker's queue, or
routed on a stale registry), the isolation policy, and its run record - a message that fails
any is refused and recorded, never executed - and then claims the attempt
(``hydra.store.fences``). A worker holds only public keys (``HYDRA_VERIFY_KEYS``): it can tell a
genuine message, and cannot make one.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from typing import NoReturn

import click
from celery import bootsteps
from celery.exceptions import Ignore
from celery.signals import worker_process_init, worker_shutdown
from celery.worker.control import inspect_command

from hydra import clock, names
from hydra.broker.registry import Registry
from hydra.celery import orphans
from hydra.dispatch import canvas, signing
from hydra.dispatch.envelope import Envelope
from hydra.errors import CredentialsRefused, InvalidJob, Refused, RunEnded, StoreUnavailable, Unavailable
from hydra.execution import isolation
from hydra.execution.command import available_shells
from hydra.execution.egress import EgressPolicy
from hydra.execution.reaper import enable_subreaper
from hydra.model.affinity import Requirements, WorkerProfile, mismatch, profile_from_queues
from hydra.model.message import execution_digest, load_message
from hydra.model.status import RunStatus
from hydra.settings import get_settings
from hydra.store import credentials
from hydra.store.runs import RunStore

log = logging.getLogger(__name__)

#: Seconds claiming an attempt may take (its store writes and Redis bookkeeping) before the
#: worker reads its end fence again, rather than start a command the controller has meanwhile
#: failed over (the watchdog's first read comes 2 s later).
SLOW_CLAIM = 1.0

#: This worker's profile, set at start-up (inherited by forked pool processes).
PROFILE: WorkerProfile | None = None
#: A random token naming this process of the worker (its "incarnation"), likewise inherited. A
#: restarted worker keeps its name - and in a container often its pid - but not this.
INCARNATION: str | None = None
#: How this worker isolates commands (hydra.execution.isolation), checked at start-up.
POLICY: isolation.Policy | None = None
#: Where this worker's webhooks may go (hydra.execution.egress).
EGRESS: EgressPolicy | None = None


def get_policy() -> isolation.Policy:
    """This worker's isolation policy (made from the settings when the bootstep did not run)."""
    global POLICY
    if POLICY is None:
        POLICY = isolation.Policy.from_settings(get_settings())
    return POLICY


def slot(worker_id: str) -> str:
    """The name of ``worker_id``'s resources on this host (``hydra.names.worker_slot``)."""
    return names.worker_slot(worker_id, get_settings().broker_url)


def get_egress() -> EgressPolicy:
    global EGRESS
    if EGRESS is None:
        EGRESS = EgressPolicy.from_text(get_settings().webhook_allow)
    return EGRESS


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
        global PROFILE, INCARNATION, POLICY, EGRESS
        super().__init__(worker, **options)
        try:
            keys = signing.require_verifying()
            credentials.check()  # a wrong password stops the worker now, in one line
            POLICY = isolation.Policy.from_settings(get_settings())
            EGRESS = EgressPolicy.from_text(get_settings().webhook_allow)
        except (signing.KeyMissing, CredentialsRefused, isolation.IsolationError, ValueError, OSError) as exc:
            raise SystemExit(f"hydra: {exc}") from None
        if keys.signing:
            log.warning(
                "this worker holds a private signing key: a worker needs only the public keys "
                "(HYDRA_VERIFY_KEYS); whoever takes this host can sign messages every worker runs"
            )
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
                limits=POLICY.can_limit,
            )
        except ValueError as exc:
            raise SystemExit(f"hydra: {exc}") from None
        worker.app.amqp.queues.select_add(profile.queue)
        PROFILE, INCARNATION = profile, secrets.token_hex(8)
        orphans.end_leftovers(slot(profile.id))
        isolation.end_worker_leftovers(POLICY, slot(profile.id))
        log.info(
            "hydra worker profile",
            extra={
                "event": "worker.profile",
                "worker": profile.id,
                "profile": profile.to_dict(),
                "isolation": POLICY.describe(),
            },
        )
        for gap in POLICY.not_enforced():
            log.warning("isolation not enforced on this worker: %s", gap, extra={"event": "worker.isolation_gap"})


@worker_shutdown.connect
def _release(**_):
    # Its cgroup and work directories (empty by now) go with it.
    if POLICY is not None and PROFILE is not None:
        isolation.release_worker(POLICY, slot(PROFILE.id))


@worker_process_init.connect
def _pool_process_init(**_):
    # Orphans of a command (double-forked daemons, bubblewrap's init) reparent to this pool
    # process, so a timeout or cancel can still find and kill them, and its reaper thread
    # collects them. Neither is inherited across fork, hence here.
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


def admit(run_id: str, kwargs: dict, request=None, *, runs: RunStore | None = None) -> dict:
    """Check that this worker may run the message, then claim the attempt; returns the
    message as validated (what the executor runs).

    In order, before anything runs: the signature over the whole message
    (``hydra.dispatch.envelope``: only what Hydra's publish path produced, for this run id,
    with this embed and these headers), that it carries no canvas (``hydra.dispatch.canvas``),
    the schema (the same as a REST body), this worker's profile
    (affinity, users, shells), the isolation policy (the job's OS user and ``cwd``,
    ``hydra.execution.isolation``), and its run record (there is one, and its execution
    digest is this message's; the same read says whether the run has a flow record, kept for
    the task: :func:`recorded_flow`). The request is then marked admitted: the result backend
    records the end of an admitted message (:func:`admitted`). A refusal is recorded (``RunStore.refuse``)
    and raised as Refused, which the result backend leaves alone; nothing follows it (no
    retry, no failover). A duplicate delivery or a replay (the start fence is taken, or the
    attempt ended) is noted on the run and ignored (Celery's Ignore).
    """
    profile = PROFILE
    if profile is None:
        raise Refused(
            "refused: this worker has no Hydra profile (is hydra.worker loaded?)",
            {"status": RunStatus.FAILED.value, "error": "worker has no Hydra profile"},
        )
    runs = runs or RunStore()
    envelope = Envelope.of_request(names.TASK_RUN_COMMAND, run_id, request)
    reason = envelope.verify(getattr(request, signing.HEADER, None) if request is not None else None)
    # A message that is not Hydra's may not end a run Hydra recorded; one Hydra signed may.
    claimed = kwargs.get("job_id") if isinstance(kwargs, dict) and isinstance(kwargs.get("job_id"), str) else None
    if reason is not None:
        _refuse(runs, run_id, profile.id, reason, end_it=False, claimed_job=claimed)
    reason = canvas.refusal(envelope)  # Hydra's messages carry no canvas: what follows a run is in its record
    if reason is not None:
        _refuse(runs, run_id, profile.id, reason, end_it=True, claimed_job=claimed)
    try:
        message = load_message(kwargs)
    except InvalidJob as exc:
        _refuse(runs, run_id, profile.id, f"invalid message: {exc.errors}", end_it=True, claimed_job=claimed)
    reason = mismatch(Requirements.from_message(message), profile)
    if reason:
        _refuse(runs, run_id, profile.id, reason, end_it=True, claimed_job=claimed)
    reason = isolation.refusal(message, get_policy())
    if reason:
        _refuse(runs, run_id, profile.id, reason, end_it=True, claimed_job=claimed)
    recorded = wait_for_store(lambda: runs.recorded_start(run_id))
    if recorded is None:  # Hydra records every run before it sends it: a replay of a pruned run, a step sent early
        _refuse(runs, run_id, profile.id, "no run is recorded for this message", end_it=False, claimed_job=claimed)
    digest, has_flow = recorded
    if digest != execution_digest(message):
        _refuse(
            runs,
            run_id,
            profile.id,
            "the message disagrees with its run record (what it runs is not what was recorded)",
            end_it=True,
            claimed_job=claimed,
        )
    claiming = time.monotonic()
    try:
        wait_for_store(
            lambda: runs.claim(run_id, message=message, worker_id=profile.id, pid=os.getpid(), incarnation=INCARNATION)
        )
    except RunEnded as exc:
        _superseded(runs, run_id, profile.id, str(exc))
    # The claim's Redis work (index, quota place to running, off hydra:sent) was one script in
    # runs.claim (hydra.broker.index.Index.run_claimed); the controller corrects what it missed.
    if time.monotonic() - claiming > SLOW_CLAIM:
        # Redis did not answer (a cut link costs each call its timeout): meanwhile the
        # controller may have seen this worker silent and ended the attempt. Look before
        # the command starts; the watchdog looks again while it runs.
        try:
            end = runs.end_of(run_id)
        except StoreUnavailable:
            end = None
        if end is not None:
            _superseded(runs, run_id, profile.id, f"attempt ended as {end.status} by {end.by} while it was claimed")
    if request is not None:
        request.hydra_admitted = run_id  # the result backend records the end of this message (and only such)
        request.hydra_message = message  # what the task runs: validated once per delivery
        request.hydra_flow = has_flow  # whether it has a flow record to read (Run.flow; None: not said)
    return message


def recorded_flow(run_id: str, request) -> bool | None:
    """What the run record said, when :func:`admit` read it, about the run's flow record
    (``Run.flow``): False - none, nothing to read -, True, or None (not said: read it)."""
    return getattr(request, "hydra_flow", None) if admitted(run_id, request) else None


def admitted(run_id: str, request) -> bool:
    """Whether this process admitted ``request`` as run ``run_id`` (:func:`admit`)."""
    return request is not None and getattr(request, "hydra_admitted", None) == run_id


def admitted_message(run_id: str, request) -> dict:
    """The message :func:`admit` validated for ``request`` as run ``run_id``: the task runs
    it as it is, rather than validate the same kwargs again (a tenth of a pool process's CPU
    per job). Refused (never executed) when this process did not admit the request."""
    message = getattr(request, "hydra_message", None) if admitted(run_id, request) else None
    if not isinstance(message, dict):
        raise Refused(
            f"refused: run {run_id} was not admitted by this worker",
            {"status": RunStatus.FAILED.value, "error": "not admitted"},
        )
    return message


def _superseded(runs: RunStore, run_id: str, worker_id: str, reason: str) -> NoReturn:
    """The attempt ended elsewhere, or another execution holds it: note it, run nothing."""
    try:
        Registry().add_load(worker_id, -1)
    except Unavailable:
        pass
    try:
        runs.note_refusal(run_id, {"at": clock.utcnow(), "by": worker_id, "reason": f"not run again: {reason}"})
    except StoreUnavailable:
        pass
    log.info(
        "superseded message ignored",
        extra={"event": "run.superseded", "run_id": run_id, "worker": worker_id, "reason": reason},
    )
    raise Ignore(reason) from None


def _refuse(runs: RunStore, run_id: str, worker_id: str, reason: str, *, end_it: bool, claimed_job: str | None):
    """Record the refusal of a message, log it, and raise Refused (nothing of it runs)."""
    error = f"refused by {worker_id}: {reason}"
    recorded = wait_for_store(lambda: runs.refuse(run_id, error, by=worker_id, end_it=end_it, claimed_job=claimed_job))
    log.warning(
        "message refused: %s",
        reason,
        extra={"event": "run.refused", "run_id": recorded, "worker": worker_id, "reason": reason},
    )
    raise Refused(
        error,
        {
            "status": RunStatus.FAILED.value,
            "error": error,
            "finished_at": clock.utcnow().isoformat(),
            "worker_id": worker_id,
        },
    )
