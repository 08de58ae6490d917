"""No message stops a worker or the controller: malformed messages are refused and recorded.

On the real stack: the named shapes that stopped a worker, and a seeded fuzz of random bytes
and mutations of a genuine signed envelope (taken from ``hydra.pending``), pushed straight
into a worker's own queue, its tag queue and ``hydra.pending``, ahead of genuine jobs. Each
message that names a run id (a string ``headers.id``, :func:`tests.poison.named_id`) has
its refusal recorded under that id; the others are logged. The worker stays online and runs
the genuine jobs queued behind the poison, and the controller goes on placing.

``HYDRA_FUZZ_SEED`` picks another seed (the default one is what CI runs).
"""

from __future__ import annotations

import json
import os
import random
from types import SimpleNamespace

import pytest

from hydra import names
from hydra.broker.redis import get_redis
from hydra.broker.registry import Registry
from hydra.model.priority import level_keys
from hydra.store.runs import RunStore
from tests import poison
from tests.helpers import submit, unique, wait_run, wait_until, wait_workers_online

SEED = int(os.environ.get("HYDRA_FUZZ_SEED", "20"))
#: Fuzz cases per destination (a worker's queues, hydra.pending).
CASES = 150


@pytest.fixture(scope="module")
def target(stack):
    """A worker of its own, with a tag only it has: if poison stopped it, no other test would
    lose the shared workers."""
    from hydrastack import WorkerSpec

    tag = unique("poison").lower()
    spec = WorkerSpec(unique("poison"), f"os.linux,tag.{tag}", concurrency=1)
    stack.start_worker(spec)
    wait_workers_online([spec.node])
    yield SimpleNamespace(spec=spec, tag=tag, node=spec.node, log=stack.log_path(spec.process_name))
    stack.stop(spec.process_name, timeout=10)


@pytest.fixture(scope="module")
def genuine(api, stack):
    """A real signed ``hydra.run_command`` envelope, copied from ``hydra.pending``, where its
    job waits for a tag no worker has (it is cancelled afterwards)."""
    created = submit(api, "echo never", affinity={"os": ["linux"], "tags": [unique("nobody").lower()]})
    redis = get_redis()

    def find():
        for key in level_keys(names.PENDING_QUEUE):
            for raw in redis.lrange(key, 0, -1):
                if poison.named_id(raw) == created["run_id"]:
                    return json.loads(raw)
        return None

    yield wait_until(find, 20, interval=0.05, message="the genuine message in hydra.pending")
    api.post(f"/runs/{created['run_id']}/cancel")


def push(queue: str, raws: list[bytes]) -> None:
    """Straight into the queue's most urgent list (what someone holding the broker password
    can do): ahead of every message that is sent to the queue afterwards."""
    get_redis().lpush(queue, *raws)


def refused(run_id: str):
    """The run recorded under ``run_id`` once a refusal is noted on it (None before)."""
    run = RunStore().find(run_id)
    return run if run is not None and run.refusals else None


def assert_recorded(raws: list[bytes], timeout: float = 60) -> None:
    """Every message that names a run id has a refusal recorded under it, and nothing ran."""
    named = {run_id for run_id in map(poison.named_id, raws) if run_id is not None}
    left = set(named)

    def all_recorded() -> bool:
        left.difference_update([run_id for run_id in list(left) if refused(run_id) is not None])
        return not left

    try:
        wait_until(all_recorded, timeout, interval=0.5, message="the refusals recorded")
    except AssertionError:
        raise AssertionError(
            f"no refusal recorded for {len(left)} of {len(named)} messages: {sorted(left)[:5]}"
        ) from None
    for run_id in named:
        run = refused(run_id)
        assert run.started_at is None and run.status in ("dead_letter", "failed"), (run_id, run.status)


def controller_failures(stack) -> list[str]:
    """The controller's loops that failed for another reason than a store being unreachable
    (each is logged, and the loop starts again a second later)."""
    text = stack.log_path("controller").read_text(errors="replace")
    return [line for line in text.splitlines() if "controller loop" in line and "Unavailable" not in line]


def assert_consuming(api, target) -> None:
    """The worker is online and runs a genuine job sent to it now."""
    assert Registry().records()[target.node].status == "online"
    run = wait_run(submit(api, "echo alive", affinity={"os": ["linux"], "tags": [target.tag]})["run_id"], timeout=60)
    assert run.status == "succeeded" and run.worker_id == target.node and run.stdout == "alive\n"


