"""Fan-out (``placement.mode: all``): the body's rules, the plan made at a start, runs bound to
their workers (the router and the worker's own check), max_parallel, stop_on_failure, a lost
run that stays lost, and the summary (on mongomock and fakeredis; tests/integration/test_fanout.py
runs it on the real stack with workers killed mid-run)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hydra import clock, names
from hydra.control import verbs
from hydra.control.scheduler import Scheduler
from hydra.dispatch import fanout
from hydra.dispatch.attempts import end_attempt, publish_due
from hydra.errors import InvalidJob
from hydra.model.access import Principal, Role
from hydra.model.affinity import Requirements, WorkerProfile, mismatch
from hydra.model.fanout import Plan, WorkerState, summarize
from hydra.model.outcome import Outcome
from hydra.model.records import Job
from hydra.model.spec import load_job
from hydra.model.status import RunStatus
from hydra.store.fanouts import FanoutStore

ROOT = Principal(user="rich", roles={"*": Role.ADMIN}, act_as=frozenset({"*"}), via="token:test")


def body(**placement) -> dict:
    return {
        "name": "everywhere",
        "user": "rich",
        "command": "apt-get update",
        "affinity": {"tags": ["linux-box"]},
        "placement": {"mode": "all", **placement},
    }


def fleet(memory, *names: str, tags=("linux-box",)):
    return [memory.worker(name, tags=tags) for name in names]


def sent_to(memory) -> dict[str, str]:
    """Run id -> the worker queue its message went to."""
    return {s.options["task_id"]: s.options["queue"] for s in memory.app.sent}


def end(memory, run_id: str, status: str) -> None:
    run = memory.pipeline.runs.get(run_id)
    job = memory.pipeline.jobs.get(run.job_id)
    end_attempt(run_id, Outcome(status=status), by="test", job=job, attempt=run.attempt, pipeline=memory.pipeline)


def latest(memory, job_id: str):
    job = memory.pipeline.jobs.get(job_id)
    return fanout.summary(FanoutStore().plan(memory.pipeline.runs.get(job.last_run_id).fanout_id))


# -- the rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("placement", "field", "message"),
    [
        ({"mode": "some"}, "mode", "Must be one of"),
        ({"mode": "all", "max_parallel": 0}, "max_parallel", "greater than or equal to 1"),
        ({"max_parallel": 2}, "max_parallel", "only with mode all"),
        ({"mode": "one", "stop_on_failure": True}, "stop_on_failure", "only with mode all"),
        ({"mode": "all", "nodes": "*"}, "nodes", "Unknown field"),
    ],
)
def test_a_bad_placement_is_refused_naming_the_field(placement, field, message):
    with pytest.raises(InvalidJob) as caught:
        load_job({**body(), "placement": placement})
    assert message in " ".join(caught.value.errors["placement"][field])


def test_a_bound_run_fits_its_worker_only():
    req = Requirements.from_message({"user": "u", "bound_worker": "b@h"})
    assert mismatch(req, WorkerProfile(id="b@h", os="linux")) is None
    assert "bound to" in mismatch(req, WorkerProfile(id="a@h", os="linux"))


def test_the_summary_groups_the_workers():
    plan = Plan(id="f", job_id="j", workers=["a", "b", "c", "d", "e"], runs={w: f"r-{w}" for w in "abcde"})
    starts = {w: {"state": "started"} for w in "abcd"} | {"e": {"state": "skipped", "reason": "stop_on_failure"}}
    ends = {"a": {"status": "succeeded", "run_id": "r-a"}, "b": {"status": "dead_letter", "run_id": "r-b2"}}
    ends["c"] = {"status": "lost", "run_id": "r-c"}
    found = summarize(plan, starts, ends)
    assert (found.succeeded, found.failed, found.lost, found.not_reached, found.in_progress) == (
        ["a"],
        ["b"],
        ["c"],
        ["e"],
        ["d"],
    )
    assert found.workers[1].run_id == "r-b2" and not found.done and not found.ok


# -- starting a fan-out -------------------------------------------------------------------------------


def test_a_start_runs_on_every_eligible_undrained_worker_each_bound_to_it(memory):
    a, b, c = fleet(memory, "a", "b", "c")
    memory.worker("other")  # lacks the tag
    memory.registry.set_drained(c.id, True)
    job, first, _ = verbs.submit(load_job(body()), actor=ROOT, pipeline=memory.pipeline)
    plan = FanoutStore().plan(first.run_id)
    assert plan.workers == [a.id, b.id] and plan.runs[a.id] == first.run_id
    queues = sent_to(memory)
    for worker in plan.workers:
        run = memory.pipeline.runs.get(plan.runs[worker])
        assert (run.bound_worker, run.fanout_id, run.worker_id) == (worker, plan.id, worker)
        assert queues[run.id] == names.worker_queue(worker)
    message = next(s.kwargs for s in memory.app.sent if s.options["task_id"] == plan.runs[b.id])
    assert message["bound_worker"] == b.id  # in the signed message: the worker checks it too
    assert latest(memory, job.id).in_progress == [a.id, b.id]


def test_max_parallel_starts_the_next_worker_when_a_run_ends(memory):
    a, b, c = fleet(memory, "a", "b", "c")
    job, first, _ = verbs.submit(load_job(body(max_parallel=1)), actor=ROOT, pipeline=memory.pipeline)
    plan = FanoutStore().plan(first.run_id)
    assert list(sent_to(memory)) == [plan.runs[a.id]]
    end(memory, plan.runs[a.id], "succeeded")
    assert list(sent_to(memory)) == [plan.runs[a.id], plan.runs[b.id]]
    end(memory, plan.runs[b.id], "failed")  # keeps going: stop_on_failure is off
    end(memory, plan.runs[b.id], "failed")  # a second end changes nothing
    assert len(sent_to(memory)) == 3
    end(memory, plan.runs[c.id], "succeeded")
    found = latest(memory, job.id)
    assert found.done and (found.succeeded, found.failed) == ([a.id, c.id], [b.id])


def test_stop_on_failure_skips_the_workers_not_started(memory):
    a, b, c = fleet(memory, "a", "b", "c")
    job, first, _ = verbs.submit(
        load_job(body(max_parallel=1, stop_on_failure=True)), actor=ROOT, pipeline=memory.pipeline
    )
    end(memory, first.run_id, "timed_out")
    found = latest(memory, job.id)
    assert found.done and found.failed == [a.id] and found.not_reached == [b.id, c.id]
    assert "stop_on_failure" in found.workers[1].reason
    assert len(memory.app.sent) == 1


def test_a_run_whose_worker_is_lost_ends_lost_and_is_not_moved(memory):
    _a, b = fleet(memory, "a", "b")
    job, first, _ = verbs.submit(load_job(body(max_parallel=1)), actor=ROOT, pipeline=memory.pipeline)
    end(memory, first.run_id, "lost")
    run = memory.pipeline.runs.get(first.run_id)
    assert run.status == RunStatus.LOST and "stays with its worker" in run.decision
    plan = FanoutStore().plan(first.run_id)
    assert list(sent_to(memory)) == [first.run_id, plan.runs[b.id]]  # b's own run, no failover attempt
    assert latest(memory, job.id).workers[0].state == WorkerState.LOST


def test_a_retry_stays_on_its_worker(memory):
    _a, b = fleet(memory, "a", "b")
    job, first, _ = verbs.submit(load_job({**body(), "retries": 1}), actor=ROOT, pipeline=memory.pipeline)
    plan = FanoutStore().plan(first.run_id)
    memory.worker("a", tags=("linux-box",), concurrency=50)  # b now looks far less loaded
    end(memory, plan.runs[b.id], "failed")

    publish_due(memory.pipeline, clock.utcnow() + timedelta(hours=1))
    retry = next(r for r in memory.pipeline.runs.for_job(job.id) if r.retry_of == plan.runs[b.id])
    assert (retry.bound_worker, retry.worker_id) == (b.id, b.id)


def test_a_start_with_no_eligible_worker_ends_failed_with_the_reason(memory):
    fleet(memory, "a", tags=())
    job, first, _ = verbs.submit(load_job(body()), actor=ROOT, pipeline=memory.pipeline)
    run = memory.pipeline.runs.get(first.run_id)
    assert run.status == RunStatus.FAILED and "no eligible online worker" in run.error
    assert latest(memory, job.id).workers == [] and memory.app.sent == []


def test_a_python_caller_cannot_bind_a_message(memory):
    fleet(memory, "a")
    with pytest.raises(InvalidJob) as caught:
        memory.pipeline.accept((), {"command": "true", "user": "rich", "bound_worker": "a@host"}, {})
    assert "bound_worker" in caught.value.errors


def test_every_cron_tick_fans_out_to_the_workers_online_then(memory):
    a, b = fleet(memory, "a", "b")
    job, _, _ = verbs.submit(load_job({**body(), "schedule": "*/5 * * * *"}), actor=ROOT, pipeline=memory.pipeline)
    scheduler = Scheduler(memory.pipeline)
    tick = clock.utcnow().replace(second=0, microsecond=0)
    first = scheduler.fire(memory.pipeline.jobs.get(job.id), tick)
    assert scheduler.fire(memory.pipeline.jobs.get(job.id), tick) is None  # a tick fires once
    assert FanoutStore().plan(first).workers == [a.id, b.id]
    c = memory.worker("c", tags=("linux-box",))
    second = scheduler.fire(memory.pipeline.jobs.get(job.id), tick + timedelta(minutes=5))
    assert FanoutStore().plan(second).workers == [a.id, b.id, c.id]  # chosen at each tick
    assert len(memory.app.sent) == 5


def test_a_worker_ending_a_run_from_its_message_carries_the_fanout_on(memory):
    """A worker has the message, not the stored job: a bound message is a fan-out's run."""
    a, b = fleet(memory, "a", "b")
    job, first, _ = verbs.submit(load_job(body(max_parallel=1)), actor=ROOT, pipeline=memory.pipeline)
    message = memory.app.sent[0].kwargs
    as_carried = Job.from_message(message)
    assert as_carried.placement == {"mode": "all"}
    end_attempt(first.run_id, Outcome(status="lost"), by="a@host", job=as_carried, attempt=1, pipeline=memory.pipeline)
    assert memory.pipeline.runs.get(first.run_id).status == RunStatus.LOST
    found = latest(memory, job.id)
    assert found.lost == [a.id] and found.in_progress == [b.id]
