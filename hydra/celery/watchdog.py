"""The attempt watchdog: a running command stops when its attempt was ended elsewhere.

When the controller declares a worker lost it records the worker's attempts as ``lost`` and
starts new ones elsewhere. If that worker was only frozen or cut off, its commands may
still be running - or resume. While a command runs, :class:`AttemptWatch` checks whether
its attempt still stands: every 0.25 s it reads the Redis stop flag ``hydra:stop:<run_id>``
(set by whoever ended the attempt, or asked to cancel it: ``hydra.broker.stops``), and every 2 s
it reads the attempt's end fence and cancel request in MongoDB, which also covers a flushed
Redis. On either, it sets the
``cancel`` event and the executor kills the command's whole process tree.

So two executions of one job overlap only while the old worker cannot see the ended
attempt: from the start of the new attempt until at most 0.25 s (Redis reachable) or 2 s
(MongoDB only) after the old worker runs again and can reach them, plus one read's timeout.
The two reads run in threads of their own, on clients of their own that give up after
``FLAG_TIMEOUT`` and ``FENCE_TIMEOUT``: a link that silently drops packets (a cut, no
reset) would otherwise hold a Redis read for the client's usual 5 s and a MongoDB read for
20 s, and with it the other read and the first read after the link heals (found by ``make
chaos``: a worker cut from Redis only, and from both). The two threads live as long as the
process (:class:`_Reads`, one per kind of read): a run registers its watch with them and
leaves, rather than start and join threads of its own. Each watch keeps its own schedule -
its first flag read 0.25 s after its start, its first fence read 2 s after - so a run that
ends sooner reads neither, as before.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from hydra.broker.redis import get_redis
from hydra.broker.stops import StopFlags
from hydra.errors import Unavailable
from hydra.store.runs import RunStore

log = logging.getLogger(__name__)

FLAG_EVERY = 0.25
FENCE_EVERY = 2.0
#: Seconds one read of the flag, and of the fence, waits at most (connecting included). The
#: fence's has room for a new connection's handshake on a loaded store.
FLAG_TIMEOUT = 1.0
FENCE_TIMEOUT = 2.0


class AttemptWatch:
    """Context manager: ``cancel`` is set once the attempt was ended or asked to stop."""

    def __init__(
        self,
        run_id: str,
        *,
        runs: RunStore | None = None,
        flags: StopFlags | None = None,
        flag_every: float = FLAG_EVERY,
        fence_every: float = FENCE_EVERY,
    ):
        self.run_id = run_id
        self.runs = runs or RunStore(timeout=FENCE_TIMEOUT)
        self.flags = flags or StopFlags(get_redis(FLAG_TIMEOUT))
        self.cancel = threading.Event()
        self.reason: str | None = None
        self._lock = threading.Lock()
        self._every = {"flag": flag_every, "fence": fence_every}

    def __enter__(self) -> AttemptWatch:
        for kind, read in (("flag", self._flag), ("fence", self._fence)):
            _reads(kind).add(self, read, self._every[kind])
        return self

    def __exit__(self, *exc) -> None:
        for kind in ("flag", "fence"):
            _reads(kind).remove(self)

    def _stop(self, reason: str) -> None:
        with self._lock:
            if self.cancel.is_set():
                return
            self.reason = reason
            self.cancel.set()
        log.warning(
            "stopping run: %s", reason, extra={"event": "run.stopping", "run_id": self.run_id, "reason": reason}
        )

    def _flag(self) -> str | None:
        try:
            value = self.flags.reason(self.run_id)
        except Unavailable:
            return None
        return f"stop requested: {value}" if value else None

    def _fence(self) -> str | None:
        try:
            end = self.runs.end_of(self.run_id)
            if end is not None:
                return f"attempt already ended as {end.status} by {end.by}"
            return "cancel requested" if self.runs.cancel_requested(self.run_id) else None
        except Unavailable:
            return None


class _Reads:
    """One kind of read (the flag, or the fence) for every watch of this process, from one
    thread that lives as long as the process: each watch is read when it is due, every
    ``every`` seconds from its start, until it leaves or is stopped."""

    def __init__(self, kind: str):
        self.kind = kind
        self._changed = threading.Condition()
        self._due: dict[AttemptWatch, tuple[float, float, Callable[[], str | None]]] = {}  # watch -> (due, every, read)
        self._pid: int | None = None

    def add(self, watch: AttemptWatch, read: Callable[[], str | None], every: float) -> None:
        with self._changed:
            if self._pid != os.getpid():  # (again) after a fork: threads are not inherited
                self._pid = os.getpid()
                self._due.clear()
                threading.Thread(target=self._run, name=f"hydra-watch-{self.kind}", daemon=True).start()
            self._due[watch] = (time.monotonic() + every, every, read)
            self._changed.notify()

    def remove(self, watch: AttemptWatch) -> None:
        with self._changed:
            self._due.pop(watch, None)

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [(watch, read) for watch, (at, _, read) in self._due.items() if at <= now]
                if not due:
                    soonest = min((at for at, _, _ in self._due.values()), default=None)
                    self._changed.wait(None if soonest is None else soonest - now)
                    continue
            for watch, read in due:
                reason = None if watch.cancel.is_set() else read()
                with self._changed:
                    if watch not in self._due:  # its run ended meanwhile
                        continue
                    if reason is None and not watch.cancel.is_set():
                        _, every, _ = self._due[watch]
                        self._due[watch] = (time.monotonic() + every, every, read)
                        continue
                    self._due.pop(watch)
                if reason is not None:
                    watch._stop(reason)


_READS = {kind: _Reads(kind) for kind in ("flag", "fence")}


def _reads(kind: str) -> _Reads:
    return _READS[kind]
