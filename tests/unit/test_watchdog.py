"""The attempt watchdog reads the Redis stop flag and the MongoDB end fence independently: a
Redis that holds every read (a silently cut link) does not keep it from seeing the fence; and
its own clients give up on a server that does not answer within their timeout."""

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
    watch = AttemptWatch("r1", runs=runs, flags=flags, flag_every=0.01, fence_every=0.05)  # type: ignore[arg-type]
    with watch:
        assert flags.reading.wait(5)  # the flag thread is stuck in its read
        runs.ended.set()  # the controller ended the attempt
        assert watch.cancel.wait(10), "the end fence was not seen while Redis held the flag read"
        assert watch.reason == "attempt already ended as lost by controller"
        flags.cut.set()  # heal, so the flag thread can finish


def test_a_stop_flag_alone_stops_the_run():
    runs = Runs()
    flags = SimpleNamespace(reason=lambda run_id: "cancelled by ana")
    watch = AttemptWatch("r2", runs=runs, flags=flags, flag_every=0.01, fence_every=60)  # type: ignore[arg-type]
    with watch:
        assert watch.cancel.wait(10)
    assert watch.reason == "stop requested: cancelled by ana"


def test_the_watchdogs_clients_give_up_on_a_silent_server_within_their_timeout(monkeypatch):
    """A listening socket that never answers (a link dropping packets, as far as the client
    can tell): the flag and fence reads return within their timeouts, instead of the usual
    5 s (Redis) and 20 s (MongoDB)."""
    import socket
    import time

    from hydra.broker.redis import get_redis
    from hydra.broker.stops import StopFlags
    from hydra.celery import watchdog
    from hydra.settings import get_settings
    from hydra.store.mongo import get_database
    from hydra.store.runs import RunStore

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections in the kernel; nobody ever reads or answers
    port = silent.getsockname()[1]
    monkeypatch.setenv("HYDRA_BROKER_URL", f"redis://127.0.0.1:{port}/0")
    monkeypatch.setenv("HYDRA_MONGO_URL", f"mongodb://127.0.0.1:{port}/?directConnection=true")
    get_settings.cache_clear()
    try:
        watch = AttemptWatch("r3")
        began = time.monotonic()
        assert watch._flag() is None
        assert time.monotonic() - began < watchdog.FLAG_TIMEOUT + 1
        began = time.monotonic()
        assert watch._fence() is None
        assert time.monotonic() - began < 2 * watchdog.FENCE_TIMEOUT + 1
        # and they are clients of their own: the process's usual ones keep their timeouts
        assert isinstance(watch.flags, StopFlags) and watch.flags.redis is not get_redis()
        assert isinstance(watch.runs, RunStore) and watch.runs.db.client is not get_database().client
    finally:
        get_settings.cache_clear()
        silent.close()


class CountingFlags:
    def __init__(self) -> None:
        self.reads = 0

    def reason(self, run_id: str) -> str | None:
        self.reads += 1
        return None


def test_runs_share_the_watchdogs_threads_and_a_short_run_reads_nothing():
    """The reads run in two threads per process, not two per run; each watch is first read
    one period after its start, so a run that ends sooner costs no read."""
    flags, runs = CountingFlags(), Runs()
    AttemptWatch("warm", runs=runs, flags=flags).__enter__().__exit__(None, None, None)  # type: ignore[arg-type]
    before = threading.active_count()
    for i in range(20):
        with AttemptWatch(f"short{i}", runs=runs, flags=flags, flag_every=60, fence_every=60):  # type: ignore[arg-type]
            assert threading.active_count() == before
    assert flags.reads == 0
    assert {t.name for t in threading.enumerate()} >= {"hydra-watch-flag", "hydra-watch-fence"}
