"""Placing what waits in ``hydra.pending``, the tick's step that runs most often.

A message waits there when no eligible worker was online, or its namespace's quota was full,
when it was routed. :class:`Placement` puts every message that now has an eligible worker and
room in its quota through the router again: as soon as something changed (a worker came,
a drain ended), every tick while some wait only for their quota (a place frees as soon as a
run ends), else every :data:`PENDING_SWEEP_EVERY` seconds.
"""

from __future__ import annotations

from amqp.exceptions import ChannelError
from kombu.simple import SimpleQueue

from hydra import names
from hydra.control.lease import ControllerLease
from hydra.dispatch.pipeline import Pipeline, Republished

#: Seconds between passes over hydra.pending when nothing changed.
PENDING_SWEEP_EVERY = 5.0


class Placement:
    def __init__(self, app, pipeline: Pipeline, lease: ControllerLease, *, every: float = PENDING_SWEEP_EVERY):
        self.app = app
        self.pipeline = pipeline
        self.lease = lease
        self.every = every
        #: Some messages wait only for their quota: pass again at the next tick.
        self.quota_blocked = False
        self._last = 0.0

    def due(self, now: float, *, changed: bool) -> bool:
        """Whether the tick at ``now`` passes over the queue (and, if so, the pass is noted)."""
        if changed or self.quota_blocked or now - self._last >= self.every:
            self._last = now
            return True
        return False

    def place_pending(self) -> int:
        """Re-publish every message in hydra.pending that now has an eligible worker and room
        in its namespace's quota; returns how many were sent."""
        placed = 0
        blocked = False
        # What still waits is put back only after the whole queue was looked at: kombu hands
        # out the highest priority first, so a message put back at once would come straight
        # back and hide every message behind it.
        waiting = []
        with self.app.connection_for_write() as conn:
            pending = SimpleQueue(conn, names.PENDING_QUEUE, no_ack=False)
            try:
                size = pending.qsize()
            except ChannelError:  # kombu's Redis transport: an empty queue does not exist
                size = 0
            try:
                for _ in range(size):
                    if not self.lease.acting():
                        break
                    try:
                        message = pending.get(block=False)
                    except SimpleQueue.Empty:
                        break
                    try:
                        result = self.pipeline.republish(message, only_if_placeable=True)
                    except Exception:
                        waiting.append(message)
                        raise
                    if result in (Republished.WAITING, Republished.OVER_QUOTA):
                        waiting.append(message)
                    placed += result == Republished.SENT
                    blocked |= result == Republished.OVER_QUOTA
            finally:
                try:
                    for message in waiting:
                        message.requeue()
                finally:
                    pending.close()
        self.quota_blocked = blocked
        return placed
