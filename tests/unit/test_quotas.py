"""Namespaces' quotas at placement, on in-memory stores: the limits, the places a run holds, and
what frees them."""

from __future__ import annotations

from hydra.dispatch.attempts import end_attempt
from hydra.model.access import Principal, Role
from hydra.model.outcome import Outcome
from hydra.model.spec import load_job
from hydra.model.status import RunStatus
from hydra.store.namespaces import NamespaceLimits, NamespaceStore

ROOT = Principal(user="root", roles={"*": Role.ADMIN}, act_as=frozenset({"*"}))


def dispatch(memory, namespace="team-a"):
    job = memory.pipeline.jobs.create(load_job({"name": "q", "user": "u", "command": "true", "namespace": namespace}))
    return job, memory.pipeline.dispatch(job)


def test_a_namespace_at_its_limit_waits_with_the_reason_and_others_do_not(memory):
    memory.worker("w1", concurrency=4)
    NamespaceStore().put(NamespaceLimits(id="team-a", max_running=2), by="t")
    placed = [dispatch(memory)[1] for _ in range(3)]
    assert [p.status for p in placed] == [RunStatus.QUEUED, RunStatus.QUEUED, RunStatus.PENDING]
    assert placed[2].reason == "namespace 'team-a' has 2 runs in flight (max_running 2)"
    assert dispatch(memory, "team-b")[1].status == RunStatus.QUEUED  # another namespace is not held up
    queued, running = memory.pipeline.router.slots.held("team-a")
    assert queued == {placed[0].run_id, placed[1].run_id} and running == set()


def test_max_queued_counts_only_runs_that_have_not_started(memory):
    memory.worker("w1", concurrency=4)
    NamespaceStore().put(NamespaceLimits(id="team-a", max_queued=1), by="t")
    _job, first = dispatch(memory)
    assert dispatch(memory)[1].status == RunStatus.PENDING
    memory.pipeline.runs.claim(first.run_id, message=memory.app.sent[0].kwargs, worker_id="w1@host")
    memory.pipeline.router.slots.started("team-a", first.run_id)
    assert dispatch(memory)[1].status == RunStatus.QUEUED


def test_an_ended_attempt_frees_its_place_once(memory):
    memory.worker("w1", concurrency=4)
    NamespaceStore().put(NamespaceLimits(id="team-a", max_running=1), by="t")
    job, first = dispatch(memory)
    for _ in range(2):  # a late second end frees nothing more
        end_attempt(
            first.run_id, Outcome(status="succeeded"), by="w1@host", job=job, attempt=1, pipeline=memory.pipeline
        )
    assert memory.pipeline.router.slots.held("team-a") == (set(), set())
    assert dispatch(memory)[1].status == RunStatus.QUEUED


def test_the_same_run_placed_twice_holds_one_place(memory):
    memory.worker("w1", concurrency=4)
    NamespaceStore().put(NamespaceLimits(id="team-a", max_running=1), by="t")
    job, first = dispatch(memory)
    message = {"command": "true", "user": "u", "namespace": "team-a", "job_id": job.id, "attempt": 1}
    assert memory.pipeline.router.choose(message, first.run_id).worker is not None


def test_the_controller_frees_places_whose_runs_ended_elsewhere(memory):
    from hydra.control.controller import Controller

    memory.worker("w1", concurrency=4)
    _job, first = dispatch(memory)
    memory.pipeline.runs.finish(first.run_id, Outcome(status="cancelled"), status=RunStatus.CANCELLED, by="x")
    slots = memory.pipeline.router.slots
    assert slots.held("team-a") == (set(), set())  # the end's index script freed it
    slots.hold("team-a", first.run_id, running=False)  # as if that script never reached Redis
    controller = Controller(memory.app, pipeline=memory.pipeline)
    assert controller.sweeps.correct_quotas() == 1
    assert memory.pipeline.router.slots.held("team-a") == (set(), set())
    assert memory.pipeline.router.slots.namespaces() == []


def test_the_quota_sweep_reads_from_mongodb_only_the_runs_the_index_no_longer_files(memory, monkeypatch):
    """Runs the ``active`` hash files as queued or running keep their places without a read;
    an ended run (not filed there) is read by ``_id`` and its lost release made good."""
    from hydra.control.controller import Controller
    from hydra.store.runs import RunStore

    memory.worker("w1", concurrency=4)
    (_, waiting), (_, started), (_, ended) = dispatch(memory), dispatch(memory), dispatch(memory)
    memory.pipeline.runs.claim(started.run_id, message=memory.app.sent[1].kwargs, worker_id="w1@host")
    memory.pipeline.runs.finish(ended.run_id, Outcome(status="cancelled"), status=RunStatus.CANCELLED, by="x")
    memory.pipeline.router.slots.hold("team-a", ended.run_id, running=False)  # as if the end's script was lost
    read: list[str] = []
    real = RunStore.find
    monkeypatch.setattr(RunStore, "find", lambda self, run_id: read.append(run_id) or real(self, run_id))
    controller = Controller(memory.app, pipeline=memory.pipeline)
    assert controller.sweeps.correct_quotas() == 1
    assert read == [ended.run_id]
    assert memory.pipeline.router.slots.held("team-a") == ({waiting.run_id}, {started.run_id})


def test_the_quota_sweep_reads_every_held_run_while_the_indexes_are_not_built(memory):
    from hydra.broker.index import Index
    from hydra.control.controller import Controller

    memory.worker("w1", concurrency=4)
    (_, kept), (_, ended) = dispatch(memory), dispatch(memory)
    memory.pipeline.runs.finish(ended.run_id, Outcome(status="cancelled"), status=RunStatus.CANCELLED, by="x")
    memory.pipeline.router.slots.hold("team-a", ended.run_id, running=False)  # as if the end's script was lost
    Index().redis.hset(Index.active_key("team-a"), ended.run_id, "queued|w1@host|1||0|j")  # stale entry
    Index().unbuild()
    assert Controller(memory.app, pipeline=memory.pipeline).sweeps.correct_quotas() == 1  # MongoDB decides
    assert memory.pipeline.router.slots.held("team-a") == ({kept.run_id}, set())


def test_a_granted_place_adds_the_load_in_the_same_step_and_a_refused_one_adds_none(memory):
    """The quota place and the worker's load are one script (hydra.broker.quotas): the load
    hash and the worker's load group move only with a granted place."""
    from hydra import names

    memory.worker("w1", concurrency=4)
    NamespaceStore().put(NamespaceLimits(id="team-a", max_running=1), by="t")
    assert dispatch(memory)[1].status == RunStatus.QUEUED
    assert dispatch(memory)[1].status == RunStatus.PENDING  # at its limit: refused
    assert memory.registry.inflight(["w1@host"]) == {"w1@host": 1}
    group = memory.redis.hget(names.LOAD_GROUPS_KEY, "w1@host")
    assert memory.redis.zscore(group, "w1@host") == 1  # the router's next choice sees it
