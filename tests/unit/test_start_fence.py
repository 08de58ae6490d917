"""The start fence decides alone whether a worker may run an attempt (hydra.store.fences): every
ender but the worker that claimed it takes the start fence first (a *hold*), so a claim reads
no end fence unless its insert fails; and a run's record says whether it has a flow record, so
a worker skips ``run_flows`` for a run that has none (hydra.store.flows)."""

from __future__ import annotations

import threading
from datetime import timedelta

import mongomock
import pytest

from hydra import clock, names
from hydra.control.cancel import cancel_run
from hydra.control.failover import Failover
from hydra.control.lease import ControllerLease
from hydra.control.sweeps import HELD_GRACE, Sweeps
from hydra.dispatch.attempts import end_attempt, end_unrunnable
from hydra.errors import RunEnded
from hydra.model.outcome import Outcome
from hydra.model.spec import load_job
from hydra.settings import get_settings
from hydra.store import flows as flow_module
from hydra.store.flows import FlowStore
from tests.unit.test_canvas import sig


def queued(memory, **body):
    """A job whose first run is queued on cpu1, its message sent; (job, run id, message)."""
    memory.worker("cpu1")
    job = memory.pipeline.jobs.create(load_job({"name": "j", "user": "rich", "command": "true", **body}))
    where = memory.pipeline.dispatch(job)
    return memory.pipeline.jobs.get(job.id), where.run_id, memory.app.sent[-1].kwargs


@pytest.fixture
def reads(monkeypatch):
    """(collection, _id) of every ``find_one`` by the code under test."""
    seen: list[tuple[str, object]] = []
    real = mongomock.collection.Collection.find_one

    def spy(self, filter=None, *args, **kwargs):
        seen.append((self.name, (filter or {}).get("_id")))
        return real(self, filter, *args, **kwargs)

    monkeypatch.setattr(mongomock.collection.Collection, "find_one", spy)
    return seen


def lost(memory, job, run_id):
    return end_attempt(
        run_id,
        Outcome(status="lost", worker_id="cpu1@host", error="worker cpu1@host vanished"),
        by="controller",
        job=job,
        attempt=1,
        started=False,
        pipeline=memory.pipeline,
    )


ENDERS = {
    "the controller's lost (its worker vanished)": lost,
    "a refusal": lambda memory, job, run_id: memory.pipeline.runs.refuse(
        run_id, "refused by gpu1@host: no gpu", by="gpu1@host", end_it=True
    ),
    "a dead letter (its message vanished too often)": lambda memory, job, run_id: end_unrunnable(
        run_id, "its message vanished, 4 times", job=job, by="controller", pipeline=memory.pipeline
    ),
    "a cancel": lambda memory, job, run_id: cancel_run(run_id, by="alice", pipeline=memory.pipeline),
}


@pytest.mark.parametrize("ender", list(ENDERS))
def test_an_end_before_any_start_holds_the_start_fence_and_no_claim_runs_it(memory, ender):
    job, run_id, message = queued(memory)
    ENDERS[ender](memory, job, run_id)
    start = memory.pipeline.runs.start_of(run_id)
    assert start is not None and start.worker_id is None  # a hold: no worker holds it
    with pytest.raises(RunEnded, match="already ended"):
        memory.pipeline.runs.claim(run_id, message=message, worker_id="cpu1@host")
    run = memory.pipeline.runs.get(run_id)
    assert run.run_status.is_terminal and run.started_at is None  # never shown running
    assert memory.pipeline.jobs.get(job.id).status != "running"


def test_a_claim_reads_no_end_fence_when_its_insert_wins(memory, reads):
    _, run_id, message = queued(memory)
    reads.clear()
    memory.pipeline.runs.claim(run_id, message=message, worker_id="cpu1@host")
    assert reads == []  # the start insert alone decided
    assert memory.pipeline.runs.get(run_id).status == "running"


