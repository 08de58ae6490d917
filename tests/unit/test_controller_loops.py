"""The controller's loops, each alone (hydra.control.fleet, tracking, gone, placement, sweeps,
upkeep, ticker): what each one does with the state it is handed. On in-memory stores
(tests/unit/conftest.py); the lease is a real ControllerLease on fakeredis."""

from __future__ import annotations

import threading
from dataclasses import replace

import kombu
import pytest
from kombu.simple import SimpleQueue

from hydra import clock, names
from hydra.broker.registry import WorkerRecord
from hydra.control.controller import Controller
from hydra.control.fleet import IDLE_BEATS_TO_RESET, Fleet, FleetWriter
from hydra.control.gone import GoneWorkers
from hydra.control.lease import ControllerLease
from hydra.control.placement import Placement
from hydra.control.sweeps import UNPUBLISHED_SWEEP_EVERY, VANISHED_SWEEP_EVERY, Sweeps
from hydra.control.tracking import BeatWriter, EventListener, ProfileFetcher
from hydra.control.upkeep import RETENTION_BUSY, RETENTION_IDLE, IndexKeeper, NotifierLoop, RetentionLoop
from hydra.dispatch.pipeline import Republished
from hydra.errors import BrokerUnavailable
from hydra.model.affinity import WorkerProfile
from hydra.settings import get_settings
from hydra.store.reindex import Reindexer
from hydra.store.workers import WorkerStore


def record(name: str, *, status: str = "online", seen_at: float | None = None, **fields) -> WorkerRecord:
    profile = WorkerProfile(id=f"{name}@host", os="linux", max_concurrency=2)
    return WorkerRecord(profile=profile, status=status, seen_at=clock.epoch() if seen_at is None else seen_at, **fields)


def profile_reply(name: str, *, incarnation: str = "inc-1") -> dict:
    return {"profile": record(name).profile.to_dict(), "pid": 42, "incarnation": incarnation}


@pytest.fixture
def lease(memory) -> ControllerLease:
    lease = ControllerLease("unit", ttl=5.0, tick=0.5, registry=memory.registry)
    assert lease.hold()
    return lease


@pytest.fixture
def standby(memory) -> ControllerLease:
    return ControllerLease("standby", ttl=5.0, tick=0.5, registry=memory.registry)  # never took it


# -- Fleet: the shared state --------------------------------------------------------------
def test_the_fleet_marks_a_worker_offline_once_and_notes_the_failover_to_do():
    fleet = Fleet()
    fleet.learned("a@host", record("a", incarnation="inc-1"))
    assert fleet.restarted == {"a@host": "inc-1"}
    assert fleet.went_offline("a@host", goodbye=False, reason="silent") is fleet.records["a@host"]
    assert fleet.went_offline("a@host", goodbye=True, reason="again") is None  # already offline
    assert fleet.went_offline("unknown@host", goodbye=True, reason="x") is None
    assert fleet.gone == {"a@host": (False, "silent")}
    fleet.learned("a@host", record("a"))  # back, with its profile: nothing left to fail over
    assert fleet.gone == {}


def test_the_fleet_finds_stale_workers_by_the_controllers_clock():
    fleet = Fleet()
    now = 1000.0
    fleet.learned("fresh@host", record("fresh", seen_at=now - 1, freq=2.0))
    fleet.learned("silent@host", record("silent", seen_at=now - 7, freq=2.0))
    fleet.learned("off@host", record("off", status="offline", seen_at=0.0))
    assert [r.profile.id for r in fleet.stale(now, offline_after=3)] == ["silent@host"]
    assert fleet.online_queues() == {
        "fresh@host": names.worker_queue("fresh@host"),
        "silent@host": names.worker_queue("silent@host"),
    }


def test_adopting_keeps_what_was_heard_and_adds_what_only_the_registry_knows():
    fleet = Fleet()
    heard = record("heard", active=1)
    fleet.learned("heard@host", heard)
    adopted, known = fleet.adopt({"heard@host": record("heard"), "other@host": record("other", seen_at=1.0)}, 500.0)
    assert [r.profile.id for r in adopted] == ["other@host"] and adopted[0].seen_at == 500.0
    assert fleet.records["heard@host"] is heard and len(known) == 2


# -- FleetWriter ------------------------------------------------------------------------------
def test_the_writer_writes_the_registry_and_the_view_and_forgets(memory):
    writer = FleetWriter(memory.registry)
    worker = record("w1")
    writer.publish(worker)
    assert memory.registry.get("w1@host").status == "online"
    assert [v.id for v in WorkerStore().all()] == ["w1@host"]
    writer.remove("w1@host")
    assert memory.registry.get("w1@host") is None and WorkerStore().all() == []