@pytest.mark.parametrize("shape", list(poison.SHAPES))
def test_a_named_shape_in_a_worker_queue_is_refused_and_the_worker_goes_on(api, target, genuine, shape):
    raw = poison.SHAPES[shape](genuine)
    logged = target.log.read_text(errors="replace").count("bad message dead-lettered")
    push(names.worker_queue(target.node), [raw])
    assert_consuming(api, target)  # queued behind the poison, so that was taken first
    run_id = poison.named_id(raw)
    if run_id is not None:
        assert_recorded([raw])
        shown = api.get(f"/runs/{run_id}").json  # what an operator finds under the message's id
        assert shown["ended_by"] == target.node and shown["started_at"] is None
        assert shown["error"].startswith("refused") and shown["refusals"][0]["by"] == target.node
        if shown["status"] == "dead_letter":  # (a message the worker could read was refused by its signature check)
            listed = api.get("/dead-letter/", query_string={"limit": 20}).json
            assert run_id in [run["id"] for run in listed]
    else:
        assert target.log.read_text(errors="replace").count("bad message dead-lettered") > logged


def test_fuzzed_messages_in_a_worker_and_its_tag_queue_are_refused_and_the_worker_goes_on(api, stack, target, genuine):
    failures = controller_failures(stack)
    rng = random.Random(SEED)
    raws = [poison.mutated(rng, genuine) for _ in range(CASES)]
    push(names.worker_queue(target.node), raws[: CASES // 2])
    push(f"{names.TAG_QUEUE_PREFIX}{target.tag}", raws[CASES // 2 :])
    assert_consuming(api, target)
    assert_recorded(raws)
    for queue in (names.worker_queue(target.node), f"{names.TAG_QUEUE_PREFIX}{target.tag}"):
        assert sum(get_redis().llen(key) for key in level_keys(queue)) == 0  # all taken off
    assert_consuming(api, target)
    assert controller_failures(stack) == failures  # it looked into those queues meanwhile


def test_malformed_messages_in_pending_are_refused_and_the_controller_goes_on_placing(
    api, stack, genuine, worker_factory
):
    from hydrastack import WorkerSpec

    failures = controller_failures(stack)
    rng = random.Random(SEED + 1)
    raws = [make(genuine) for make in poison.SHAPES.values()] + [poison.mutated(rng, genuine) for _ in range(CASES)]
    tag = unique("placed").lower()
    waiting = submit(api, "echo placed", affinity={"os": ["linux"], "tags": [tag]})
    push(names.PENDING_QUEUE, raws)
    assert_recorded(raws)
    named = [run_id for run_id in map(poison.named_id, raws) if run_id]
    assert all(any(note["by"] == "controller" for note in refused(run_id).refusals) for run_id in named)
    worker = worker_factory(WorkerSpec(unique("placed"), f"os.linux,tag.{tag}", concurrency=1))
    placed = wait_run(waiting["run_id"], timeout=60)
    assert placed.status == "succeeded" and placed.worker_id == worker.node
    assert RunStore().get(genuine["headers"]["id"]).status == "pending"  # the genuine one still waits
    assert controller_failures(stack) == failures


def test_malformed_broadcasts_are_dropped_and_nobody_stops(api, stack, target):
    """Events (the controller listens to them) and remote-control broadcasts (every worker
    listens) come over Redis pub/sub, where nothing is queued and no run is named: what
    kombu cannot read is dropped with a log line."""
    failures = controller_failures(stack)
    dropped = target.log.read_text(errors="replace").count("malformed broadcast dropped")
    for channel in ("/0.celeryev/worker.heartbeat", "/0.celery.pidbox"):
        for raw in (b"not-json-at-all", b"[1, 2]", b'{"properties": "x"}', b'{"body": 5, "properties": {}}'):
            assert get_redis().publish(channel, raw) >= 1  # someone listens there
    assert_consuming(api, target)
    wait_until(
        lambda: target.log.read_text(errors="replace").count("malformed broadcast dropped") >= dropped + 3,
        10,
        message="the worker's log of the dropped broadcasts",
    )
    assert stack.is_running(target.spec.process_name) and controller_failures(stack) == failures


def test_an_unacknowledged_entry_kombu_cannot_restore_is_dropped_and_workers_start(stack, worker_factory):
    """kombu restores what was delivered and not acknowledged once it is older than the
    visibility timeout; a worker does so as it starts consuming. An entry that is no message
    (written straight into kombu's ``unacked`` hash) is dropped instead of stopping it."""
    from hydrastack import WorkerSpec

    redis = get_redis()
    tags = [f"poison-{n}-{unique()}" for n in range(3)]
    for tag, entry in zip(tags, ("not-json-at-all", "[1, 2]", '"x"'), strict=True):
        redis.hset(names.KOMBU_UNACKED_KEY, tag, entry)
        redis.zadd(names.KOMBU_UNACKED_INDEX_KEY, {tag: 1})  # delivered long ago: due for restore
    worker = worker_factory(WorkerSpec(unique("restores"), "os.linux", concurrency=1))
    wait_until(lambda: not any(redis.hexists(names.KOMBU_UNACKED_KEY, tag) for tag in tags), 30, message="dropped")
    assert not any(redis.zscore(names.KOMBU_UNACKED_INDEX_KEY, tag) for tag in tags)
    assert stack.is_running(worker.process_name)
    assert Registry().records()[worker.node].status == "online"