def test_a_claim_meeting_a_hold_whose_end_is_not_written_yet_refuses_and_shows_no_run(memory, reads):
    job, run_id, message = queued(memory)
    assert memory.pipeline.runs.hold(run_id, by="controller")  # an ender, between its two inserts
    reads.clear()
    with pytest.raises(RunEnded, match="held by controller"):
        memory.pipeline.runs.claim(run_id, message=message, worker_id="cpu1@host")
    assert reads == [("run_fences", names.fence_id(run_id, "start")), ("run_fences", names.fence_id(run_id, "end"))]
    run = memory.pipeline.runs.get(run_id)
    assert (run.status, run.worker_id) == ("queued", "cpu1@host")  # queued there, not running: the hold is no start
    assert memory.pipeline.jobs.get(job.id).status == "queued"


def test_a_claim_meeting_an_ended_hold_reapplies_the_end_only_when_the_record_misses_it(memory):
    job, run_id, message = queued(memory)
    lost(memory, job, run_id)
    runs = memory.pipeline.runs
    runs._collection.update_one({"_id": run_id}, {"$set": {"status": "queued"}})  # its ender died before this
    with pytest.raises(RunEnded, match="already ended as lost"):
        runs.claim(run_id, message=message, worker_id="cpu1@host")
    assert runs.get(run_id).status == "lost"
    # a replay once the job ran again: the end is in the record, the job keeps showing its newer run
    memory.pipeline.jobs._collection.update_one(
        {"_id": job.id}, {"$set": {"last_run_id": "newer", "status": "running"}}
    )
    with pytest.raises(RunEnded, match="already ended as lost"):
        runs.claim(run_id, message=message, worker_id="cpu1@host")
    assert memory.pipeline.jobs._collection.find_one({"_id": job.id})["last_run_id"] == "newer"


def test_a_second_delivery_meets_the_workers_start_and_reads_no_end(memory, reads):
    _, run_id, message = queued(memory)
    memory.pipeline.runs.claim(run_id, message=message, worker_id="cpu1@host")
    reads.clear()
    with pytest.raises(RunEnded, match="already held by cpu1@host"):
        memory.pipeline.runs.claim(run_id, message=message, worker_id="cpu2@host")
    assert reads == [("run_fences", names.fence_id(run_id, "start"))]


def test_the_worker_holding_the_start_ends_without_a_hold_and_any_other_end_tries_one(memory, monkeypatch):
    job, run_id, message = queued(memory)
    runs = memory.pipeline.runs
    runs.claim(run_id, message=message, worker_id="cpu1@host")
    holds: list[str] = []
    real = type(runs).hold
    monkeypatch.setattr(type(runs), "hold", lambda self, rid, *, by: holds.append(by) or real(self, rid, by=by))
    outcome = Outcome(status="succeeded", returncode=0, worker_id="cpu1@host")
    assert end_attempt(run_id, outcome, by="cpu1@host", job=job, attempt=1, pipeline=memory.pipeline, holding=True)
    assert holds == []
    # the controller's late lost: its hold fails (the worker's start is there), and so does its end
    assert lost(memory, job, run_id) is None and holds == ["controller"]
    start = runs.start_of(run_id)
    assert start.worker_id == "cpu1@host" and runs.get(run_id).status == "succeeded"


def test_a_hold_whose_end_never_came_is_ended_by_the_sweep_after_its_grace(memory):
    _, run_id, message = queued(memory, retries=0)
    runs = memory.pipeline.runs
    assert runs.hold(run_id, by="controller")  # and then the controller died
    lease = ControllerLease("controller-b", ttl=5.0, tick=0.5, registry=memory.registry)
    assert lease.hold()
    sweeps = Sweeps(memory.pipeline, get_settings(), lease, threading.Event(), name="controller-b")
    sweeps.sent.add(run_id, clock.epoch() - get_settings().queued_bound - 1)
    assert sweeps.revive_vanished() == 0  # within its grace: looked at again
    assert runs.get(run_id).status == "queued"
    fences = runs._fences
    fences.update_one({"_id": names.fence_id(run_id, "start")}, {"$set": {"at": clock.utcnow() - HELD_GRACE}})
    sweeps.sent.add(run_id, clock.epoch() - get_settings().queued_bound - 1)
    assert sweeps.revive_vanished() == 1
    ended = runs.get(run_id)
    assert ended.ended_by == "controller-b" and "held by controller" in ended.error
    assert ended.outcome == "lost" or ended.status == "lost"  # an attempt that never ran: its policy decides
    with pytest.raises(RunEnded):
        runs.claim(run_id, message=message, worker_id="cpu1@host")


