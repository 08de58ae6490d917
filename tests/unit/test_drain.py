"""Draining a worker: the placement rules (pure), the router on a registry that holds a drain,
the verbs' rights, what is stored where, and the leading controller's copy from MongoDB to
Redis (on mongomock and fakeredis; tests/integration/test_drain.py runs it on the real stack)."""

from __future__ import annotations

import pytest

from hydra import names
from hydra.control import drain, verbs
from hydra.control.access import Reader
from hydra.control.drain import DrainKeeper
from hydra.errors import Forbidden, InvalidRequest, NotFound
from hydra.model.access import Principal, Role
from hydra.model.affinity import Requirements, WorkerProfile, explain, verdicts
from hydra.model.priority import level_keys
from hydra.model.spec import load_job
from hydra.model.status import RunStatus
from hydra.store.audit import AuditStore
from hydra.store.drains import DrainStore
from hydra.store.workers import WorkerStore, WorkerView

ROOT = Principal(user="rich", roles={"*": Role.ADMIN}, act_as=frozenset({"*"}), via="token:test")
OPERATOR = Principal(user="opal", roles={"*": Role.OPERATOR}, via="token:test")
TEAM_OPERATOR = Principal(user="tom", roles={"team-a": Role.OPERATOR}, via="token:test")
TEAM_VIEWER = Principal(user="vic", roles={"team-a": Role.VIEWER}, via="token:test")
OUTSIDER = Principal(user="otto", roles={"team-b": Role.ADMIN}, via="token:test")


def linux(name: str, *tags: str) -> WorkerProfile:
    return WorkerProfile(id=name, os="linux", tags=frozenset(tags))


# -- the rules (pure) --------------------------------------------------------------------------


def test_a_job_only_a_drained_worker_fits_waits_with_the_reason_draining():
    req = Requirements(user="u", tags=frozenset({"gpu"}))
    reason = explain(req, [linux("cpu1")], drained=[linux("gpu1", "gpu")])
    assert reason.startswith("draining: gpu1 is draining")
    # a drained worker that would not fit anyway is no reason to wait for an undrain
    reason = explain(req, [linux("cpu1")], drained=[linux("cpu2")])
    assert not reason.startswith("draining") and "cpu2 lacks tag gpu" in reason


def test_the_placement_explanation_says_a_drained_worker_takes_no_new_runs():
    req = Requirements(user="u")
    found = verdicts(req, [(linux("a"), True), (linux("b"), True)], {"a": 0, "b": 5}, drained={"a"})
    by_id = {v.worker_id: v for v in found}
    assert by_id["a"].draining and not by_id["a"].eligible and not by_id["a"].chosen
    assert "a is draining" in by_id["a"].text
    assert by_id["b"].chosen  # more loaded, but the only one that takes runs


# -- the router ---------------------------------------------------------------------------------


def test_the_router_places_nothing_on_a_drained_worker(memory):
    gpu1 = memory.worker("gpu1", tags=["gpu"])
    gpu2 = memory.worker("gpu2", tags=["gpu"])
    message = {"user": "u", "affinity": {"tags": ["gpu"]}}
    memory.registry.set_drained(gpu1.id, True)
    memory.registry.forget_cache()
    assert {memory.pipeline.router.place(message).worker.id for _ in range(5)} == {gpu2.id}
    memory.registry.set_drained(gpu2.id, True)
    memory.registry.forget_cache()
    placement = memory.pipeline.router.place(message)
    assert placement.worker is None and placement.reason.startswith("draining: ")
    memory.registry.set_drained(gpu1.id, False)
    memory.registry.forget_cache()
    assert memory.pipeline.router.place(message).worker.id == gpu1.id


def test_a_submitted_job_no_undrained_worker_fits_is_pending_with_the_reason(memory):
    gpu1 = memory.worker("gpu1", tags=["gpu"])
    memory.worker("cpu1")
    WorkerStore().put(WorkerView(id=gpu1.id, os="linux", tags=["gpu"]))
    drain.drain(ROOT, gpu1.id, reason="kernel update")
    memory.registry.forget_cache()
    body = {"name": "n", "user": "rich", "command": "true", "affinity": {"tags": ["gpu"]}}
    _job, run, _ = verbs.submit(load_job(body), actor=ROOT, pipeline=memory.pipeline)
    assert run.status == RunStatus.PENDING
    assert run.reason.startswith("draining: ") and gpu1.id in run.reason
    assert memory.queue_of(run.run_id) == names.PENDING_QUEUE


# -- the verbs --------------------------------------------------------------------------------


