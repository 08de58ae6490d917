"""A worker that keeps running jobs keeps its size: its pool processes collect every child
(no zombie, e.g. bubblewrap's init, which the sandbox's monitor leaves behind) and hold no
more open files after a few hundred runs than after a warm-up. The worker runs at the stack's
real isolation settings (root: another OS user, a cgroup and a bubblewrap sandbox per run).
``make bench-soak`` measures the same, and memory, over 5,000 runs."""

from __future__ import annotations

import os

import psutil
import pytest

from hydrastack import WorkerSpec
from tests.helpers import submit, unique, wait_run, wait_until

#: Open descriptors the worker's processes (main and pool, summed) may gain between the
#: warm-up and the end: connection pools that open one more socket under a burst. A leak of
#: one per run would show as hundreds.
FD_MARGIN = 8
WARM_UP = 40
RUNS = 200


def _processes(pid: int) -> tuple[psutil.Process, list[psutil.Process]]:
    main = psutil.Process(pid)
    return main, main.children()


def _zombies(pools: list[psutil.Process]) -> list[int]:
    return [child.pid for pool in pools for child in pool.children() if child.status() == psutil.STATUS_ZOMBIE]


def _quiet(pools: list[psutil.Process]) -> bool:
    """No pool process has a live child left: each run's processes are gone."""
    return not any(child.status() != psutil.STATUS_ZOMBIE for pool in pools for child in pool.children())


def _run_jobs(api, tag: str, count: int) -> None:
    affinity = {"os": ["linux"], "tags": [tag]}
    created = [submit(api, "true" if i % 2 else "echo hi", affinity=affinity) for i in range(count)]
    for job in created:
        assert wait_run(job["run_id"], timeout=120).status == "succeeded"


@pytest.mark.skipif(os.geteuid() != 0, reason="the stack's workers isolate commands only as root")
def test_a_worker_leaves_no_zombie_and_no_open_file_behind_its_runs(api, stack, worker_factory):
    tag = unique("leak").lower()
    spec = worker_factory(WorkerSpec(unique("leak"), f"os.linux,tag.{tag}", concurrency=2))
    main, pools = _processes(stack.pid(spec.process_name))
    assert len(pools) == 2

    _run_jobs(api, tag, WARM_UP)
    wait_until(lambda: _quiet(pools), 10, message="the warm-up's processes gone")
    assert _zombies(pools) == []
    before = sum(proc.num_fds() for proc in (main, *pools))

    _run_jobs(api, tag, RUNS)
    wait_until(lambda: _quiet(pools), 10, message="the runs' processes gone")
    assert _zombies(pools) == []  # before the reaper: one bubblewrap zombie per run
    after_main, after_pools = _processes(main.pid)
    assert {p.pid for p in after_pools} == {p.pid for p in pools}  # not recycled: the same pool processes
    after = sum(proc.num_fds() for proc in (after_main, *after_pools))
    assert after <= before + FD_MARGIN, f"open files grew from {before} to {after} over {RUNS} runs"
