"""The controller's leader lease (hydra.control.lease): renewed by a thread of its own while a
tick is blocked, fenced by the moment its last renewal was sent, given up when the ticks stall;
and a tick that finds it lost stops between its steps. On in-memory stores (tests/unit/conftest.py)."""

from __future__ import annotations

import threading
from dataclasses import replace

from hydra import names
from hydra.control.controller import Controller
from hydra.control.lease import ControllerLease
from hydra.settings import get_settings
from tests.helpers import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def blocked_controller(memory, monkeypatch, **settings):
    """A controller whose ticks block in their first sweep (``publish_due``) until released."""
    controller = Controller(
        memory.app, settings=replace(get_settings(), **settings), pipeline=memory.pipeline, name="unit"
    )
    entered, release, after = threading.Event(), threading.Event(), []

    def publish_due(pipeline):
        entered.set()
        assert release.wait(60), "the test never released the tick"

    monkeypatch.setattr("hydra.control.ticker.publish_due", publish_due)
    monkeypatch.setattr(controller.placement, "place_pending", lambda: after.append("place_pending"))
    monkeypatch.setattr(controller.failover, "broker_was_reset", lambda: False)  # fakeredis has no INFO
    return controller, entered, release, after


def test_the_lease_is_renewed_while_a_tick_is_blocked(memory, monkeypatch):
    controller, entered, release, after = blocked_controller(memory, monkeypatch, leader_ttl=0.3, controller_tick=0.05)
    lease = threading.Thread(target=controller.lease.run, daemon=True)
    lease.start()
    try:
        wait_until(lambda: controller.leading, 10, message="the lease taken")
        ticker = threading.Thread(target=controller.tick, kwargs={"force_pending": True}, daemon=True)
        ticker.start()
        assert entered.wait(10)
        before = controller.lease.renewals
        # Renewals are at least 0.05 s apart: 10 of them span more than the 0.3 s TTL, all while
        # the tick is held (when the tick renewed the lease, none happened and it expired).
        wait_until(lambda: controller.lease.renewals >= before + 10, 30, message="renewals during the tick")
        assert ticker.is_alive() and not after
        assert controller.leading
        token = memory.redis.get(names.LEADER_KEY)
        assert token is not None and token.startswith("unit/")
        assert memory.registry.controller_alive() == "unit"  # /health's marker stays written
        release.set()
        ticker.join(10)
        assert not ticker.is_alive() and after == ["place_pending"]  # the tick went on, still leading
        assert memory.registry.ticks() == 1
    finally:
        release.set()
        controller.lease.stop()
        lease.join(10)
    assert memory.redis.get(names.LEADER_KEY) is None  # released on stop


def test_a_tick_that_finds_the_lease_lost_stops_between_its_steps(memory, monkeypatch):
    controller, entered, release, after = blocked_controller(memory, monkeypatch)
    assert controller.lease.hold()
    ticker = threading.Thread(target=controller.tick, kwargs={"force_pending": True}, daemon=True)
    ticker.start()
    assert entered.wait(10)
    memory.redis.set(names.LEADER_KEY, "other-controller")  # the lease lapsed and another took it
    assert not controller.lease.hold() and not controller.leading
    release.set()
    ticker.join(10)
    assert not ticker.is_alive()
    assert after == [] and memory.registry.ticks() == 0  # nothing placed, the pass not counted


def test_held_ends_one_ttl_after_the_last_renewal_was_sent(memory):
    clock = FakeClock()
    lease = ControllerLease("unit", ttl=5.0, tick=0.5, monotonic=clock)
    assert lease.every == 0.5 and lease.hold() and lease.epoch == 1
    clock.now += 4.9
    assert lease.held
    clock.now += 0.2  # no renewal came through (a dead link): it may have expired in Redis
    assert not lease.held and lease.epoch is None
    memory.redis.delete(names.LEADER_KEY)  # it did expire, and another controller took it
    memory.redis.set(names.LEADER_KEY, "other")
    assert not lease.hold() and not lease.held


def test_a_stalled_tick_gives_the_lease_up_until_the_ticks_move(memory):
    clock = FakeClock()
    lease = ControllerLease("unit", ttl=5.0, tick=0.5, monotonic=clock, stall_after=60.0)
    assert lease.hold()
    for _ in range(20):  # a busy tick that makes progress keeps it
        clock.now += 4.0
        lease.progress()
        assert lease.hold()
    clock.now += 61.0  # no progress for longer than stall_after: stuck, not busy
    assert not lease.hold() and not lease.held
    assert memory.redis.get(names.LEADER_KEY) is None  # free for a standby at once
    assert not lease.hold()  # and not taken again while stalled
    lease.progress()
    assert lease.hold() and lease.epoch == 2