def test_the_view_is_written_again_only_when_it_shows_something_new(memory, monkeypatch):
    writer = FleetWriter(memory.registry)
    puts = []
    monkeypatch.setattr(writer.workers, "put", puts.append)
    worker = record("w1")
    writer.refresh_view(worker)
    writer.refresh_view(worker)  # nothing new, and written a moment ago
    worker.active = 1
    writer.refresh_view(worker)
    assert [v.current_running for v in puts] == [0, 1]


def test_a_load_is_reset_only_after_idle_beats_in_a_row(memory):
    writer = FleetWriter(memory.registry)
    worker = record("w1")
    memory.registry.set_load("w1@host", 3)
    for _ in range(IDLE_BEATS_TO_RESET - 1):
        writer.correct_load(worker, load=3, queued=0)
    assert memory.registry.loads().get("w1@host") == 3
    writer.correct_load(worker, load=3, queued=1)  # something queued: the count starts over
    writer.correct_load(worker, load=3, queued=0)
    assert memory.registry.loads().get("w1@host") == 3
    writer.correct_load(worker, load=3, queued=0)
    assert memory.registry.loads().get("w1@host", 0) == 0


# -- tracking: events, profiles, beats ---------------------------------------------------------
def tracking(memory, lease):
    fleet, writer, changed = Fleet(), FleetWriter(memory.registry), threading.Event()
    beats = BeatWriter(writer, lease)
    profiles = ProfileFetcher(memory.app, fleet, writer, lease, changed)
    events = EventListener(memory.app, fleet, writer, lease, changed, profiles=profiles, beats=beats)
    return fleet, changed, beats, profiles, events


def test_an_unknown_worker_is_asked_for_its_profile_once(memory, lease):
    fleet, _changed, _beats, profiles, events = tracking(memory, lease)
    events.on_event({"type": "worker-heartbeat", "hostname": "w1@host"})
    events.on_event({"type": "worker-heartbeat", "hostname": "w1@host"})
    events.on_event({"type": "task-succeeded", "hostname": "w1@host"})  # not a worker event
    assert profiles._requests.qsize() == 1 and fleet.records == {}


def test_a_profile_answered_makes_the_worker_known_and_online(memory, lease):
    fleet, changed, _beats, profiles, _events = tracking(memory, lease)
    assert profiles.learned("w1@host", None) is None and fleet.records == {}
    learned = profiles.learned("w1@host", profile_reply("w1"))
    assert fleet.records["w1@host"] is learned and fleet.restarted == {"w1@host": "inc-1"}
    assert memory.registry.get("w1@host").status == "online" and changed.is_set()


def test_a_standby_learns_profiles_without_writing_them(memory, standby):
    fleet, _changed, _beats, profiles, _events = tracking(memory, standby)
    profiles.learned("w1@host", profile_reply("w1"))
    assert "w1@host" in fleet.records and memory.registry.get("w1@host") is None


def test_profiles_are_asked_again_until_the_worker_answers(memory, lease):
    answers = iter([[], [{"w1@host": {"profile": None}}], [{"w1@host": profile_reply("w1")}]])

    class Control:
        def broadcast(self, command, *, destination, reply, timeout):
            assert (command, destination) == ("hydra_profile", ["w1@host"])
            return next(answers)

    memory.app.control = Control()
    _fleet, _changed, _beats, profiles, _events = tracking(memory, lease)
    assert profiles.ask("w1@host")["incarnation"] == "inc-1"
    profiles.stop()
    assert profiles.ask("w1@host") is None  # stopped: no more questions


def test_heartbeats_are_written_together_by_the_beats_loop(memory, lease):
    fleet, _changed, beats, profiles, events = tracking(memory, lease)
    for name in ("w1", "w2"):
        profiles.learned(f"{name}@host", profile_reply(name))
    for name in ("w1", "w2"):
        events.on_event({"type": "worker-heartbeat", "hostname": f"{name}@host", "active": 1, "freq": 5.0})
    assert memory.registry.get("w1@host").freq == 2.0  # not yet written
    assert beats.write() == 2 and beats.write() == 0
    assert {memory.registry.get(f"{n}@host").freq for n in ("w1", "w2")} == {5.0}
    assert fleet.records["w1@host"].active == 1


def test_a_goodbye_marks_the_worker_offline_and_wakes_the_tick(memory, lease):
    fleet, changed, _beats, profiles, events = tracking(memory, lease)
    profiles.learned("w1@host", profile_reply("w1"))
    changed.clear()
    events.on_event({"type": "worker-offline", "hostname": "w1@host"})
    assert fleet.gone == {"w1@host": (True, "shut down")} and changed.is_set()
    assert memory.registry.get("w1@host").status == "offline"
    changed.clear()
    events.on_event({"type": "worker-heartbeat", "hostname": "w1@host"})  # back
    assert memory.registry.get("w1@host").status == "online" and changed.is_set()


