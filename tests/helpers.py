"""Helpers for integration tests: waiting on real state, submitting jobs."""

from __future__ import annotations

import uuid

from hydra.broker.registry import Registry
from hydra.model.records import Run
from hydra.model.status import TERMINAL, RunStatus
from hydra.store.runs import RunStore
from hydrastack.waiting import wait_until  # the one poller, shared with the bench


def wait_workers_online(worker_ids: list[str], timeout: float = 30.0) -> None:
    registry = Registry()

    def online():
        records = registry.records()
        return all(records.get(w) and records[w].status == "online" for w in worker_ids)

    wait_until(online, timeout, message=f"workers {worker_ids} online")


def wait_ticks(count: int, timeout: float | None = None) -> None:
    """Wait until the leading controller has completed ``count`` more passes (ticks) than
    when called: a bounded wait that shows the controller had its chances to act. The bound
    (by default 15 s and 2 s a tick) is for a machine whose cores are busy, where a tick of
    0.25 s can take seconds; the wait ends as soon as the ticks are done."""
    timeout = 15.0 + 2.0 * count if timeout is None else timeout
    registry = Registry()
    target = registry.ticks() + count
    wait_until(lambda: registry.ticks() >= target, timeout, message=f"{count} more controller ticks")


def wait_run(run_id: str, statuses=TERMINAL, timeout: float = 30.0) -> Run:
    """The run's record once its status is one of ``statuses``."""
    store = RunStore()
    wanted = {RunStatus(s) for s in statuses}

    def reached():
        run = store.find(run_id)
        return run if run and run.run_status in wanted else None

    return wait_until(reached, timeout, message=f"run {run_id} to reach {sorted(s.value for s in wanted)}")


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def job_body(command: str, **overrides) -> dict:
    body = {
        "name": unique("job"),
        "user": "tester",
        "affinity": {"os": ["linux"], "tags": []},
        "command": command,
        "shell": "bash",
        "retries": 0,
        "timeout": 30,
    }
    body.update(overrides)
    return body


def submit(api, command: str, **overrides) -> dict:
    response = api.post("/jobs/", json=job_body(command, **overrides))
    assert response.status_code == 201, response.json
    return response.json
