"""The attempt watchdog reads the Redis stop flag and the MongoDB end fence independently: a
Redis that holds every read (a silently cut link) does not keep it from seeing the fence."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from hydra.celery.watchdog import AttemptWatch


class SilentFlags:
    """A stop-flag read that never returns while the link is cut."""

    def __init__(self) -> None:
        self.cut = threading.Event()
        self.reading = threading.Event()

    def reason(self, run_id: str) -> str | None:
        self.reading.set()
        self.cut.wait()
        return None


class Runs:
    def __init__(self) -> None:
        self.ended = threading.Event()

    def end_of(self, run_id: str):
        return SimpleNamespace(status="lost", by="controller") if self.ended.is_set() else None

    def cancel_requested(self, run_id: str) -> bool:
        return False


def test_a_blocked_flag_read_does_not_hold_the_fence_read():
    runs, flags = Runs(), SilentFlags()
    watch = AttemptWatch("r1", runs=runs, flag_every=0.01, fence_every=0.05)  # type: ignore[arg-type]
    watch.flags = flags  # type: ignore[assignment]
    with watch:
        assert flags.reading.wait(5)  # the flag thread is stuck in its read
        runs.ended.set()  # the controller ended the attempt
        assert watch.cancel.wait(10), "the end fence was not seen while Redis held the flag read"
        assert watch.reason == "attempt already ended as lost by controller"
        flags.cut.set()  # heal, so the flag thread can finish


def test_a_stop_flag_alone_stops_the_run():
    runs = Runs()
    watch = AttemptWatch("r2", runs=runs, flag_every=0.01, fence_every=60)  # type: ignore[arg-type]
    watch.flags = SimpleNamespace(reason=lambda run_id: "cancelled by ana")  # type: ignore[assignment]
    with watch:
        assert watch.cancel.wait(10)
    assert watch.reason == "stop requested: cancelled by ana"
