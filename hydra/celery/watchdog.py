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
(MongoDB only) after the old worker runs again and can reach them.
"""

from __future__ import annotations

import logging
import threading
import time

from hydra.broker.stops import StopFlags
from hydra.errors import Unavailable
from hydra.store.runs import RunStore

log = logging.getLogger(__name__)

FLAG_EVERY = 0.25
FENCE_EVERY = 2.0


class AttemptWatch:
    """Context manager: ``cancel`` is set once the attempt was ended or asked to stop."""

    def __init__(
        self,
        run_id: str,
        *,
        runs: RunStore | None = None,
        flag_every: float = FLAG_EVERY,
        fence_every: float = FENCE_EVERY,
    ):
        self.run_id = run_id
        self.runs = runs or RunStore()
        self.flags = StopFlags()
        self.flag_every, self.fence_every = flag_every, fence_every
        self.cancel = threading.Event()
        self.reason: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"watch-{run_id}", daemon=True)

    def __enter__(self) -> AttemptWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        next_fence = time.monotonic() + self.fence_every
        while not self._done.wait(self.flag_every):
            reason = self._flag()
            if reason is None and time.monotonic() >= next_fence:
                next_fence = time.monotonic() + self.fence_every
                reason = self._fence()
            if reason is not None:
                self.reason = reason
                log.warning(
                    "stopping run: %s", reason, extra={"event": "run.stopping", "run_id": self.run_id, "reason": reason}
                )
                self.cancel.set()
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
