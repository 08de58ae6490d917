"""Priorities on the real stack: with a backlog on one worker, higher priority starts first."""

from __future__ import annotations

from hydrastack import WorkerSpec
from tests.helpers import submit, unique, wait_run


def test_high_priority_overtakes_a_low_priority_backlog(api, stack, worker_factory):
    tag = unique("prio").lower()
    worker = worker_factory(WorkerSpec(unique("prio"), f"os.linux,tag.{tag}", concurrency=1))
    affinity = {"os": ["linux"], "tags": [tag]}
    blocker = submit(api, "sleep 2", affinity=affinity)
    wait_run(blocker["run_id"], statuses=["running"])  # the worker's only slot is busy

    lows = [submit(api, "echo low", affinity=affinity, priority=10)["run_id"] for _ in range(3)]
    high = submit(api, "echo high", affinity=affinity, priority=90)["run_id"]
    assert all(wait_run(r).worker_id == worker.node for r in [*lows, high])

    started = {r: wait_run(r).started_at for r in [*lows, high]}
    assert started[high] < min(started[r] for r in lows)
    # and the lows keep their submission order among themselves (FIFO within a level)
    assert [started[r] for r in lows] == sorted(started[r] for r in lows)