@pytest.fixture
def views(memory):
    """Two workers in the workers view: one serving every namespace, one serving team-a only."""
    store = WorkerStore()
    store.put(WorkerView(id="all@host", os="linux"))
    store.put(WorkerView(id="team@host", os="linux", namespaces=["team-a"]))
    return store


def test_drain_is_stored_copied_for_the_router_shown_and_audited(memory, views):
    found = drain.drain(OPERATOR, "all@host", reason="disk swap")
    assert (found.id, found.by, found.reason) == ("all@host", "opal", "disk swap")
    assert set(DrainStore().all()) == {"all@host"}
    assert memory.registry.drained() == {"all@host"}
    shown = {w.id: w for w in Reader(ROOT).workers_with_load()}
    assert shown["all@host"].drained and shown["all@host"].drained_by == "opal"
    assert shown["all@host"].drain_reason == "disk swap" and shown["all@host"].drained_at is not None
    assert not shown["team@host"].drained
    drain.undrain(OPERATOR, "all@host")
    drain.undrain(OPERATOR, "all@host")  # idempotent
    assert DrainStore().all() == {} and memory.registry.drained() == set()
    actions = [e.action for e in AuditStore().list(namespaces=None, actor=None, target="all@host", limit=10)[0]]
    assert sorted(actions) == ["worker.drain", "worker.undrain"]  # the second undrain changed nothing


def test_draining_needs_the_operator_role_in_every_namespace_the_worker_serves(memory, views):
    drain.drain(TEAM_OPERATOR, "team@host")
    with pytest.raises(Forbidden, match="every namespace it serves"):
        drain.drain(TEAM_OPERATOR, "all@host")  # it serves every namespace: an operator of '*' only
    with pytest.raises(Forbidden):
        drain.undrain(TEAM_VIEWER, "team@host")
    with pytest.raises(NotFound):
        drain.drain(OUTSIDER, "team@host")  # it may not even see the worker
    with pytest.raises(NotFound):
        drain.drain(ROOT, "nobody@host")
    assert set(DrainStore().all()) == {"team@host"}


def test_a_drain_reason_is_bounded(memory, views):
    with pytest.raises(InvalidRequest) as caught:
        drain.drain(ROOT, "all@host", reason="x" * 501)
    assert "reason" in caught.value.errors
    assert DrainStore().all() == {}


# -- the leading controller's part ------------------------------------------------------------------


def test_the_controller_copies_the_drains_from_mongodb_after_redis_lost_them(memory, views):
    drain.drain(ROOT, "all@host")
    memory.redis.delete(names.DRAINED_KEY)  # a Redis flush, or a drain written while Redis was down
    keeper = DrainKeeper(memory.registry)
    assert keeper.keep({}, lambda worker_id: None) is True
    assert memory.registry.drained() == {"all@host"}
    assert keeper.keep({}, lambda worker_id: None) is False  # nothing moved since


def test_the_controller_takes_back_the_queue_of_a_drained_online_worker(memory, views):
    cpu1 = memory.worker("cpu1")
    memory.worker("cpu2")
    WorkerStore().put(WorkerView(id=cpu1.id, os="linux"))
    drain.drain(ROOT, cpu1.id)
    moved: list[str] = []
    keeper = DrainKeeper(memory.registry)
    online = {cpu1.id: cpu1.queue, "cpu2@host": names.worker_queue("cpu2@host")}
    keeper.keep(online, moved.append)
    assert moved == []  # nothing waits in its queue
    memory.redis.lpush(level_keys(cpu1.queue)[0], "a message")
    memory.redis.lpush(level_keys(names.worker_queue("cpu2@host"))[0], "another")
    keeper.keep(online, moved.append)
    assert moved == [cpu1.id]  # the drained one only
    keeper.keep({}, moved.append)
    assert moved == [cpu1.id]  # an offline worker's queue is failover's (hydra.control.gone.GoneWorkers.fail_over)


def test_hydra_worker_still_starts_a_worker_and_drain_is_its_subcommand(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from hydra.cli import main

    started: list[list[str]] = []
    monkeypatch.setattr("os.execve", lambda exe, argv, env: started.append(list(argv)))
    settings = tmp_path / "worker.env"
    settings.write_text("\n")
    settings.chmod(0o600)
    result = CliRunner().invoke(main, ["worker", "--config", str(settings), "-Q", "os.linux", "-c", "2"])
    assert result.exit_code == 0, result.output
    assert started[-1][-6:] == ["hydra", "worker", "-Q", "os.linux", "-c", "2"]
    assert CliRunner().invoke(main, ["worker", "--help"]).exit_code == 0 and started[-1][-1] == "--help"  # Celery's
    shown = CliRunner().invoke(main, ["worker", "drain", "--help"])
    assert shown.exit_code == 0 and "--reason" in shown.output and len(started) == 2