# -- the flow record ----------------------------------------------------------------------------


def test_a_run_says_whether_it_has_a_flow_record(memory):
    _, plain, _ = queued(memory)
    assert memory.pipeline.runs.recorded_start(plain)[1] is False
    memory.pipeline.accept((), {"command": "echo one", "user": "u"}, {"task_id": "with-flow"})
    assert FlowStore().find("with-flow") is not None
    assert memory.pipeline.runs.recorded_start("with-flow")[1] is True
    memory.pipeline.runs._collection.update_one({"_id": plain}, {"$unset": {"flow": ""}})  # by an older Hydra
    assert memory.pipeline.runs.recorded_start(plain)[1] is None
    assert memory.pipeline.runs.recorded_start("nope") is None


def test_a_retry_and_a_canvas_step_say_they_have_a_flow_record(memory):
    memory.worker("gpu1", tags={"gpu"})
    memory.pipeline.accept(
        (), {"command": "exit 1", "user": "u", "retries": 1}, {"task_id": "first", "link": sig("echo after", "a1")}
    )
    job = memory.pipeline.jobs.get(memory.pipeline.runs.get("first").job_id)
    memory.pipeline.runs.claim("first", message=memory.app.sent[-1].kwargs, worker_id="gpu1@host")
    decision = end_attempt(
        "first", Outcome(status="failed"), by="gpu1@host", job=job, attempt=1, pipeline=memory.pipeline, holding=True
    )
    assert decision.status.value == "retrying"
    [retry] = [r for r in memory.pipeline.runs.for_job(job.id) if r.id != "first"]
    assert FlowStore().find(retry.id).root == "first"  # handed over, before the retry was recorded
    assert memory.pipeline.runs.recorded_start(retry.id)[1] is True
    end_attempt(retry.id, Outcome(status="succeeded"), by="gpu1@host", job=job, attempt=2, pipeline=memory.pipeline)
    assert memory.pipeline.runs.recorded_start("a1")[1] is True  # the step its final end started
    assert FlowStore().read_at_start("a1", recorded=True).started_by.runs == (retry.id,)


@pytest.mark.parametrize("recorded, reads_flow", [(False, False), (True, True), (None, True)])
def test_the_worker_reads_the_flow_record_unless_its_run_says_it_has_none(memory, reads, recorded, reads_flow):
    reads.clear()
    assert FlowStore().read_at_start("r1", recorded=recorded) is None
    assert (("run_flows", "r1") in reads) == reads_flow
    reads.clear()
    assert FlowStore().first("r1") is None  # kept for its end either way: no second read
    assert reads == []


def test_what_begins_a_flow_is_forgotten_once_the_run_is_recorded():
    flow_module._note_begun("r-x")
    assert flow_module.begun("r-x") and not flow_module.begun("r-x")
    for n in range(flow_module._BEGUN_MAX + 5):
        flow_module._note_begun(f"r-{n}")
    assert len(flow_module._BEGUN) == flow_module._BEGUN_MAX and not flow_module.begun("r-0")
    flow_module._BEGUN.clear()


def test_a_held_start_is_not_running_in_job_listings(memory):
    job, run_id, _ = queued(memory)
    memory.pipeline.runs.hold(run_id, by="cancel:alice")
    assert memory.pipeline.jobs.find(job.id).status == "queued"
    assert memory.pipeline.runs.find_many([run_id])[run_id].status == "queued"
    assert clock.utcnow() - timedelta(seconds=1) < clock.aware(memory.pipeline.runs.start_of(run_id).at)


def test_a_gone_workers_run_held_by_an_ender_that_died_is_ended_lost_not_skipped(memory):
    _, run_id, _ = queued(memory)
    assert memory.pipeline.runs.hold(run_id, by="controller-a")  # and then controller-a died
    failover = Failover(memory.app, pipeline=memory.pipeline, identity="controller-b")
    failover.worker_gone("cpu1@host", goodbye=False, reason="went offline")
    run = memory.pipeline.runs.get(run_id)
    assert (run.outcome, run.ended_by) == ("lost", "controller-b")  # its hold is no worker's start