# -- GoneWorkers -------------------------------------------------------------------------------
class RecordingFailover:
    def __init__(self, *, left=None, fail_restarted=False):
        self.calls: list[tuple] = []
        self.left = left or {}
        self.fail_restarted = fail_restarted

    def restarted(self, worker_id, incarnation):
        self.calls.append(("restarted", worker_id, incarnation))
        if self.fail_restarted:
            raise BrokerUnavailable("down")
        return 0

    def worker_gone(self, worker_id, *, goodbye, reason, spare=None):
        self.calls.append(("gone", worker_id, goodbye, spare))
        return dict(self.left)

    def drain(self, worker_id):
        self.calls.append(("drain", worker_id))
        return (0, 0)

    def overdue(self, worker_id, finishing, *, now, reason):
        self.calls.append(("overdue", worker_id, sorted(finishing)))
        return {}


def gone_workers(memory, failover, fleet=None, **settings):
    fleet = fleet or Fleet()
    return fleet, GoneWorkers(fleet, FleetWriter(memory.registry), failover, None, replace(get_settings(), **settings))


def test_a_goodbye_is_failed_over_once_and_its_finishing_runs_watched(memory):
    failover = RecordingFailover(left={"run-1": clock.epoch() + 60})
    fleet, gone = gone_workers(memory, failover)
    fleet.learned("w1@host", record("w1"))
    fleet.restarted.clear()
    fleet.went_offline("w1@host", goodbye=True, reason="shut down")
    gone.fail_over()
    assert failover.calls == [("gone", "w1@host", True, None), ("drain", "w1@host")]
    assert fleet.gone == {} and list(fleet.finishing["w1@host"]) == ["run-1"]
    failover.calls.clear()
    gone.fail_over()
    assert failover.calls == [("overdue", "w1@host", ["run-1"])] and fleet.finishing == {}


def test_a_worker_back_as_a_new_process_spares_its_new_runs(memory):
    failover = RecordingFailover()
    fleet, gone = gone_workers(memory, failover)
    fleet.learned("w1@host", record("w1"))
    fleet.went_offline("w1@host", goodbye=False, reason="silent")
    fleet.records["w1@host"] = record("w1", incarnation="inc-2")  # back before the tick
    fleet.restarted = {"w1@host": "inc-2"}
    gone.fail_over()
    assert failover.calls == [("restarted", "w1@host", "inc-2"), ("gone", "w1@host", False, "inc-2")]


def test_a_restart_check_that_fails_is_kept_for_the_next_tick(memory):
    fleet, gone = gone_workers(memory, RecordingFailover(fail_restarted=True))
    fleet.restarted = {"w1@host": "inc-1"}
    with pytest.raises(BrokerUnavailable):
        gone.fail_over()
    assert fleet.restarted == {"w1@host": "inc-1"}


def test_only_workers_offline_long_enough_are_forgotten(memory):
    fleet, gone = gone_workers(memory, RecordingFailover(), forget_after=3600)
    writer = gone.writer
    old = clock.epoch() - 4000
    for worker in (record("old", status="offline", seen_at=old), record("failing", status="offline", seen_at=old)):
        fleet.records[worker.profile.id] = worker
        writer.publish(worker)
    fleet.records["recent@host"] = record("recent", status="offline")
    fleet.gone["failing@host"] = (False, "silent")  # its failover is not done yet
    assert gone.forget_long_gone() == ["old@host"]
    assert set(fleet.records) == {"failing@host", "recent@host"} and memory.registry.get("old@host") is None


def test_drains_not_kept_when_redis_is_down(memory):
    class Down:
        def keep(self, online, move_queue):
            raise BrokerUnavailable("down")

    _fleet, gone = gone_workers(memory, RecordingFailover())
    gone.drains = Down()
    assert gone.keep_drains() is False


# -- Placement -------------------------------------------------------------------------------
def test_placement_passes_when_something_changed_when_blocked_or_when_due(memory, lease):
    placement = Placement(memory.app, memory.pipeline, lease, every=5.0)
    assert placement.due(100.0, changed=False)  # never passed yet
    assert not placement.due(101.0, changed=False)
    assert placement.due(101.5, changed=True)
    placement.quota_blocked = True
    assert placement.due(102.0, changed=False)
    placement.quota_blocked = False
    assert not placement.due(106.9, changed=False) and placement.due(107.0, changed=False)  # 5 s after 102


