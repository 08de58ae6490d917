"""The router's load groups choose exactly what the plain least-loaded rule chooses.

The router reads one member per eligible load group (``hydra.model.roster``,
``Registry.least_loaded``) instead of every worker's load; these tests put random fleets and
loads into the registry (fakeredis, Hydra's own Lua steps) and compare each decision with
``hydra.model.affinity.place`` over all online workers and all loads.
"""

from __future__ import annotations

import random

import fakeredis
import pytest

from hydra import clock, names
from hydra.broker.registry import Registry, WorkerRecord
from hydra.dispatch.router import AffinityRouter
from hydra.model.affinity import Requirements, WorkerProfile, place
from hydra.model.roster import Roster, group_key

TAGS = ["gpu", "ssd", "big", "arm", "fast"]
USERS = ["ana", "bob", "rich"]


def random_profile(rng: random.Random, i: int) -> WorkerProfile:
    return WorkerProfile(
        id=f"w{i:03d}@h{rng.randint(0, 3)}",
        os=rng.choice(["linux", "linux", "macos"]),
        tags=frozenset(rng.sample(TAGS, rng.randint(0, 2))),
        allowed_users=rng.choice([None, None, frozenset(rng.sample(USERS, 2))]),
        max_concurrency=rng.choice([1, 2, 4, 4, 8]),
        shells=frozenset({"bash", "sh"}),
    )


def random_message(rng: random.Random) -> dict:
    return {
        "user": rng.choice(USERS),
        "affinity": {"os": rng.choice([[], ["linux"], ["macos"]]), "tags": rng.sample(TAGS, rng.randint(0, 1))},
        "shell": "bash",
    }


@pytest.fixture
def registry(monkeypatch) -> Registry:
    client = fakeredis.FakeRedis(decode_responses=True)
    monkeypatch.setattr("hydra.broker.redis.get_redis", lambda timeout=None: client)
    return Registry()


def expected(registry: Registry, message: dict) -> str | None:
    """What the plain rule picks, from everything in the registry."""
    online = [r.profile for r in registry.records().values() if r.status == "online"]
    decision = place(Requirements.from_message(message), online, registry.loads())
    return decision.worker.id if decision.worker else decision.reason


def decided(router: AffinityRouter, message: dict) -> str | None:
    decision = router.place(message)
    return decision.worker.id if decision.worker else decision.reason


@pytest.mark.parametrize("seed", range(6))
def test_the_groups_choose_what_the_plain_rule_chooses(registry, seed):
    rng = random.Random(seed)
    profiles = [random_profile(rng, i) for i in range(rng.randint(1, 60))]
    for profile in profiles:
        registry.put(WorkerRecord(profile=profile, status="online", seen_at=clock.epoch()))
    router = AffinityRouter(registry)
    for step in range(300):
        action = rng.random()
        worker = rng.choice(profiles)
        if action < 0.45:
            registry.add_load(worker.id, rng.choice([1, 1, 2, -1]))
        elif action < 0.55:
            registry.set_load(worker.id, rng.randint(0, 9))
        elif action < 0.62:  # goes offline, or comes back (with its load reset, as the controller does)
            record = registry.get(worker.id)
            assert record is not None
            record.status = "offline" if record.status == "online" else "online"
            registry.put(record)
            registry.set_load(worker.id, 0)
        registry.forget_cache()
        message = random_message(rng)
        assert decided(router, message) == expected(registry, message), f"step {step}"
        chosen = router.place(message).worker
        if chosen is not None and rng.random() < 0.5:
            registry.add_load(chosen.id, 1)  # as choose() does


def test_a_heartbeat_does_not_change_the_version_but_a_profile_or_liveness_change_does(registry):
    profile = WorkerProfile(id="a@h", os="linux", max_concurrency=2)
    record = WorkerRecord(profile=profile, status="online", seen_at=1.0)
    registry.put(record)
    version = registry.redis.get(names.WORKERS_VERSION_KEY)
    record.seen_at, record.active = 2.0, 1
    registry.put(record)  # a heartbeat
    assert registry.redis.get(names.WORKERS_VERSION_KEY) == version
    record.status = "offline"
    registry.put(record)
    assert registry.redis.get(names.WORKERS_VERSION_KEY) != version
    assert registry.redis.zcard(names.LOAD_GROUP_PREFIX + group_key(profile)) == 0


def test_the_roster_is_decoded_once_per_version(registry, monkeypatch):
    for i in range(3):
        registry.put(WorkerRecord(profile=WorkerProfile(id=f"w{i}@h", os="linux"), status="online"))
    first = registry.roster(max_age=0)
    assert registry.roster(max_age=0) is first  # same version: not decoded again
    registry.put(WorkerRecord(profile=WorkerProfile(id="w9@h", os="linux"), status="online"))
    second = registry.roster(max_age=0)
    assert second is not first and {w.id for w in second.workers} == {"w0@h", "w1@h", "w2@h", "w9@h"}


def test_after_a_flush_the_next_heartbeat_puts_the_worker_back_in_its_group(registry):
    profile = WorkerProfile(id="a@h", os="linux", max_concurrency=2)
    record = WorkerRecord(profile=profile, status="online")
    registry.put(record)
    registry.redis.flushall()
    registry.put(record)  # the controller's next heartbeat; its memo says "unchanged"
    assert registry.redis.zscore(names.LOAD_GROUP_PREFIX + group_key(profile), "a@h") == 0
    assert registry.redis.get(names.WORKERS_VERSION_KEY) is not None


def test_a_worker_the_sorted_sets_lack_is_still_found_by_its_load(registry):
    """A group whose sorted set is missing (written by an older Hydra, say) is read worker by worker."""
    for i, load in enumerate((3, 1, 2)):
        profile = WorkerProfile(id=f"w{i}@h", os="linux", max_concurrency=4)
        registry.put(WorkerRecord(profile=profile, status="online"))
        registry.set_load(profile.id, load)
    registry.redis.delete(names.LOAD_GROUP_PREFIX + group_key(WorkerProfile(id="x", os="linux", max_concurrency=4)))
    assert AffinityRouter(registry).place({"user": "u"}).worker.id == "w1@h"


def test_eligible_groups_are_remembered_per_requirements():
    workers = [WorkerProfile(id=f"w{i}@h", os="linux", tags=frozenset({"gpu"} if i % 2 else ())) for i in range(10)]
    roster = Roster(workers)
    req = Requirements.from_message({"user": "u", "affinity": {"tags": ["gpu"]}})
    eligible = roster.eligible(req)
    assert roster.eligible(req) is eligible
    assert len(eligible.groups) == 1 and {w.id for w in eligible.candidates} == {f"w{i}@h" for i in (1, 3, 5, 7, 9)}
