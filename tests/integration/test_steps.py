"""What follows a run, started by workers that hold no private key, on the real stack.

Celery's ``link``, ``link_error`` and ``chain`` of ``hydra.run_command`` steps are pre-signed
when they are published and started as signed by the worker that ran the step before; what
cannot be pre-signed (another task, a chord) is refused with InvalidJob before anything is
stored or sent. A failover a worker decides is handed to the controller, which signs it.
"""

from __future__ import annotations

import os
import signal

import pytest
from celery import chain, chord, group

from hydra.errors import InvalidJob
from hydra.store.runs import RunStore
from tests.helpers import submit, unique, wait_run, wait_ticks, wait_until


def step(command: str, **body) -> dict:
    return {"command": command, "user": "tester", "name": unique("step"), **body}


def test_linked_steps_start_after_their_task_succeeded(api, stack, shared):
    from hydra import run_command

    ledger = shared / "ledger"
    after_id = "after-" + unique()
    after = run_command.si(**step(f"echo after >> {ledger}")).set(task_id=after_id)
    result = run_command.apply_async(kwargs=step(f"echo first >> {ledger}"), link=after)
    assert wait_run(result.id).status == "succeeded"
    linked = wait_run(after_id, timeout=30)
    assert linked.status == "succeeded" and ledger.read_text() == "first\nafter\n"
    assert api.get(f"/jobs/{linked.job_id}").json["source"] == "python"

    # two of them: Celery starts them as a group
    both = shared / "both"
    ids = ["a-" + unique(), "b-" + unique()]
    links = [run_command.si(**step(f"echo {i} >> {both}")).set(task_id=i) for i in ids]
    run_command.apply_async(kwargs=step("true"), link=links)
    assert [wait_run(i, timeout=30).status for i in ids] == ["succeeded", "succeeded"]
    assert sorted(both.read_text().split()) == sorted(ids)


def test_a_chain_runs_its_steps_in_order_and_stops_at_a_failure(api, stack, shared):
    from hydra import run_command

    ledger = shared / "ledger"
    result = chain(
        run_command.si(**step(f"echo one >> {ledger}")),
        run_command.si(**step(f"echo two >> {ledger}")),
        run_command.si(**step(f"echo three >> {ledger}")),
    ).apply_async()
    last = wait_run(result.id, timeout=60)  # the chain's result is its last step's
    assert last.status == "succeeded" and ledger.read_text() == "one\ntwo\nthree\n"
    assert result.get(timeout=10)["status"] == "succeeded"

    stopped = shared / "stopped"
    broken = chain(
        run_command.si(**step(f"echo one >> {stopped}; exit 3")),
        run_command.si(**step(f"echo two >> {stopped}")),
    ).apply_async()
    first_id = broken.parent.id
    assert wait_run(first_id).status == "failed"
    wait_ticks(2)
    assert RunStore().find(broken.id) is None  # never started: its job is stored, it has no run
    assert stopped.read_text() == "one\n"


def test_an_errback_step_starts_once_its_task_failed_for_good(api, stack, shared):
    from hydra import run_command

    ledger = shared / "ledger"
    result = run_command.apply_async(
        kwargs=step(f"echo failing >> {ledger}; exit 2"), link_error=run_command.si(**step(f"echo cleanup >> {ledger}"))
    )
    assert wait_run(result.id).status == "failed"
    wait_until(lambda: ledger.read_text() == "failing\ncleanup\n", 30, message="the errback ran")


@pytest.mark.parametrize(
    "option, make",
    [
        ("link", lambda rc: {"link": rc.app.signature("celery.accumulate", args=(1,))}),
        ("link_error", lambda rc: {"link_error": rc.app.signature("tasks.cleanup")}),
        ("link", lambda rc: {"link": group(rc.si(**step("echo a")), rc.si(**step("echo b")))}),
        ("chord", lambda rc: {"chord": rc.si(**step("echo body"))}),
        ("link", lambda rc: {"link": rc.si(**step("echo late")).set(countdown=5)}),
    ],
)
def test_what_cannot_be_presigned_is_refused_before_anything_is_stored(api, stack, option, make):
    from hydra import run_command

    name = unique("refused")
    task_id = "refused-" + unique()
    with pytest.raises(InvalidJob) as info:
        run_command.apply_async(kwargs=step("echo never", name=name), task_id=task_id, **make(run_command))
    assert option in info.value.errors, info.value.errors
    assert RunStore().find(task_id) is None
    assert not [j for j in api.get("/jobs/", query_string={"limit": 200}).json if j["name"] == name]


def test_a_chord_is_refused_up_front(api, stack):
    from hydra import run_command

    name = unique("chord")
    with pytest.raises(InvalidJob) as info:
        chord([run_command.si(**step("echo a", name=name))], run_command.si(**step("echo b", name=name))).apply_async()
    assert "chord" in info.value.errors
    assert not [j for j in api.get("/jobs/", query_string={"limit": 200}).json if j["name"] == name]


def test_a_failover_a_worker_decides_is_published_by_the_controller(api, stack, worker_factory, shared):
    """The worker's main process ends an attempt whose pool process died (lost); it holds no
    private key, so the next attempt is recorded as a delayed run due now, which the leading
    controller signs and publishes."""
    from hydrastack import WorkerSpec

    tag = unique("lost").lower()
    worker = worker_factory(WorkerSpec(unique("lost"), f"os.linux,tag.{tag}", concurrency=1))
    once = shared / "once"
    command = f"if [ -e {once} ]; then echo second; else touch {once}; sleep 30; fi"
    created = submit(api, command, affinity={"os": ["linux"], "tags": [tag]}, max_lost=2)
    wait_until(once.exists, 30, message="attempt 1 running its command")
    os.kill(RunStore().start_of(created["run_id"]).pid, signal.SIGKILL)
    first = wait_run(created["run_id"], timeout=30)
    assert first.status == "lost" and first.ended_by == worker.node
    second = wait_until(
        lambda: next((r for r in RunStore().for_job(created["job_id"]) if r.attempt == 2), None),
        20,
        message="the failover attempt recorded",
    )
    assert second.retry_of == first.id and second.not_before is not None  # recorded for the controller
    second = wait_run(second.id, timeout=40)
    assert second.status == "succeeded" and second.stdout == "second\n"
