"""Failover, timed: ``make bench`` and ``make bench-history`` measure it the same way.

Two one-slot workers share a tag. Each round submits a long job there, SIGKILLs the whole
process tree of the worker that started it, and times the kill -> the next attempt starting
on the other worker (its ``started_at``); then cancels that attempt and restarts the victim.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable

import psutil

from hydrastack import Stack, WorkerSpec
from hydrastack.waiting import wait_until


def failover_workers(prefix: str, tag: str) -> dict[str, WorkerSpec]:
    """The two workers, by the node name they register under."""
    host = socket.gethostname()
    return {f"{prefix}{i}@{host}": WorkerSpec(f"{prefix}{i}", f"os.linux,tag.{tag}", concurrency=1) for i in range(2)}


def kill_tree(stack: Stack, spec: WorkerSpec) -> list[psutil.Process]:
    """SIGKILL a worker's main process and all its descendants; returns them, to wait on."""
    procs = [psutil.Process(stack.pid(spec.process_name))]
    procs += procs[0].children(recursive=True)
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:  # a short-lived child (the sandbox's, say) ended first
            pass
    return procs


def time_failovers(
    stack: Stack,
    workers: dict[str, WorkerSpec],
    kills: int,
    *,
    submit: Callable[[int], dict],
    cancel: Callable[[str], None],
    report: Callable[[int, object, float], None] | None = None,
) -> list[float]:
    """Seconds from each kill to the next attempt's start, ``kills`` rounds. ``submit(k)``
    posts round k's long job (``sleep 120`` on ``workers``' tag) and returns the API's
    answer; ``cancel(run_id)`` ends the next attempt; ``report(k, run, seconds)`` is told
    each round's result."""
    from hydra.broker.registry import Registry
    from hydra.store.jobs import JobStore
    from hydra.store.runs import RunStore

    jobs, runs, registry = JobStore(), RunStore(), Registry()
    for spec in workers.values():
        stack.start_worker(spec)
    delays = []
    for k in range(kills):
        wait_until(
            lambda: all((r := registry.get(w)) and r.status == "online" for w in workers),
            60,
            interval=0.2,
            message=f"{list(workers)} online",
        )
        created = submit(k)
        first = wait_until(
            lambda created=created: (r := runs.find(created["run_id"])) and r.status == "running" and r,
            60,
            interval=0.05,
            message="the job to start",
        )
        victim = workers[first.worker_id]
        procs = kill_tree(stack, victim)
        killed = time.time()

        def next_started(created=created):
            job = jobs.find(created["job_id"])
            if job is None or job.last_run_id in (None, created["run_id"]):
                return None
            run = runs.find(job.last_run_id)
            return run if run and run.started_at else None

        second = wait_until(next_started, 60, interval=0.05, message="the next attempt to start")
        delays.append(second.started_at.timestamp() - killed)
        if report is not None:
            report(k, second, delays[-1])
        cancel(second.id)
        psutil.wait_procs(procs, timeout=10)
        stack.start_worker(victim)
    return delays
