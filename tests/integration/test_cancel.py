"""Cancel on the real stack: a running command's whole tree dies within 2 s; a queued or
pending run never starts; a lost attempt whose cancel was requested ends cancelled."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import psutil

from hydra.store.runs import RunStore
from hydrastack import WorkerSpec
from tests.helpers import submit, unique, wait_run, wait_ticks, wait_until


def _alive(marker: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]


def test_cancel_kills_a_running_tree_within_two_seconds(api, stack):
    marker = f"{os.getpid() % 1000}.{int(time.time() * 1000) % 100000}"
    # a child in the background, a grandchild, and a process that ignores SIGTERM (needs SIGKILL)
    command = (
        f"echo started; sleep 4{marker} & bash -c 'sleep 4{marker}' & bash -c \"trap '' TERM; sleep 4{marker}\" & wait"
    )
    created = submit(api, command, timeout=60)
    wait_run(created["run_id"], statuses=["running"])
    wait_until(lambda: len(_alive(f"sleep 4{marker}")) >= 4, 20, message="the whole tree is up")

    asked = datetime.now(UTC)
    response = api.post(f"/runs/{created['run_id']}/cancel")
    assert response.status_code == 202 and response.json["cancel_requested_at"]

    run = wait_run(created["run_id"], timeout=20)
    assert run.status == "cancelled" and run.outcome == "cancelled"
    assert run.stdout == "started\n"  # the output it had produced is kept
    assert run.finished_at - asked < timedelta(seconds=2)
    assert not _alive(f"sleep 4{marker}")
    assert api.get(f"/jobs/{created['job_id']}").json["status"] == "cancelled"
    assert api.post(f"/runs/{created['run_id']}/cancel").status_code == 409  # already ended


def test_a_cancelled_queued_run_never_starts(api, stack, worker_factory, shared):
    tag = unique("cq").lower()
    worker_factory(WorkerSpec(unique("cq"), f"os.linux,tag.{tag}", concurrency=1))
    affinity = {"os": ["linux"], "tags": [tag]}
    blocker = submit(api, "sleep 1.5", affinity=affinity)
    wait_run(blocker["run_id"], statuses=["running"])
    marker = shared / "ran"
    queued = submit(api, f"touch {marker}", affinity=affinity)
    assert queued["status"] == "queued"

    response = api.post(f"/runs/{queued['run_id']}/cancel")
    assert response.status_code == 200 and response.json["status"] == "cancelled"
    assert wait_run(blocker["run_id"]).status == "succeeded"
    follower = submit(api, "echo after", affinity=affinity)  # the worker went past the cancelled message
    assert wait_run(follower["run_id"]).status == "succeeded"
    run = RunStore().get(queued["run_id"])
    assert run.status == "cancelled" and run.started_at is None and not marker.exists()


def test_a_cancelled_delayed_run_never_starts(api, stack, shared):
    marker = shared / "ran"
    at = datetime.now(UTC) + timedelta(seconds=1.5)
    created = submit(api, f"touch {marker}", scheduled_at=at.isoformat())
    assert created["status"] == "scheduled"
    assert api.post(f"/runs/{created['run_id']}/cancel").json["status"] == "cancelled"
    wait_until(lambda: datetime.now(UTC) > at, 5, message="its time to pass")
    wait_ticks(4)  # controller ticks past its time: a due run would have been published
    run = RunStore().get(created["run_id"])
    assert run.status == "cancelled" and run.started_at is None and not marker.exists()


def test_a_lost_attempt_with_a_cancel_request_ends_cancelled_without_failover(api, stack, worker_factory):
    """The worker running a run dies before it could act on the cancel: the controller's
    failover records that attempt ``lost``, which becomes ``cancelled`` - and no new attempt."""
    tag = unique("doomed").lower()
    spec = worker_factory(WorkerSpec(tag, f"os.linux,tag.{tag}", concurrency=1))
    marker = f"{os.getpid() % 1000}.{int(time.time() * 1000) % 100000}"
    created = submit(api, f"sleep 2{marker}", retries=2, affinity={"os": ["linux"], "tags": [tag]})
    run = wait_run(created["run_id"], statuses=["running"], timeout=30)
    try:
        frozen = [psutil.Process(stack.pid(spec.process_name))]
        frozen += frozen[0].children(recursive=True)
        for proc in frozen:  # worker, pool process and command: nobody acts on the cancel
            proc.send_signal(signal.SIGSTOP)
        response = api.post(f"/runs/{run.id}/cancel")
        assert response.status_code == 202  # the start fence is the frozen worker's
        ended = wait_run(run.id, timeout=30)  # the controller declares the worker lost
        assert ended.status == "cancelled" and ended.outcome == "lost"
        assert ended.decision == "cancel requested" and ended.ended_by.startswith("controller@")
        wait_ticks(4)
        assert [r.id for r in RunStore().for_job(created["job_id"])] == [run.id]  # no failover attempt
    finally:
        stack.kill(spec.process_name)
        for proc in _alive(f"sleep 2{marker}"):  # the command of the killed worker
            proc.kill()
