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
chaos``: a worker cut from Redis only, and from both).
"""

from __future__ import annotations

import logging
import threading
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
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._watch, args=(self._flag, flag_every), name=f"flag-{run_id}", daemon=True),
            threading.Thread(target=self._watch, args=(self._fence, fence_every), name=f"fence-{run_id}", daemon=True),
        ]

    def __enter__(self) -> AttemptWatch:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        for thread in self._threads:
            thread.join(timeout=FENCE_TIMEOUT + 1)

    def _watch(self, read: Callable[[], str | None], every: float) -> None:
        while not self._done.wait(every) and not self.cancel.is_set():
            reason = read()
            if reason is None:
                continue
            with self._lock:
                if self.cancel.is_set() or self._done.is_set():
                    return
                self.reason = reason
                self.cancel.set()
            log.warning(
                "stopping run: %s", reason, extra={"event": "run.stopping", "run_id": self.run_id, "reason": reason}
            )
            return

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