def test_placement_sends_what_it_can_and_puts_the_rest_back(memory, lease, monkeypatch):
    url = "memory://placement-test"
    results = {"go": Republished.SENT, "wait": Republished.WAITING, "quota": Republished.OVER_QUOTA}
    memory.app.connection_for_write = lambda: kombu.Connection(url)
    monkeypatch.setattr(memory.pipeline, "republish", lambda message, only_if_placeable: results[message.payload])
    with kombu.Connection(url) as conn:
        pending = SimpleQueue(conn, names.PENDING_QUEUE)
        for payload in ("go", "wait", "quota"):
            pending.put(payload)
        placement = Placement(memory.app, memory.pipeline, lease)
        assert placement.place_pending() == 1 and placement.quota_blocked
        left = sorted(pending.get(block=False).payload for _ in range(pending.qsize()))
        pending.close()
    assert left == ["quota", "wait"]


# -- Sweeps ------------------------------------------------------------------------------------
def test_each_sweep_runs_on_its_own_timer(memory, lease, monkeypatch):
    sweeps = Sweeps(memory.pipeline, get_settings(), lease, threading.Event(), name="unit")
    calls = []
    for name in ("publish_unpublished", "correct_quotas", "revive_vanished"):
        monkeypatch.setattr(sweeps, name, lambda name=name: calls.append(name))
    assert sweeps.sweep(1000.0)
    assert calls == ["publish_unpublished", "correct_quotas", "revive_vanished"]
    calls.clear()
    assert sweeps.sweep(1000.0 + VANISHED_SWEEP_EVERY) and calls == ["revive_vanished"]
    calls.clear()
    assert sweeps.sweep(1000.0 + UNPUBLISHED_SWEEP_EVERY)
    assert calls == ["publish_unpublished", "correct_quotas", "revive_vanished"]


def test_the_sweeps_stop_between_steps_once_the_lease_is_lost(memory, standby, monkeypatch):
    sweeps = Sweeps(memory.pipeline, get_settings(), standby, threading.Event(), name="unit")
    calls = []
    for name in ("publish_unpublished", "correct_quotas", "revive_vanished"):
        monkeypatch.setattr(sweeps, name, lambda name=name: calls.append(name))
    assert not sweeps.sweep(1000.0) and "revive_vanished" not in calls


# -- upkeep: indexes, retention, notifier ---------------------------------------------------------
def test_a_reset_redis_makes_the_indexes_rebuilt_then_reconciled(memory, lease):
    keeper = IndexKeeper(Reindexer(memory.pipeline.runs), lease, None, None, every=1.0)
    assert keeper.index.built() and not keeper.reconcile_due
    keeper.reconcile_later()
    assert not keeper.index.built() and keeper.reconcile_due


def test_retention_passes_again_soon_only_after_a_full_batch(memory, lease, standby):
    class Pruned:
        def __init__(self, runs):
            self.runs = runs

        def prune(self):
            return {"runs": self.runs}

    settings = get_settings()
    assert RetentionLoop(Pruned(settings.retention_batch), lease, settings).step() == RETENTION_BUSY
    assert RetentionLoop(Pruned(settings.retention_batch - 1), lease, settings).step() == RETENTION_IDLE
    assert RetentionLoop(Pruned(settings.retention_batch), standby, settings).step() == RETENTION_IDLE


def test_the_notifier_loop_delivers_while_leading_and_stops(memory, lease):
    delivered = threading.Event()

    class Notifier:
        def deliver_due(self):
            delivered.set()

    loop = NotifierLoop(Notifier(), lease, every=0.01)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    assert delivered.wait(10)
    loop.stop()
    thread.join(10)
    assert not thread.is_alive()


# -- Ticker (through the Controller that composes it) ----------------------------------------------
def test_a_tick_takes_over_marks_silent_workers_offline_and_fails_them_over(memory, monkeypatch):
    controller = Controller(memory.app, pipeline=memory.pipeline, name="unit")
    monkeypatch.setattr(controller.failover, "broker_was_reset", lambda: False)  # fakeredis has no INFO
    monkeypatch.setattr(controller.placement, "place_pending", lambda: 0)
    failed_over = []
    monkeypatch.setattr(controller.gone, "fail_over", lambda: failed_over.append(dict(controller.fleet.gone)))
    memory.worker("known")  # only the registry knows it: adopted on taking over
    silent = record("silent", seen_at=clock.epoch() - 3600)
    controller.fleet.learned("silent@host", silent)
    assert controller.lease.hold()
    controller.tick()
    assert "known@host" in controller.fleet.records
    assert silent.status == "offline" and memory.registry.get("silent@host").status == "offline"
    assert failed_over and "silent@host" in failed_over[0]
    assert memory.registry.ticks() == 1


def test_a_standby_does_not_tick(memory):
    controller = Controller(memory.app, pipeline=memory.pipeline, name="unit")
    memory.redis.set(names.LEADER_KEY, "other-controller")
    controller.tick()
    assert controller.fleet.records == {} and memory.registry.ticks() == 0
